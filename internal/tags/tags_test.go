package tags

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// t0 is a synthetic clock, a Thursday noon: tests never read the real one.
var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestLookup(t *testing.T) {
	night := mustSchedule(t, "20:00-07:00", "UTC")
	static := prefixes("10.9.0.0/16", "2001:db8:9::/48", "::ffff:172.16.0.0/108")
	type event struct {
		client       string
		since, until time.Duration
		ref, id      string
	}
	tests := []struct {
		name       string
		schedule   *Schedule
		events     []event
		client     string
		now        time.Duration
		wantReason Reason // "" for not tagged
		wantRef    string
	}{
		{name: "untagged", client: "10.1.0.1"},
		{name: "static IPv4", client: "10.9.3.4", wantReason: ReasonStatic, wantRef: "10.9.0.0/16"},
		{name: "static, IPv4-mapped client", client: "::ffff:10.9.3.4", wantReason: ReasonStatic, wantRef: "10.9.0.0/16"},
		{name: "static IPv6 with zone", client: "2001:db8:9::1%eth0", wantReason: ReasonStatic, wantRef: "2001:db8:9::/48"},
		{name: "IPv4-mapped static prefix", client: "172.16.1.1", wantReason: ReasonStatic, wantRef: "172.16.0.0/12"},
		{name: "outside static", client: "10.10.0.1"},
		{
			name:   "event",
			events: []event{{"10.1.0.1", 0, 30 * time.Minute, "SIEM-1", "ev1"}},
			client: "10.1.0.1", now: time.Minute, wantReason: ReasonEvent, wantRef: "SIEM-1",
		},
		{
			name:   "event tagged as IPv4-mapped",
			events: []event{{"::ffff:10.1.0.1", 0, 30 * time.Minute, "SIEM-1", "ev1"}},
			client: "10.1.0.1", now: time.Minute, wantReason: ReasonEvent, wantRef: "SIEM-1",
		},
		{
			name:   "event expires at Until",
			events: []event{{"10.1.0.1", 0, 30 * time.Minute, "SIEM-1", "ev1"}},
			client: "10.1.0.1", now: 30 * time.Minute,
		},
		{
			name:   "event wins over static",
			events: []event{{"10.9.0.1", 0, 30 * time.Minute, "SIEM-2", "ev2"}},
			client: "10.9.0.1", wantReason: ReasonEvent, wantRef: "SIEM-2",
		},
		{
			name:   "expired event falls back to static",
			events: []event{{"10.9.0.1", 0, 30 * time.Minute, "SIEM-2", "ev2"}},
			client: "10.9.0.1", now: time.Hour, wantReason: ReasonStatic, wantRef: "10.9.0.0/16",
		},
		{name: "schedule tags everyone at night", schedule: &night, client: "10.1.0.1", now: 9 * time.Hour, wantReason: ReasonAfterHours, wantRef: "20:00-07:00 UTC"},
		{name: "static wins over schedule", schedule: &night, client: "10.9.0.1", now: 9 * time.Hour, wantReason: ReasonStatic, wantRef: "10.9.0.0/16"},
		{name: "schedule by day", schedule: &night, client: "10.1.0.1", now: time.Hour},
		{name: "invalid client", schedule: &night, client: "", now: 9 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(static, tt.schedule)
			for _, e := range tt.events {
				s.Tag(ip(e.client), at(e.since), at(e.until), e.ref, e.id)
			}
			var client netip.Addr
			if tt.client != "" {
				client = ip(tt.client)
			}
			now := at(tt.now)
			tag, ok := s.Lookup(client, now)
			if tagged := s.Tagged(client, now); tagged != ok {
				t.Errorf("Tagged = %v but Lookup = %v", tagged, ok)
			}
			if ok != (tt.wantReason != "") || tag.Reason != tt.wantReason || tag.Ref != tt.wantRef {
				t.Errorf("Lookup = %+v, %v; want reason %q ref %q", tag, ok, tt.wantReason, tt.wantRef)
			}
			if ok && tag.Client != client.Unmap().WithZone("") {
				t.Errorf("Lookup client = %v, want %v", tag.Client, client.Unmap().WithZone(""))
			}
		})
	}
}

