package window

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// t0 is a synthetic clock: tests never read the real one.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = ip(s)
	}
	return out
}

// rec is one Record call.
type rec struct {
	client string
	name   string
	ips    []string
	port   uint16
	at     time.Duration
}

func (r rec) apply(s *Store) {
	s.Record(ip(r.client), r.name, ips(r.ips...), r.port, at(r.at))
}

// brief is the part of a Sighting a test compares.
type brief struct {
	IP          string
	Names       []string
	Ports       []uint16
	First, Last time.Duration
	Count       int
}

func briefs(ss []Sighting) []brief {
	if ss == nil {
		return nil
	}
	out := make([]brief, len(ss))
	for i, s := range ss {
		out[i] = brief{s.IP.String(), s.Names, s.Ports, s.First.Sub(t0), s.Last.Sub(t0), s.Count}
	}
	return out
}

func equalBriefs(a, b []brief) bool {
	return slices.EqualFunc(a, b, func(x, y brief) bool {
		return x.IP == y.IP && slices.Equal(x.Names, y.Names) && slices.Equal(x.Ports, y.Ports) &&
			x.First == y.First && x.Last == y.Last && x.Count == y.Count
	})
}

func TestSightings(t *testing.T) {
	const c = "10.0.0.1"
	tests := []struct {
		name     string
		cfg      Config
		recs     []rec
		client   string
		from, to time.Duration
		want     []brief
	}{
		{
			name:   "unknown client",
			recs:   []rec{{c, "a.example", []string{"1.1.1.1"}, 0, 0}},
			client: "10.0.0.2", from: 0, to: time.Hour,
		},
		{
			name:   "no ips is a no-op",
			recs:   []rec{{c, "a.example", nil, 0, 0}},
			client: c, from: 0, to: time.Hour,
		},
		{
			name: "merged per IP, ordered by first sighting",
			recs: []rec{
				{c, "b.example", []string{"2.2.2.2"}, 0, 1 * time.Second},
				{c, "a.example", []string{"1.1.1.1", "2.2.2.2"}, 0, 2 * time.Second},
				{c, "", []string{"1.1.1.1"}, 8443, 3 * time.Second},
				{c, "", []string{"1.1.1.1"}, 8443, 4 * time.Second},
			},
			client: c, from: 0, to: time.Hour,
			want: []brief{
				{"2.2.2.2", []string{"b.example", "a.example"}, nil, 1 * time.Second, 2 * time.Second, 2},
				{"1.1.1.1", []string{"a.example"}, []uint16{8443}, 2 * time.Second, 4 * time.Second, 3},
			},
		},
		{
			name: "range bounds are inclusive",
			recs: []rec{
				{c, "a.example", []string{"1.1.1.1"}, 0, 1 * time.Minute},
				{c, "b.example", []string{"2.2.2.2"}, 0, 3 * time.Minute},
				{c, "c.example", []string{"3.3.3.3"}, 0, 5 * time.Minute},
				{c, "d.example", []string{"4.4.4.4"}, 0, 7 * time.Minute},
			},
			client: c, from: 3 * time.Minute, to: 5 * time.Minute,
			want: []brief{
				{"2.2.2.2", []string{"b.example"}, nil, 3 * time.Minute, 3 * time.Minute, 1},
				{"3.3.3.3", []string{"c.example"}, nil, 5 * time.Minute, 5 * time.Minute, 1},
			},
		},
		{
			name:   "nothing in range",
			recs:   []rec{{c, "a.example", []string{"1.1.1.1"}, 0, 0}},
			client: c, from: time.Second, to: time.Hour,
		},
		{
			name: "IPv4-mapped client and IPs are IPv4",
			recs: []rec{
				{"::ffff:10.0.0.1", "a.example", []string{"::ffff:1.1.1.1"}, 0, 0},
				{c, "a.example", []string{"1.1.1.1"}, 0, time.Second},
			},
			client: c, from: 0, to: time.Hour,
			want: []brief{{"1.1.1.1", []string{"a.example"}, nil, 0, time.Second, 2}},
		},
		{
			name: "IPv6 client, zone ignored",
			recs: []rec{
				{"fe80::1%eth0", "a.example", []string{"2001:4860::8888"}, 0, 0},
			},
			client: "fe80::1", from: 0, to: time.Hour,
			want: []brief{{"2001:4860::8888", []string{"a.example"}, nil, 0, 0, 1}},
		},
		{
			name: "names and ports are capped",
			recs: func() []rec {
				var rs []rec
				for i := range 12 {
					rs = append(rs, rec{c, fmt.Sprintf("n%d.example", i), []string{"1.1.1.1"}, uint16(1000 + i), time.Duration(i) * time.Second})
				}
				return rs
			}(),
			client: c, from: 0, to: time.Hour,
			want: []brief{{
				"1.1.1.1",
				[]string{"n0.example", "n1.example", "n2.example", "n3.example", "n4.example", "n5.example", "n6.example", "n7.example"},
				[]uint16{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007},
				0, 11 * time.Second, 12,
			}},
		},
		{
			name: "a repeated lookup is merged and keeps its first sighting",
			recs: []rec{
				{c, "a.example", []string{"1.1.1.1"}, 0, 0},
				{c, "a.example", []string{"1.1.1.1"}, 0, 50 * time.Second},
				{c, "a.example", []string{"1.1.1.1"}, 0, 100 * time.Second},
			},
			// The asked range falls between two sightings of one run.
			client: c, from: 60 * time.Second, to: 90 * time.Second,
			want: []brief{{"1.1.1.1", []string{"a.example"}, nil, 0, 100 * time.Second, 3}},
		},
		{
			name: "a lookup after a long pause is a new entry",
			recs: []rec{
				{c, "a.example", []string{"1.1.1.1"}, 0, 0},
				{c, "a.example", []string{"1.1.1.1"}, 0, 5 * time.Minute},
			},
			client: c, from: time.Minute, to: 4 * time.Minute,
		},
		{
			name: "a record older than the run extends it backwards",
			recs: []rec{
				{c, "", []string{"1.1.1.1"}, 22, 2 * time.Minute},
				{c, "", []string{"1.1.1.1"}, 22, 90 * time.Second},
			},
			client: c, from: 0, to: 100 * time.Second,
			want: []brief{{"1.1.1.1", nil, []uint16{22}, 90 * time.Second, 2 * time.Minute, 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.cfg)
			for _, r := range tt.recs {
				r.apply(s)
			}
			got := briefs(s.Sightings(ip(tt.client), at(tt.from), at(tt.to)))
			if !equalBriefs(got, tt.want) {
				t.Errorf("Sightings:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(entry{}); got != 56 {
		t.Errorf("entry is %d bytes, want 56", got)
	}
}

func TestFirstPrecision(t *testing.T) {
	c := ip("10.0.0.1")
	const sub = 123_456 * time.Nanosecond // off the millisecond grid
	t.Run("single sighting is exact", func(t *testing.T) {
		s := New(Config{})
		s.Record(c, "a.example", ips("1.1.1.1"), 0, at(time.Second+sub))
		got := briefs(s.Sightings(c, t0, at(time.Hour)))
		want := []brief{{"1.1.1.1", []string{"a.example"}, nil, time.Second + sub, time.Second + sub, 1}}
		if !equalBriefs(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("a long run does not drift", func(t *testing.T) {
		s := New(Config{})
		first := time.Second + 700*time.Microsecond
		s.Record(c, "a.example", ips("1.1.1.1"), 0, at(first))
		// Thousands of merges, each ending off the grid in another place.
		last := first
		for i := range 5000 {
			last += 10*time.Second + time.Duration(i%997)*time.Microsecond
			s.Record(c, "a.example", ips("1.1.1.1"), 0, at(last))
		}
		got := s.Sightings(c, t0, at(24*time.Hour))
		if len(got) != 1 || got[0].Count != 5001 || !got[0].Last.Equal(at(last)) {
			t.Fatalf("got %+v, want one run of 5001 ending at %v", briefs(got), last)
		}
		if f := got[0].First.Sub(t0); f.Truncate(time.Millisecond) != first.Truncate(time.Millisecond) {
			t.Errorf("First = %v, want within the millisecond of %v", f, first)
		}
		if (got[0].Last.Sub(got[0].First))%time.Millisecond != 0 {
			t.Errorf("Last-First = %v, want whole milliseconds", got[0].Last.Sub(got[0].First))
		}
	})
	t.Run("extending backwards", func(t *testing.T) {
		s := New(Config{})
		s.Record(c, "", ips("1.1.1.1"), 22, at(2*time.Minute+sub))
		s.Record(c, "", ips("1.1.1.1"), 22, at(90*time.Second+2*sub))
		got := s.Sightings(c, t0, at(time.Hour))
		if len(got) != 1 || !got[0].Last.Equal(at(2*time.Minute+sub)) ||
			got[0].First.Sub(t0).Truncate(time.Millisecond) != (90*time.Second+2*sub).Truncate(time.Millisecond) {
			t.Errorf("got %+v, want one run from the millisecond of 1m30.000246912s to 2m0.000123456s", briefs(got))
		}
	})
	t.Run("span saturates", func(t *testing.T) {
		e := entry{last: 0, count: 1}
		e.extend(int64(60 * 24 * time.Hour)) // what a chain of merges could reach
		if e.span != ^uint32(0) || e.last != int64(60*24*time.Hour) || e.first() > e.last || e.count != 2 {
			t.Errorf("entry %+v, first %d: want span saturated", e, e.first())
		}
	})
}

func TestNames(t *testing.T) {
	c := ip("10.0.0.1")
	s := New(Config{})
	// Each call with its own copy of the name, as a DNS library hands it.
	for i := range 3 {
		s.Record(c, strings.Clone("a.example."), ips("1.1.1.1", "1.1.1.2"), 0, at(time.Duration(i)*time.Second))
	}
	s.Record(c, "", ips("1.1.1.1"), 0, at(3*time.Second)) // no name: not merged with a named entry
	s.Record(c, "", ips("1.1.1.1"), 0, at(4*time.Second))
	s.Record(c, "b.example.", ips("1.1.1.1"), 0, at(5*time.Second))
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4 (a.example. on two IPs, one nameless, b.example.)", s.Len())
	}
	got := briefs(s.Sightings(c, t0, at(time.Hour)))
	want := []brief{
		{"1.1.1.1", []string{"a.example.", "b.example."}, nil, 0, 5 * time.Second, 6},
		{"1.1.1.2", []string{"a.example."}, nil, 0, 2 * time.Second, 3},
	}
	if !equalBriefs(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestRecordKeepsNoCallerString checks that a store past a quarter full shares
// names rather than holding the string it was given.
func TestRecordKeepsNoCallerString(t *testing.T) {
	s := New(Config{Total: 64}) // one entry per shard
	for i := range 64 * 4 {     // every shard past a quarter full
		s.Record(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), "filler.example.", ips("1.1.1.9"), 0, t0)
	}
	name := strings.Clone("a-name-long-enough-not-to-be-a-tiny-allocation.example.")
	freed := make(chan struct{})
	runtime.AddCleanup(unsafe.StringData(name), func(ch chan struct{}) { close(ch) }, freed)
	s.Record(ip("10.0.0.1"), name, ips("1.1.1.1"), 0, t0)
	name = ""
	for range 100 {
		runtime.GC()
		select {
		case <-freed:
			if got := names(s, "10.0.0.1"); !slices.Equal(got, []string{"a-name-long-enough-not-to-be-a-tiny-allocation.example."}) {
				t.Errorf("names = %v", got)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Error("the caller's name string is still reachable from the store")
	runtime.KeepAlive(s)
}

func TestRingGrowth(t *testing.T) {
	var sizes []int
	for size := minRing; size < DefaultPerClient; size = grow(size, DefaultPerClient) {
		sizes = append(sizes, size)
	}
	if want := []int{4, 6, 9, 13, 19, 28, 42, 63, 94, 141, 211}; !slices.Equal(sizes, want) {
		t.Errorf("ring sizes %v, want %v", sizes, want)
	}
	for _, tt := range []struct{ size, perClient, want int }{{1, 8, 3}, {2, 8, 4}, {3, 8, 5}, {211, 256, 256}, {4, 5, 5}} {
		if got := grow(tt.size, tt.perClient); got != tt.want {
			t.Errorf("grow(%d, %d) = %d, want %d", tt.size, tt.perClient, got, tt.want)
		}
	}
	// A client's ring as Record and Sweep leave it.
	s := New(Config{Retain: time.Minute})
	c := ip("10.0.0.1")
	ring := func() int {
		sh := s.shard(c)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return len(sh.clients[c].ring)
	}
	for i := range 10 {
		s.Record(c, fmt.Sprintf("n%d", i), ips(fmt.Sprintf("1.1.1.%d", i)), 0, at(time.Duration(i)*time.Second))
	}
	if got := ring(); got != 13 {
		t.Errorf("10 entries in a ring of %d, want 13", got)
	}
	for i := range 90 {
		s.Record(c, fmt.Sprintf("m%d", i), ips(fmt.Sprintf("1.1.2.%d", i)), 0, at(time.Minute+time.Duration(i)*time.Second))
	}
	if got := ring(); got != 141 {
		t.Errorf("100 entries in a ring of %d, want 141", got)
	}
	s.Sweep(at(3*time.Minute + 24*time.Second)) // keeps the last 6
	if s.Len() != 6 || ring() != 17 {
		t.Errorf("after Sweep: %d entries in a ring of %d, want 6 in 17 (141 halved while at most a quarter full)", s.Len(), ring())
	}
	s.Sweep(at(3*time.Minute + 29*time.Second)) // keeps the last one
	if s.Len() != 1 || ring() != minRing {
		t.Errorf("after Sweep: %d entries in a ring of %d, want 1 in %d", s.Len(), ring(), minRing)
	}
}

func TestRecordIgnoresInvalid(t *testing.T) {
	s := New(Config{})
	s.Record(netip.Addr{}, "a.example", ips("1.1.1.1"), 0, t0)
	s.Record(ip("10.0.0.1"), "a.example", []netip.Addr{{}}, 0, t0)
	if s.Len() != 0 {
		t.Errorf("Len = %d after invalid records, want 0", s.Len())
	}
	if got := s.Sightings(netip.Addr{}, t0, t0); got != nil {
		t.Errorf("Sightings(invalid) = %v, want nil", got)
	}
}

// names returns the names a client's sightings hold, sorted.
func names(s *Store, client string) []string {
	var out []string
	for _, sg := range s.Sightings(ip(client), at(-time.Hour), at(time.Hour)) {
		out = append(out, sg.Names...)
	}
	slices.Sort(out)
	return out
}

func TestRepeatedLookupsKeepHistory(t *testing.T) {
	s := New(Config{PerClient: 4})
	c := ip("10.0.0.1")
	for i, n := range []string{"a", "b", "c"} {
		s.Record(c, n, ips(fmt.Sprintf("1.1.1.%d", i+1)), 0, at(time.Duration(i)*time.Second))
	}
	// A tight loop re-resolving one name, interleaved with another answer.
	for i := range 1000 {
		s.Record(c, "loop", ips("9.9.9.9"), 0, at(3*time.Second+time.Duration(i)*time.Millisecond))
		s.Record(c, "c", ips("1.1.1.3"), 0, at(3*time.Second+time.Duration(i)*time.Millisecond))
	}
	if got, want := names(s, "10.0.0.1"), []string{"a", "b", "c", "loop"}; !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v", got, want)
	}
	if s.Evicted() != 0 || s.Len() != 4 {
		t.Errorf("Evicted = %d, Len = %d; want 0, 4", s.Evicted(), s.Len())
	}
}

func TestPerClientCap(t *testing.T) {
	tests := []struct {
		perClient   int
		records     int
		wantLen     int
		wantEvicted uint64
		wantOldest  string
	}{
		{perClient: 3, records: 2, wantLen: 2, wantEvicted: 0, wantOldest: "n0"},
		{perClient: 3, records: 5, wantLen: 3, wantEvicted: 2, wantOldest: "n2"},
		{perClient: 6, records: 40, wantLen: 6, wantEvicted: 34, wantOldest: "n34"},
		{perClient: 1, records: 3, wantLen: 1, wantEvicted: 2, wantOldest: "n2"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d", tt.records, tt.perClient), func(t *testing.T) {
			s := New(Config{PerClient: tt.perClient})
			for i := range tt.records {
				s.Record(ip("10.0.0.1"), fmt.Sprintf("n%d", i), ips(fmt.Sprintf("1.1.%d.%d", i/256, i%256)), 0, at(time.Duration(i)*time.Second))
			}
			if s.Len() != tt.wantLen || s.Evicted() != tt.wantEvicted {
				t.Errorf("Len, Evicted = %d, %d; want %d, %d", s.Len(), s.Evicted(), tt.wantLen, tt.wantEvicted)
			}
			got := s.Sightings(ip("10.0.0.1"), t0, at(time.Hour))
			if len(got) != tt.wantLen || got[0].Names[0] != tt.wantOldest {
				t.Errorf("sightings %+v: want %d starting with %s", briefs(got), tt.wantLen, tt.wantOldest)
			}
		})
	}
}

// sameShard returns n distinct clients that land in one shard of s.
func sameShard(s *Store, n int) []netip.Addr {
	first := ip("10.1.0.0")
	want := s.shard(first)
	out := []netip.Addr{first}
	for a := first.Next(); len(out) < n; a = a.Next() {
		if s.shard(a) == want {
			out = append(out, a)
		}
	}
	return out
}

// tagSet is a Protect for tests: the clients in it are tagged.
type tagSet map[netip.Addr]bool

func (ts tagSet) protect(client netip.Addr, _ time.Time) bool { return ts[client] }

// The Total cap takes, in order: a whole idle unprotected window (the
// heaviest), then an entry of the lightest, newest window recorded within
// Keep, then, every window being tagged, the least recently active one's
// oldest entry.
func TestTotalCapPolicy(t *testing.T) {
	tagged := tagSet{}
	// Total 4*shards gives every shard room for four entries.
	s := New(Config{Total: 4 * shards, Keep: 5 * time.Minute, Protect: tagged.protect})
	cl := sameShard(s, 7)
	a, b, c, d, e, f, g := cl[0], cl[1], cl[2], cl[3], cl[4], cl[5], cl[6]
	s.Record(a, "a1", ips("1.0.0.1"), 0, at(0))
	s.Record(b, "b1", ips("2.0.0.1", "2.0.0.2"), 0, at(time.Second)) // idle later, and heavier than a
	s.Record(c, "c1", ips("3.0.0.1"), 0, at(10*time.Minute))
	s.Record(d, "d1", ips("4.0.0.1"), 0, at(10*time.Minute+time.Second))
	if s.Len() != 3 || s.Evicted() != 2 || names(s, b.String()) != nil {
		t.Fatalf("Len %d, Evicted %d, b %v: want b's whole idle window gone first, though a is less recently active",
			s.Len(), s.Evicted(), names(s, b.String()))
	}
	s.Record(e, "e1", ips("5.0.0.1"), 0, at(10*time.Minute+2*time.Second))
	// a is idle but tagged: kept. c, d and e were recorded within Keep; e is
	// the newest window, so it makes room.
	tagged[a] = true
	s.Record(f, "f1", ips("6.0.0.1"), 0, at(10*time.Minute+3*time.Second))
	if got := names(s, a.String()); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("tagged a = %v, want [a1]", got)
	}
	if names(s, e.String()) != nil || names(s, c.String()) == nil || names(s, d.String()) == nil {
		t.Errorf("c = %v, d = %v, e = %v; want e (the newest of the light recent windows) gone",
			names(s, c.String()), names(s, d.String()), names(s, e.String()))
	}
	if s.EvictedProtected() != 1 {
		t.Errorf("EvictedProtected = %d, want 1", s.EvictedProtected())
	}
	// Everyone tagged: the least recently active (a) gives up its oldest entry.
	tagged[c], tagged[d], tagged[f], tagged[g] = true, true, true, true
	s.Record(g, "g1", ips("7.0.0.1"), 0, at(10*time.Minute+4*time.Second))
	if names(s, a.String()) != nil || s.Len() != 4 || s.Evicted() != 4 || s.EvictedProtected() != 2 {
		t.Errorf("a = %v, Len %d, Evicted %d, EvictedProtected %d; want a gone, 4, 4, 2",
			names(s, a.String()), s.Len(), s.Evicted(), s.EvictedProtected())
	}
}

func TestTotalCapAloneInShard(t *testing.T) {
	s := New(Config{Total: 4 * shards})
	c := ip("10.0.0.1")
	for i := range 6 {
		s.Record(c, fmt.Sprintf("n%d", i), ips(fmt.Sprintf("1.0.0.%d", i)), 0, at(time.Duration(i)*time.Second))
	}
	if got, want := names(s, c.String()), []string{"n2", "n3", "n4", "n5"}; !slices.Equal(got, want) {
		t.Errorf("names = %v, want %v: alone in a full shard, a client gives up its own oldest entries", got, want)
	}
	if s.Evicted() != 2 || s.EvictedProtected() != 2 {
		t.Errorf("Evicted %d, EvictedProtected %d; want 2, 2", s.Evicted(), s.EvictedProtected())
	}
}

// Acceptance: a flood of spoofed sources does not push out the window of a
// client whose event has not arrived yet, whether the client is tagged or
// merely recorded within Keep; idle untagged windows go first.
func TestFloodKeepsVictimWindow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tagged bool
		victim time.Duration // when the victim resolved its 20 names
	}{
		{"tagged victim, idle", true, -time.Hour},
		{"untagged victim within keep", false, -time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const total = 40 * shards
			tagged := tagSet{}
			s := New(Config{Total: total, Keep: 5 * time.Minute, Protect: tagged.protect})
			cl := sameShard(s, 3)
			victim, idle, idleTagged := cl[0], cl[1], cl[2]
			tagged[idleTagged] = true
			if tt.tagged {
				tagged[victim] = true
			}
			s.Record(idle, "idle.example.", ips("9.9.9.1"), 0, at(-2*time.Hour))
			s.Record(idleTagged, "idle.example.", ips("9.9.9.1"), 0, at(-2*time.Hour))
			for i := range 20 {
				s.Record(victim, fmt.Sprintf("v%d.example.", i), ips(fmt.Sprintf("45.83.1.%d", i)), 0, at(tt.victim+time.Duration(i)*time.Second))
			}
			// 20,000 spoofed sources, two answers each, in 1.3 s: 40,000
			// entries against a Total of 2,560.
			recorded := 20 + 2
			for i := range 20_000 {
				src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
				when := at(time.Duration(i) * 65 * time.Microsecond)
				s.Record(src, "flood.example.", ips("93.184.216.34"), 0, when)
				s.Record(src, "flood2.example.", ips("93.184.216.35"), 0, when)
				recorded += 2
			}

			got := s.Sightings(victim, at(tt.victim), at(time.Hour))
			if len(got) != 20 {
				t.Errorf("the victim kept %d of its 20 sightings", len(got))
			}
			if s.Sightings(idle, at(-3*time.Hour), at(time.Hour)) != nil {
				t.Error("the idle untagged window survived the flood; it should go first")
			}
			if s.Sightings(idleTagged, at(-3*time.Hour), at(time.Hour)) == nil {
				t.Error("the idle tagged window was evicted")
			}
			if s.Len() > total || s.Evicted() != uint64(recorded-s.Len()) {
				t.Errorf("Len %d, Evicted %d; want at most %d held and every other entry counted", s.Len(), s.Evicted(), total)
			}
			if s.EvictedProtected() == 0 {
				t.Error("EvictedProtected = 0; the flood's own windows were recorded within Keep")
			}
		})
	}
}

// A tagged segment's quiet clients at the least recently active end do not
// hide an idle untagged window behind them for good: evict moves them up.
func TestProtectedTailMovesUp(t *testing.T) {
	const quiet, recent = 2 * sample, 2 * sample
	s := New(Config{})
	cl := sameShard(s, quiet+recent+2)
	tagged := tagSet{}
	total := (quiet + recent + 1) * shards
	s.SetLimits(Config{Total: total, Keep: 5 * time.Minute, Protect: tagged.protect})
	for _, c := range cl[:quiet] {
		tagged[c] = true
		s.Record(c, "quiet.example.", ips("9.9.9.1"), 0, at(-time.Hour))
	}
	idle := cl[quiet]
	s.Record(idle, "idle.example.", ips("9.9.9.2"), 0, at(-time.Hour+time.Second))
	for i, c := range cl[quiet+1 : quiet+1+recent] {
		s.Record(c, "recent.example.", ips("9.9.9.3"), 0, at(time.Duration(i)*time.Second))
	}
	// Full. Each new entry needs an eviction; within a few the idle window
	// is reached instead of the recent ones.
	newcomer := cl[len(cl)-1]
	for i := range 3 {
		s.Record(newcomer, fmt.Sprintf("n%d.example.", i), ips(fmt.Sprintf("9.9.8.%d", i)), 0, at(time.Minute+time.Duration(i)*time.Second))
	}
	if s.Sightings(idle, at(-2*time.Hour), at(time.Hour)) != nil {
		t.Error("the idle untagged window is still there")
	}
	for _, c := range cl[:quiet] {
		if s.Sightings(c, at(-2*time.Hour), at(time.Hour)) == nil {
			t.Errorf("tagged %v was evicted", c)
		}
	}
	if p := s.EvictedProtected(); p > 2 {
		t.Errorf("EvictedProtected = %d: recent windows paid while an idle one was there", p)
	}
}

func TestTotalCapBoundsStore(t *testing.T) {
	const total = 10 * shards
	s := New(Config{Total: total})
	for i := range 5000 {
		s.Record(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), "x", ips("1.1.1.1"), 0, at(time.Duration(i)*time.Millisecond))
	}
	if s.Len() > total {
		t.Errorf("Len = %d, over Total %d", s.Len(), total)
	}
	if got := uint64(5000 - s.Len()); s.Evicted() != got {
		t.Errorf("Evicted = %d, want %d (every entry not held)", s.Evicted(), got)
	}
	if s.Clients() != s.Len() {
		t.Errorf("Clients = %d, Len = %d: evicted clients must be freed", s.Clients(), s.Len())
	}
}

func TestSweep(t *testing.T) {
	s := New(Config{Retain: 10 * time.Minute})
	s.Record(ip("10.0.0.1"), "old", ips("1.1.1.1"), 0, at(0))
	s.Record(ip("10.0.0.1"), "new", ips("1.1.1.2"), 0, at(8*time.Minute))
	s.Record(ip("10.0.0.2"), "old", ips("1.1.1.1"), 0, at(time.Minute))
	// A run that started long ago but was seen recently is kept.
	for m := 0; m <= 12; m++ {
		s.Record(ip("10.0.0.3"), "run", ips("1.1.1.3"), 0, at(time.Duration(m)*time.Minute))
	}
	// Connection records can arrive out of order.
	s.Record(ip("10.0.0.4"), "", ips("1.1.1.4"), 443, at(11*time.Minute))
	s.Record(ip("10.0.0.4"), "", ips("1.1.1.5"), 443, at(1*time.Minute))

	tests := []struct {
		now         time.Duration
		wantDropped int
		wantLen     int
		wantClients int
	}{
		{now: 10 * time.Minute, wantDropped: 0, wantLen: 6, wantClients: 4},   // exactly Retain old: kept
		{now: 10*time.Minute + 1, wantDropped: 1, wantLen: 5, wantClients: 4}, // 10.0.0.1 "old"
		{now: 10*time.Minute + 1, wantDropped: 0, wantLen: 5, wantClients: 4}, // idempotent
		{now: 11*time.Minute + 1, wantDropped: 2, wantLen: 3, wantClients: 3}, // 10.0.0.2, 10.0.0.4's 1.1.1.5
		{now: 22*time.Minute + 1, wantDropped: 3, wantLen: 0, wantClients: 0}, // everything
		{now: 30 * time.Minute, wantDropped: 0, wantLen: 0, wantClients: 0},
	}
	for _, tt := range tests {
		if got := s.Sweep(at(tt.now)); got != tt.wantDropped || s.Len() != tt.wantLen || s.Clients() != tt.wantClients {
			t.Errorf("Sweep(%v) = %d, Len %d, Clients %d; want %d, %d, %d",
				tt.now, got, s.Len(), s.Clients(), tt.wantDropped, tt.wantLen, tt.wantClients)
		}
	}
	if s.Evicted() != 0 {
		t.Errorf("Evicted = %d; expiry is not eviction", s.Evicted())
	}
}

func TestSweepKeepsOrderAfterShrinking(t *testing.T) {
	s := New(Config{Retain: time.Minute})
	c := ip("10.0.0.1")
	for i := range 64 {
		s.Record(c, fmt.Sprintf("n%02d", i), ips(fmt.Sprintf("1.1.1.%d", i)), 0, at(time.Duration(i)*time.Second))
	}
	// Keep the last four: the ring shrinks, the order must survive.
	s.Sweep(at(time.Minute + 60*time.Second))
	got := s.Sightings(c, t0, at(time.Hour))
	var order []string
	for _, sg := range got {
		order = append(order, sg.Names[0])
	}
	if want := []string{"n60", "n61", "n62", "n63"}; !slices.Equal(order, want) {
		t.Errorf("after sweep: %v, want %v", order, want)
	}
	// And it still grows.
	for i := range 10 {
		s.Record(c, fmt.Sprintf("m%d", i), ips(fmt.Sprintf("2.2.2.%d", i)), 0, at(2*time.Minute))
	}
	if s.Len() != 14 {
		t.Errorf("Len = %d, want 14", s.Len())
	}
}

func TestSetLimits(t *testing.T) {
	tests := []struct {
		name        string
		next        Config
		wantLen     int
		wantEvicted uint64
		wantNames   []string // of client 10.0.0.1
		wantNewCap  int      // what a client recording 10 entries afterwards holds
	}{
		{"unchanged", Config{PerClient: 5}, 10, 0, []string{"n5", "n6", "n7", "n8", "n9"}, 5},
		{"fewer per client", Config{PerClient: 2}, 4, 6, []string{"n8", "n9"}, 2},
		{"more per client", Config{PerClient: 8}, 10, 0, []string{"n5", "n6", "n7", "n8", "n9"}, 8},
		{"defaults", Config{}, 10, 0, []string{"n5", "n6", "n7", "n8", "n9"}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{PerClient: 5})
			for i := range 10 {
				for _, c := range []string{"10.0.0.1", "10.0.0.2"} {
					s.Record(ip(c), fmt.Sprintf("n%d", i), ips(fmt.Sprintf("1.1.1.%d", i)), 0, at(time.Duration(i)*time.Second))
				}
			}
			base := s.Evicted()
			s.SetLimits(tt.next)
			if s.Len() != tt.wantLen || s.Evicted()-base != tt.wantEvicted {
				t.Errorf("Len %d, evicted by SetLimits %d; want %d, %d", s.Len(), s.Evicted()-base, tt.wantLen, tt.wantEvicted)
			}
			if got := names(s, "10.0.0.1"); !slices.Equal(got, tt.wantNames) {
				t.Errorf("names = %v, want %v", got, tt.wantNames)
			}
			for i := range 10 {
				s.Record(ip("10.0.0.3"), fmt.Sprintf("n%d", i), ips(fmt.Sprintf("1.1.1.%d", i)), 0, at(time.Duration(i)*time.Second))
			}
			if got := len(names(s, "10.0.0.3")); got != tt.wantNewCap {
				t.Errorf("a new client holds %d entries, want %d", got, tt.wantNewCap)
			}
		})
	}
}

func TestSetLimitsShrinksTotal(t *testing.T) {
	s := New(Config{})
	for i := range 1000 {
		s.Record(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), "x", ips("1.1.1.1", "1.1.1.2"), 0, t0)
	}
	s.SetLimits(Config{Total: shards})
	if s.Len() > shards || s.Evicted() != uint64(2000-s.Len()) {
		t.Errorf("Len %d, Evicted %d after shrinking Total to %d", s.Len(), s.Evicted(), shards)
	}
}

func TestRecordSteadyStateDoesNotAllocate(t *testing.T) {
	s := New(Config{PerClient: 16})
	c := ip("10.0.0.1")
	answers := [][]netip.Addr{ips("1.1.1.1"), ips("1.1.1.2", "1.1.1.3"), ips("2001:db8::1"), ips("1.1.1.4")}
	names := []string{"a.example", "b.example", "c.example", "d.example"}
	for i := range 64 { // fill the ring
		s.Record(c, names[i%4], answers[i%4], 0, at(time.Duration(i)*time.Hour))
	}
	i := 64
	allocs := testing.AllocsPerRun(1000, func() {
		s.Record(c, names[i%4], answers[i%4], 0, at(time.Duration(i)*time.Hour))
		i++
	})
	if allocs != 0 {
		t.Errorf("Record on a full ring allocates %.1f times, want 0", allocs)
	}
	// Nor when each call brings its own copy of the name, as from a DNS
	// message: interning a known name does not allocate.
	fresh := make([]string, 1001)
	for k := range fresh {
		fresh[k] = strings.Clone(names[k%4])
	}
	k := 0
	allocs = testing.AllocsPerRun(1000, func() {
		s.Record(c, fresh[k], answers[k%4], 0, at(time.Duration(i)*time.Hour))
		i++
		k++
	})
	if allocs != 0 {
		t.Errorf("Record with a fresh name string allocates %.1f times, want 0", allocs)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(Config{PerClient: 8, Total: 4 * shards, Retain: time.Minute})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				client := netip.AddrFrom4([4]byte{10, byte(g), 0, byte(i % 50)})
				now := at(time.Duration(i) * time.Second)
				s.Record(client, "x", ips("1.1.1.1", "2001:4860::1"), uint16(i%3), now)
				switch i % 100 {
				case 0:
					s.Sightings(client, now.Add(-time.Minute), now)
				case 50:
					s.Sweep(now)
					_, _, _ = s.Len(), s.Clients(), s.Evicted()
				case 99:
					if g == 0 {
						s.SetLimits(Config{PerClient: 4 + i%8, Total: (2 + i%4) * shards})
					}
				}
			}
		})
	}
	wg.Wait()
	if s.Len() > 5*shards {
		t.Errorf("Len = %d, over every cap", s.Len())
	}
}