func TestTagExtendsNeverShortens(t *testing.T) {
	c := ip("10.1.0.1")
	type call struct {
		since, until time.Duration
		ref, id      string
	}
	tests := []struct {
		name  string
		calls []call
		want  Tag
	}{
		{
			name:  "one",
			calls: []call{{0, 30 * time.Minute, "SIEM-1", "ev1"}},
			want:  Tag{Since: at(0), Until: at(30 * time.Minute), Ref: "SIEM-1", Event: "ev1"},
		},
		{
			name:  "a longer tag extends",
			calls: []call{{0, 30 * time.Minute, "SIEM-1", "ev1"}, {10 * time.Minute, 50 * time.Minute, "SIEM-2", "ev2"}},
			want:  Tag{Since: at(0), Until: at(50 * time.Minute), Ref: "SIEM-2", Event: "ev2"},
		},
		{
			name:  "a shorter tag does not shorten, but is the latest event",
			calls: []call{{0, 30 * time.Minute, "SIEM-1", "ev1"}, {5 * time.Minute, 10 * time.Minute, "SIEM-2", "ev2"}},
			want:  Tag{Since: at(0), Until: at(30 * time.Minute), Ref: "SIEM-2", Event: "ev2"},
		},
		{
			name:  "empty ref and id keep the earlier ones",
			calls: []call{{0, 30 * time.Minute, "SIEM-1", "ev1"}, {5 * time.Minute, 40 * time.Minute, "", ""}},
			want:  Tag{Since: at(0), Until: at(40 * time.Minute), Ref: "SIEM-1", Event: "ev1"},
		},
		{
			name:  "an event dated before the running tag moves Since back",
			calls: []call{{10 * time.Minute, 30 * time.Minute, "SIEM-1", "ev1"}, {5 * time.Minute, 20 * time.Minute, "SIEM-0", "ev0"}},
			want:  Tag{Since: at(5 * time.Minute), Until: at(30 * time.Minute), Ref: "SIEM-0", Event: "ev0"},
		},
		{
			name:  "after expiry a new tag starts afresh",
			calls: []call{{0, 30 * time.Minute, "SIEM-1", "ev1"}, {time.Hour, 70 * time.Minute, "", "ev2"}},
			want:  Tag{Since: at(time.Hour), Until: at(70 * time.Minute), Ref: "", Event: "ev2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, nil)
			for _, c2 := range tt.calls {
				s.Tag(c, at(c2.since), at(c2.until), c2.ref, c2.id)
			}
			want := tt.want
			want.Client, want.Reason = c, ReasonEvent
			got := s.List(want.Since)
			if len(got) != 1 || got[0] != want {
				t.Errorf("List = %+v, want [%+v]", got, want)
			}
		})
	}
}

func TestUntag(t *testing.T) {
	s := New(prefixes("10.9.0.0/16"), nil)
	s.Tag(ip("10.1.0.1"), at(0), at(time.Hour), "SIEM-1", "ev1")
	s.Tag(ip("10.9.0.1"), at(0), at(time.Hour), "SIEM-2", "ev2")
	tests := []struct {
		client     string
		want       bool
		stillTaged bool
	}{
		{"::ffff:10.1.0.1", true, false}, // the event tag, whatever the spelling
		{"10.1.0.1", false, false},       // already gone
		{"10.9.0.1", true, true},         // the event tag goes, the static one stays
		{"10.9.0.2", false, true},        // static only: cannot be removed
		{"10.2.0.1", false, false},
	}
	for _, tt := range tests {
		if got := s.Untag(ip(tt.client)); got != tt.want {
			t.Errorf("Untag(%s) = %v, want %v", tt.client, got, tt.want)
		}
		if got := s.Tagged(ip(tt.client), at(time.Minute)); got != tt.stillTaged {
			t.Errorf("after Untag(%s): Tagged = %v, want %v", tt.client, got, tt.stillTaged)
		}
	}
	if n := s.Count(at(time.Minute)); n != 0 {
		t.Errorf("Count = %d after untagging all events, want 0", n)
	}
}