func BenchmarkRecord(b *testing.B) {
	b.Run("new-name", func(b *testing.B) {
		s := New(Config{})
		c := ip("10.0.0.1")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// An hour apart: never merged, the ring turns over.
			s.Record(c, benchNames[i%4], benchAnswers[i%4], 0, at(time.Duration(i)*time.Hour))
			i++
		}
	})
	b.Run("repeat", func(b *testing.B) {
		s := New(Config{})
		c := ip("10.0.0.1")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Record(c, benchNames[0], benchAnswers[0], 0, at(time.Duration(i)*time.Millisecond))
			i++
		}
	})
}

// BenchmarkRecordManyNames records answers for names drawn from 100k
// distinct ones, each a fresh string as miekg/dns gives one per message, at
// new-entry cost (an hour apart): the interning of a name the store has
// seen, in a name set too large for the CPU's caches.
func BenchmarkRecordManyNames(b *testing.B) {
	const n = 100_000
	pool := make([]string, n)
	for i := range pool {
		pool[i] = fmt.Sprintf("host-%d.many.example.com.", i)
	}
	s := New(Config{})
	clients := make([]netip.Addr, 1024)
	for i := range clients {
		clients[i] = netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)})
	}
	for i := range pool { // every name is known, as in a warm resolver
		s.Record(clients[i%len(clients)], pool[i], benchAnswers[i%4], 0, at(0))
	}
	fresh := make([]string, 1<<16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(fresh) == 0 {
			b.StopTimer()
			for k := range fresh { // a Zipf-like mix: hot names and a long tail
				r := rand.IntN(n)
				if k%2 == 0 {
					r = rand.IntN(1000)
				}
				fresh[k] = strings.Clone(pool[r])
			}
			b.StartTimer()
		}
		s.Record(clients[i%len(clients)], fresh[i%len(fresh)], benchAnswers[i%4], 0, at(time.Duration(i)*time.Hour))
		i++
	}
}

// steadyStore returns a store whose clients all have full rings, the state
// of a busy resolver after a few minutes.
func steadyStore(clients int) (*Store, []netip.Addr) {
	s := New(Config{})
	addrs := make([]netip.Addr, clients)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, 4, byte(i >> 8), byte(i)})
		for k := range DefaultPerClient {
			s.Record(addrs[i], benchNames[k%4], benchAnswers[k%4], 0, at(time.Duration(k)*time.Hour))
		}
	}
	return s, addrs
}

var (
	benchAnswers = [][]netip.Addr{ips("93.184.216.34"), ips("140.82.112.3", "140.82.112.4"), ips("2606:4700::6810:84e5"), ips("151.101.1.69")}
	benchNames   = []string{"example.com.", "github.com.", "cloudflare.com.", "fastly.com."}
)

// BenchmarkRecordManyClients spreads Records over 2048 clients with full
// rings (≈ 25 MB of entries, half the default Total), so most of the cost is cache misses.
func BenchmarkRecordManyClients(b *testing.B) {
	s, clients := steadyStore(2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Record(clients[(i*2654435761)%len(clients)], benchNames[i%4], benchAnswers[i%4], 0, at(time.Duration(i)*time.Hour))
		i++
	}
}

// BenchmarkRecordParallel records from every CPU at once: "hot" over 64
// clients whose rings stay in cache, which shows the cost of the sharded
// locks, "cold" over the 2048 of BenchmarkRecordManyClients.
func BenchmarkRecordParallel(b *testing.B) {
	for _, n := range []struct {
		name    string
		clients int
	}{{"hot", 64}, {"cold", 2048}} {
		b.Run(n.name, func(b *testing.B) {
			s, clients := steadyStore(n.clients)
			var seq atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 7919 // each goroutine its own walk over the clients
				for pb.Next() {
					s.Record(clients[(i*2654435761)%len(clients)], benchNames[i%4], benchAnswers[i%4], 0, at(time.Duration(i)*time.Hour))
					i++
				}
			})
		})
	}
}