func TestListCountSweep(t *testing.T) {
	s := New(prefixes("10.9.0.0/16"), nil)
	for i, c := range []string{"10.1.0.3", "2001:db8::1", "10.1.0.1", "10.9.0.1", "10.1.0.2"} {
		s.Tag(ip(c), at(0), at(time.Duration(i+1)*10*time.Minute), fmt.Sprintf("SIEM-%d", i), "")
	}
	tests := []struct {
		now         time.Duration
		wantList    []string
		wantSweep   int
		wantListEnd []string // after Sweep
	}{
		{0, []string{"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.9.0.1", "2001:db8::1"}, 0, []string{"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.9.0.1", "2001:db8::1"}},
		{10 * time.Minute, []string{"10.1.0.1", "10.1.0.2", "10.9.0.1", "2001:db8::1"}, 1, []string{"10.1.0.1", "10.1.0.2", "10.9.0.1", "2001:db8::1"}},
		{35 * time.Minute, []string{"10.1.0.2", "10.9.0.1"}, 2, []string{"10.1.0.2", "10.9.0.1"}},
		{35 * time.Minute, []string{"10.1.0.2", "10.9.0.1"}, 0, []string{"10.1.0.2", "10.9.0.1"}},
		{time.Hour, nil, 2, nil},
	}
	for _, tt := range tests {
		now := at(tt.now)
		if got := clients(s.List(now)); !slices.Equal(got, tt.wantList) {
			t.Errorf("List(%v) = %v, want %v", tt.now, got, tt.wantList)
		}
		if got := s.Count(now); got != len(tt.wantList) {
			t.Errorf("Count(%v) = %d, want %d", tt.now, got, len(tt.wantList))
		}
		if got := s.Sweep(now); got != tt.wantSweep {
			t.Errorf("Sweep(%v) = %d, want %d", tt.now, got, tt.wantSweep)
		}
		if got := clients(s.List(now)); !slices.Equal(got, tt.wantListEnd) {
			t.Errorf("after Sweep(%v): List = %v, want %v", tt.now, got, tt.wantListEnd)
		}
	}
	// Static prefixes are configuration, never listed.
	if !s.Tagged(ip("10.9.0.1"), at(time.Hour)) || s.Count(at(time.Hour)) != 0 {
		t.Error("static tag lost or counted as an event tag")
	}
}

func clients(tags []Tag) []string {
	var out []string
	for _, t := range tags {
		out = append(out, t.Client.String())
	}
	return out
}

func TestSetStatic(t *testing.T) {
	night := mustSchedule(t, "20:00-07:00", "UTC")
	day := mustSchedule(t, "07:00-20:00", "UTC")
	s := New(prefixes("10.9.0.0/16"), &night)
	s.Tag(ip("10.1.0.1"), at(0), at(time.Hour), "SIEM-1", "ev1")
	noon, midnight := at(0), at(12*time.Hour)
	check := func(stage string, client string, now time.Time, want bool) {
		t.Helper()
		if got := s.Tagged(ip(client), now); got != want {
			t.Errorf("%s: Tagged(%s, %s) = %v, want %v", stage, client, now.Format("15:04"), got, want)
		}
	}
	check("before", "10.9.0.1", noon, true)
	check("before", "10.2.0.1", noon, false)
	check("before", "10.2.0.1", midnight, true)
	// The schedule's cached state must not outlive a reload, even within
	// the same minute.
	s.SetStatic(prefixes("10.2.0.0/16"), &day)
	check("after", "10.9.0.1", noon.Add(time.Second), true) // the day schedule tags everyone
	check("after", "10.9.0.1", midnight, false)
	check("after", "10.2.0.1", midnight, true)
	check("after", "10.1.0.1", noon, true) // event tags survive a reload
	s.SetStatic(nil, nil)
	check("cleared", "10.2.0.1", noon, false)
	check("cleared", "10.1.0.1", noon, true)
}

// TestTaggedFollowsSchedule checks the per-minute cache against the plain
// computation, second by second around the edges of a DST day and in a
// seeded random walk that also goes back in time.
func TestTaggedFollowsSchedule(t *testing.T) {
	type walk struct {
		span, tz string
		times    []time.Time
	}
	var walks []walk
	for _, day := range []string{"2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"} {
		var times []time.Time
		for ts := utc(day); ts.Before(utc(day).Add(24 * time.Hour)); ts = ts.Add(7 * time.Second) {
			times = append(times, ts)
		}
		walks = append(walks, walk{"20:00-07:00", "Europe/Paris", times}, walk{"02:00-02:30", "Europe/Paris", times})
	}
	r := rand.New(rand.NewPCG(1, 2))
	var jumps []time.Time
	ts := utc("2026-03-29T00:00:00Z")
	for range 20000 {
		ts = ts.Add(time.Duration(r.Int64N(int64(40*time.Minute))) - 20*time.Minute)
		jumps = append(jumps, ts)
	}
	walks = append(walks, walk{"01:30-02:30", "Europe/Paris", jumps}, walk{"23:00-01:00", "America/New_York", jumps})
	// A local-mean-time offset of -0:44:30 puts wall-clock minutes across
	// UTC minutes: the cache must stand aside.
	var lmt []time.Time
	for ts := time.Date(1960, 1, 1, 8, 0, 0, 0, time.UTC); ts.Before(time.Date(1960, 1, 1, 8, 30, 0, 0, time.UTC)); ts = ts.Add(time.Second) {
		lmt = append(lmt, ts)
	}
	walks = append(walks, walk{"07:15-07:30", "Africa/Monrovia", lmt})
	// Minutes before 1970 have negative numbers; they must not merge with
	// minute 0.
	var epoch []time.Time
	for ts := utc("1969-12-31T23:58:00Z"); ts.Before(utc("1970-01-01T00:02:00Z")); ts = ts.Add(10 * time.Second) {
		epoch = append(epoch, ts)
	}
	walks = append(walks, walk{"00:00-01:00", "UTC", epoch})

	for _, w := range walks {
		sc := mustSchedule(t, w.span, w.tz)
		s := New(nil, &sc)
		for _, now := range w.times {
			if got, want := s.Tagged(ip("10.1.0.1"), now), sc.Active(now); got != want {
				t.Fatalf("%s at %s (%s): Tagged = %v, Active = %v", sc, now.Format(time.RFC3339), now.In(sc.loc).Format("15:04:05 MST"), got, want)
			}
		}
	}
}

func TestTaggedDoesNotAllocate(t *testing.T) {
	night := mustSchedule(t, "20:00-07:00", "Europe/Paris")
	events := New(nil, nil)
	for i := range 1000 {
		events.Tag(netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)}), at(0), at(time.Hour), "SIEM", "ev")
	}
	tests := []struct {
		name   string
		set    *Set
		client netip.Addr
	}{
		{"nothing tagged", New(nil, nil), ip("10.1.0.1")},
		{"static", New(prefixes("10.9.0.0/16", "10.8.0.0/16", "2001:db8::/32"), nil), ip("::ffff:10.1.0.1")},
		{"schedule", New(nil, &night), ip("10.1.0.1")},
		{"event miss", events, ip("10.1.0.1")},
		{"event hit", events, ip("10.5.0.1")},
	}
	for _, tt := range tests {
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			tt.set.Tagged(tt.client, at(time.Duration(i)*time.Second))
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: Tagged allocates %.1f times, want 0", tt.name, allocs)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	night := mustSchedule(t, "20:00-07:00", "Europe/Paris")
	s := New(prefixes("10.9.0.0/16"), &night)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { // writers
			for i := range 500 {
				c := netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i % 64)})
				now := at(time.Duration(i) * time.Minute)
				switch i % 10 {
				case 0:
					s.Untag(c)
				case 5:
					s.Sweep(now)
				case 9:
					if g == 0 {
						s.SetStatic(prefixes(fmt.Sprintf("10.9.%d.0/24", i%256)), &night)
					}
				default:
					s.Tag(c, now, now.Add(30*time.Minute), "SIEM", "ev")
				}
			}
		})
		wg.Go(func() { // readers
			for i := range 2000 {
				c := netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i % 64)})
				now := at(time.Duration(i) * 7 * time.Second)
				s.Tagged(c, now)
				if i%50 == 0 {
					s.Lookup(c, now)
					s.List(now)
					s.Count(now)
				}
			}
		})
	}
	wg.Wait()
	if n := s.Count(at(0)); n > 4*64 {
		t.Errorf("Count = %d, more than the clients tagged", n)
	}
}

func BenchmarkTagged(b *testing.B) {
	night := mustSchedule(b, "20:00-07:00", "Europe/Paris")
	events := New(nil, nil)
	for i := range 1000 {
		events.Tag(netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)}), at(0), at(time.Hour), "SIEM", "ev")
	}
	cases := []struct {
		name   string
		set    *Set
		client netip.Addr
	}{
		{"nothing-tagged", New(nil, nil), ip("10.1.0.1")},
		{"static-miss", New(prefixes("10.9.0.0/16", "10.8.0.0/16", "2001:db8::/32"), nil), ip("10.1.0.1")},
		{"schedule", New(nil, &night), ip("10.1.0.1")},
		{"events-1000-miss", events, ip("10.1.0.1")},
		{"events-1000-hit", events, ip("10.5.0.1")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.set.Tagged(c.client, at(time.Duration(i)*time.Millisecond))
				i++
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c.set.Tagged(c.client, at(time.Duration(i)*time.Millisecond))
					i++
				}
			})
		})
	}
}

// BenchmarkTag measures the copy-on-write cost of tagging with 1000
// clients already tagged; events are rare, so this is not the hot path.
func BenchmarkTag(b *testing.B) {
	s := New(nil, nil)
	for i := range 1000 {
		s.Tag(netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)}), at(0), at(time.Hour), "SIEM", "ev")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Tag(netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)}), at(0), at(2*time.Hour), "SIEM", "ev")
		i = (i + 1) % 1000
	}
}