func BenchmarkSightings(b *testing.B) {
	s := New(Config{})
	c := ip("10.0.0.1")
	for i := range DefaultPerClient {
		s.Record(c, fmt.Sprintf("n%d.example.", i%40), []netip.Addr{netip.AddrFrom4([4]byte{93, 184, byte(i % 7), byte(i)})}, 0, at(time.Duration(i)*time.Second))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Sightings(c, at(0), at(5*time.Minute))
	}
}

// BenchmarkMemory fills the store at its default caps with 100k clients of
// 4 entries each (Total is 400k, enforced per shard, so an uneven shard
// evicts a few) and reports the heap the store holds per entry, per client
// and in all.
//
// "shared" passes one of 64 long-lived name strings, so names cost nothing.
// "fresh" models production: miekg/dns allocates the qname anew for every
// message, so each Record gets its own copy of one of 5,000 distinct names,
// and whatever the store keeps of it shows up here.
func BenchmarkMemory(b *testing.B) {
	b.Run("shared", func(b *testing.B) { benchMemory(b, 64, false) })
	b.Run("fresh", func(b *testing.B) { benchMemory(b, 5000, true) })
}

func benchMemory(b *testing.B, distinct int, fresh bool) {
	const clients, perClient = 100_000, 4
	names := make([]string, distinct)
	for i := range names {
		names[i] = fmt.Sprintf("name-%d.example.com.", i)
	}
	answer := make([]netip.Addr, 1)
	var perEntry, perClientBytes, total float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(Config{})
		for c := range clients {
			client := netip.AddrFrom4([4]byte{10, byte(c >> 16), byte(c >> 8), byte(c)})
			for k := range perClient {
				answer[0] = netip.AddrFrom4([4]byte{93, byte(k), byte(c >> 8), byte(c)})
				name := names[(c*perClient+k)%len(names)]
				if fresh {
					name = strings.Clone(name)
				}
				s.Record(client, name, answer, 0, at(time.Duration(k)*time.Second))
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		perEntry, perClientBytes, total = held/float64(s.Len()), held/float64(s.Clients()), held/(1<<20)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(perClientBytes, "bytes/client")
	b.ReportMetric(total, "MiB")
}

// BenchmarkRecordFlood records, into a full store of 2048 established
// clients, answers for a new source every time, as a flood of spoofed
// sources does: every Record pays for an eviction.
func BenchmarkRecordFlood(b *testing.B) {
	s := New(Config{Total: 16 * 1024})
	for c := range 2048 {
		client := netip.AddrFrom4([4]byte{10, 6, byte(c >> 8), byte(c)})
		for k := range 8 {
			s.Record(client, benchNames[k%4], benchAnswers[k%4], 0, at(time.Duration(k)*time.Second))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		src := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
		s.Record(src, benchNames[0], benchAnswers[0], 0, at(time.Minute+time.Duration(i)*time.Microsecond))
		i++
	}
}
