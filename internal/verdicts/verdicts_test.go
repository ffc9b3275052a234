package verdicts_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// t0 is an arbitrary fixed clock: the cache never reads the wall clock for
// per-outcome expiry, so tests pass time explicitly.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{45, 83, byte(i >> 8), byte(i)})
}

func suspicious(ip netip.Addr) verdicts.Verdict {
	return verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious, Score: "Critical",
		Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical"}}}
}

func TestTTLPerOutcome(t *testing.T) {
	ttls := verdicts.TTLs{Suspicious: 24 * time.Hour, Clean: time.Hour, Error: time.Minute}
	c := verdicts.New(100, ttls)
	bad, good, failed := addr(1), addr(2), addr(3)
	c.Put(suspicious(bad), t0)
	c.Put(verdicts.Verdict{IP: good, Outcome: verdicts.Clean}, t0)
	c.Put(verdicts.Verdict{IP: failed, Outcome: verdicts.Error, Error: criminalip.KindTransient}, t0)

	for _, tc := range []struct {
		after             time.Duration
		bad, good, failed bool // still cached
	}{
		{0, true, true, true},
		{time.Minute - time.Nanosecond, true, true, true},
		{time.Minute, true, true, false},
		{time.Hour, true, false, false},
		{24*time.Hour - time.Nanosecond, true, false, false},
		{24 * time.Hour, false, false, false},
	} {
		now := t0.Add(tc.after)
		for _, ip := range []struct {
			addr netip.Addr
			want bool
		}{{bad, tc.bad}, {good, tc.good}, {failed, tc.failed}} {
			if _, ok := c.Get(ip.addr, now); ok != ip.want {
				t.Errorf("after %v: Get(%s) found = %v, want %v", tc.after, ip.addr, ok, ip.want)
			}
		}
		if _, ok := c.Suspicious(bad, now); ok != tc.bad {
			t.Errorf("after %v: Suspicious(%s) = %v, want %v", tc.after, bad, ok, tc.bad)
		}
	}
	// Get removes what it finds expired.
	if n := c.Len(); n != 0 {
		t.Errorf("Len after every verdict expired = %d, want 0", n)
	}
	if l := c.SuspiciousList(t0); len(l) != 0 {
		t.Errorf("SuspiciousList after expiry = %v, want none", l)
	}
}

func TestDefaults(t *testing.T) {
	c := verdicts.New(0, verdicts.TTLs{})
	for _, tc := range []struct {
		outcome verdicts.Outcome
		ttl     time.Duration
	}{
		{verdicts.Suspicious, verdicts.DefaultSuspiciousTTL},
		{verdicts.Clean, verdicts.DefaultCleanTTL},
		{verdicts.Error, verdicts.DefaultErrorTTL},
		{"", verdicts.DefaultErrorTTL}, // unknown outcomes live no longer than errors
	} {
		v := c.Put(verdicts.Verdict{IP: addr(9), Outcome: tc.outcome}, t0)
		if got := v.Expires.Sub(v.Checked); got != tc.ttl {
			t.Errorf("%q: TTL %v, want %v", tc.outcome, got, tc.ttl)
		}
	}
	for i := range verdicts.DefaultSize + 1 {
		c.Put(verdicts.Verdict{IP: addr(i), Outcome: verdicts.Clean}, t0)
	}
	if n := c.Len(); n != verdicts.DefaultSize {
		t.Errorf("Len = %d, want the default size %d", n, verdicts.DefaultSize)
	}
}

func TestPut(t *testing.T) {
	c := verdicts.New(10, verdicts.TTLs{})
	mapped := netip.MustParseAddr("::ffff:45.83.0.21")
	v := c.Put(suspicious(mapped), t0)
	if v.IP != mapped.Unmap() {
		t.Errorf("stored IP %s, want it unmapped", v.IP)
	}
	if !v.Checked.Equal(t0) || !v.Expires.Equal(t0.Add(verdicts.DefaultSuspiciousTTL)) {
		t.Errorf("Checked %v Expires %v, want %v and %v later", v.Checked, v.Expires, t0, verdicts.DefaultSuspiciousTTL)
	}
	if !regexp.MustCompile(`^cip-[0-9a-f]{12}$`).MatchString(v.Decision) {
		t.Errorf("suspicious verdict put without a decision got %q, want cip- and 12 hex digits", v.Decision)
	}
	for _, ip := range []netip.Addr{mapped, mapped.Unmap()} {
		if got, ok := c.Suspicious(ip, t0); !ok || got.Decision != v.Decision {
			t.Errorf("Suspicious(%s) = %+v, %v; want the stored verdict", ip, got, ok)
		}
	}

	// A given Checked is kept, and the TTL counts from it: a verdict
	// restored from elsewhere does not live longer for being restored late.
	checked := t0.Add(-30 * time.Minute)
	v = c.Put(verdicts.Verdict{IP: addr(2), Outcome: verdicts.Clean, Checked: checked}, t0)
	if !v.Checked.Equal(checked) || !v.Expires.Equal(checked.Add(verdicts.DefaultCleanTTL)) {
		t.Errorf("Checked %v Expires %v, want %v and an hour later", v.Checked, v.Expires, checked)
	}

	// A suspicious verdict keeps the decision id it was given.
	given := suspicious(addr(3))
	given.Decision = "cip-000000000001"
	if v := c.Put(given, t0); v.Decision != given.Decision {
		t.Errorf("Decision %q, want %q kept", v.Decision, given.Decision)
	}
}

func TestErrorIsNeverClean(t *testing.T) {
	c := verdicts.New(10, verdicts.TTLs{})
	ip := addr(1)
	c.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Error, Error: criminalip.KindQuota}, t0)
	v, ok := c.Get(ip, t0)
	if !ok || v.Outcome != verdicts.Error || v.Error != criminalip.KindQuota || v.Suspicious() {
		t.Errorf("Get = %+v, %v; want the error verdict", v, ok)
	}
	if v.Decision != "" {
		t.Errorf("error verdict got decision %q", v.Decision)
	}
	if _, ok := c.Suspicious(ip, t0); ok {
		t.Error("an error verdict is reported suspicious")
	}
}

// TestSuspiciousIndexFollowsTheStore checks every way a verdict leaves the
// cache or changes: the hot-path index must never claim an IP the store no
// longer holds as suspicious.
func TestSuspiciousIndexFollowsTheStore(t *testing.T) {
	t.Run("lru eviction", func(t *testing.T) {
		c := verdicts.New(3, verdicts.TTLs{})
		c.Put(suspicious(addr(1)), t0)
		for i := 2; i <= 4; i++ {
			c.Put(verdicts.Verdict{IP: addr(i), Outcome: verdicts.Clean}, t0)
		}
		checkConsistent(t, c, 4)
		if _, ok := c.Suspicious(addr(1), t0); ok {
			t.Error("evicted verdict still suspicious")
		}
	})
	t.Run("recently used survives eviction", func(t *testing.T) {
		c := verdicts.New(3, verdicts.TTLs{})
		c.Put(suspicious(addr(1)), t0)
		c.Put(verdicts.Verdict{IP: addr(2), Outcome: verdicts.Clean}, t0)
		c.Get(addr(1), t0)
		c.Put(verdicts.Verdict{IP: addr(3), Outcome: verdicts.Clean}, t0)
		c.Put(verdicts.Verdict{IP: addr(4), Outcome: verdicts.Clean}, t0)
		if _, ok := c.Suspicious(addr(1), t0); !ok {
			t.Error("a verdict just read was evicted before an older one")
		}
		checkConsistent(t, c, 4)
	})
	t.Run("recency to within a second", func(t *testing.T) {
		// A read moves a verdict to the front unless a read moved it less
		// than a second before: the eviction order is LRU at that grain.
		for _, tc := range []struct {
			reread  time.Duration
			evicted int
		}{{500 * time.Millisecond, 1}, {time.Second, 2}} {
			c := verdicts.New(3, verdicts.TTLs{})
			c.Put(verdicts.Verdict{IP: addr(1), Outcome: verdicts.Clean}, t0)
			c.Put(verdicts.Verdict{IP: addr(2), Outcome: verdicts.Clean}, t0)
			c.Get(addr(1), t0)                // first read: to the front (1, 2)
			c.Get(addr(2), t0)                // first read: to the front (2, 1)
			c.Get(addr(1), t0.Add(tc.reread)) // moves only after the grain
			c.Put(verdicts.Verdict{IP: addr(3), Outcome: verdicts.Clean}, t0)
			c.Put(verdicts.Verdict{IP: addr(4), Outcome: verdicts.Clean}, t0)
			for i := 1; i <= 4; i++ {
				if _, ok := c.Get(addr(i), t0.Add(2*time.Second)); ok == (i == tc.evicted) {
					t.Errorf("re-read after %v: %s present = %v, want the eviction of %s", tc.reread, addr(i), ok, addr(tc.evicted))
				}
			}
		}
	})
	t.Run("replaced by clean", func(t *testing.T) {
		c := verdicts.New(3, verdicts.TTLs{})
		c.Put(suspicious(addr(1)), t0)
		c.Put(verdicts.Verdict{IP: addr(1), Outcome: verdicts.Clean}, t0)
		checkConsistent(t, c, 1)
		if _, ok := c.Suspicious(addr(1), t0); ok {
			t.Error("verdict replaced by a clean one still suspicious")
		}
	})
	t.Run("delete", func(t *testing.T) {
		c := verdicts.New(3, verdicts.TTLs{})
		c.Put(suspicious(addr(1)), t0)
		if !c.Delete(addr(1)) {
			t.Error("Delete of a stored verdict = false")
		}
		if c.Delete(addr(1)) {
			t.Error("second Delete = true")
		}
		checkConsistent(t, c, 1)
	})
	t.Run("shrink", func(t *testing.T) {
		c := verdicts.New(10, verdicts.TTLs{})
		for i := 1; i <= 10; i++ {
			c.Put(suspicious(addr(i)), t0)
		}
		c.Resize(4, verdicts.TTLs{})
		checkConsistent(t, c, 10)
		if got := len(c.SuspiciousList(t0)); got != 4 {
			t.Errorf("%d suspicious verdicts after shrinking to 4", got)
		}
		if _, ok := c.Suspicious(addr(10), t0); !ok {
			t.Error("shrinking dropped the newest verdict")
		}
	})
	t.Run("longer ttl", func(t *testing.T) {
		c := verdicts.New(10, verdicts.TTLs{})
		for i := 1; i <= 5; i++ {
			c.Put(suspicious(addr(i)), t0)
		}
		c.Put(verdicts.Verdict{IP: addr(6), Outcome: verdicts.Clean}, t0)
		c.Get(addr(1), t0) // most recently used: must survive the shrink below
		long := verdicts.TTLs{Suspicious: 7 * 24 * time.Hour}
		c.Resize(3, long)
		checkConsistent(t, c, 6)
		if n := c.Len(); n != 3 {
			t.Errorf("Len after Resize(3) = %d", n)
		}
		for _, i := range []int{1, 5} {
			if _, ok := c.Suspicious(addr(i), t0); !ok {
				t.Errorf("%s lost on Resize", addr(i))
			}
		}
		// Stored verdicts keep their expiry; new ones get the new TTL.
		if _, ok := c.Suspicious(addr(1), t0.Add(verdicts.DefaultSuspiciousTTL)); ok {
			t.Error("Resize extended a stored verdict")
		}
		v := c.Put(suspicious(addr(7)), t0)
		if got := v.Expires.Sub(v.Checked); got != long.Suspicious {
			t.Errorf("TTL after Resize %v, want %v", got, long.Suspicious)
		}
		checkConsistent(t, c, 7)
	})
}

// checkConsistent checks that IPs 1..n are suspicious to Suspicious and
// SuspiciousList exactly when Get holds a suspicious verdict for them.
func checkConsistent(t *testing.T, c *verdicts.Cache, n int) {
	t.Helper()
	listed := map[netip.Addr]bool{}
	for _, v := range c.SuspiciousList(t0) {
		listed[v.IP] = true
	}
	for i := 1; i <= n; i++ {
		ip := addr(i)
		hot, inIndex := c.Suspicious(ip, t0)
		stored, inStore := c.Get(ip, t0)
		want := inStore && stored.Suspicious()
		if inIndex != want || listed[ip] != want {
			t.Errorf("%s: Suspicious %v, listed %v, but Get = %+v, %v", ip, inIndex, listed[ip], stored, inStore)
		}
		if inIndex && hot.Decision != stored.Decision {
			t.Errorf("%s: Suspicious gives decision %s, Get %s", ip, hot.Decision, stored.Decision)
		}
	}
}

func TestSuspiciousList(t *testing.T) {
	c := verdicts.New(10, verdicts.TTLs{})
	for _, i := range []int{3, 1, 2} {
		c.Put(suspicious(addr(i)), t0)
	}
	c.Put(verdicts.Verdict{IP: addr(4), Outcome: verdicts.Clean}, t0)
	c.Put(suspicious(addr(5)), t0.Add(-verdicts.DefaultSuspiciousTTL)) // already expired
	got := c.SuspiciousList(t0)
	var ips []string
	for _, v := range got {
		ips = append(ips, v.IP.String())
	}
	if want := "[45.83.0.1 45.83.0.2 45.83.0.3]"; fmt.Sprint(ips) != want {
		t.Errorf("SuspiciousList = %v, want %s", ips, want)
	}
}

func TestVerdictJSON(t *testing.T) {
	v := suspicious(addr(1))
	v.Decision = "cip-1a2b3c4d5e6f"
	v.Checked, v.Expires = t0, t0.Add(time.Hour)
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ip":"45.83.0.1","outcome":"suspicious","reasons":[{"factor":"SCORE","detail":"inbound Critical"}],` +
		`"score":"Critical","decision":"cip-1a2b3c4d5e6f","checked":"2025-03-01T12:00:00Z","expires":"2025-03-01T13:00:00Z"}`
	if string(data) != want {
		t.Errorf("JSON\n got %s\nwant %s", data, want)
	}
}

func TestNewDecisionID(t *testing.T) {
	pattern := regexp.MustCompile(`^cip-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := verdicts.NewDecisionID()
		if !pattern.MatchString(id) {
			t.Fatalf("decision id %q, want cip- and 12 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("decision id %q repeated", id)
		}
		seen[id] = true
	}
}

// TestConcurrentUse runs every operation at once on a few IPs (run it with
// -race), then checks that the index and the store still agree.
func TestConcurrentUse(t *testing.T) {
	c := verdicts.New(8, verdicts.TTLs{})
	const ips = 12
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ip := addr(1 + (i*7+w)%ips)
				switch (i + w) % 6 {
				case 0:
					c.Put(suspicious(ip), t0)
				case 1:
					c.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Clean}, t0)
				case 2:
					c.Get(ip, t0)
				case 3:
					c.Suspicious(ip, t0)
				case 4:
					c.Delete(ip)
				case 5:
					if i%100 == 5 {
						c.Resize(4+i%8, verdicts.TTLs{Suspicious: time.Duration(1+i%3) * 24 * time.Hour})
					}
					c.SuspiciousList(t0)
				}
			}
		})
	}
	wg.Wait()
	checkConsistent(t, c, ips)
}

func BenchmarkSuspicious(b *testing.B) {
	hit, miss := addr(1), addr(2)
	for _, bc := range []struct {
		name string
		fill bool
		ip   netip.Addr
	}{
		{"hit", true, hit},
		{"miss-empty-index", false, miss},
		{"miss-nonempty-index", true, miss},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := verdicts.New(0, verdicts.TTLs{})
			if bc.fill {
				for i := 1; i <= 1000; i += 2 { // odd IPs suspicious, addr(2) not
					c.Put(suspicious(addr(i)), t0)
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok := c.Suspicious(bc.ip, t0); ok != (bc.ip == hit) {
						b.Fatal("wrong answer")
					}
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	c := verdicts.New(0, verdicts.TTLs{})
	for i := range 1000 {
		c.Put(verdicts.Verdict{IP: addr(i), Outcome: verdicts.Clean}, t0)
	}
	ip := addr(500)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(ip, t0); !ok {
			b.Fatal("miss")
		}
	}
}

func TestSweepAndNoGoroutine(t *testing.T) {
	now := time.Now()
	c := verdicts.New(10, verdicts.TTLs{Clean: time.Hour, Suspicious: 24 * time.Hour})
	// Counting goroutines flakes when the runtime or another test starts
	// one; a goroutine the cache started names it (or its LRU) as creator.
	buf := make([]byte, 1<<20)
	for _, line := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n") {
		if strings.HasPrefix(line, "created by ") &&
			(strings.Contains(line, "/internal/verdicts.") || strings.Contains(line, "golang-lru")) {
			t.Errorf("New started a goroutine (%s); a cache per reload would leak it", line)
		}
	}
	c.Put(verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.10"), Outcome: verdicts.Clean}, now)
	c.Put(verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.21"), Outcome: verdicts.Suspicious}, now)
	if n := c.Sweep(now.Add(2 * time.Hour)); n != 1 || c.Len() != 1 {
		t.Errorf("Sweep after 2h removed %d, left %d; want the clean one gone, the suspicious one kept", n, c.Len())
	}
	if _, ok := c.Suspicious(netip.MustParseAddr("45.83.0.21"), now.Add(2*time.Hour)); !ok {
		t.Error("suspicious verdict lost by Sweep")
	}
	if n := c.Sweep(now.Add(25 * time.Hour)); n != 1 || c.Len() != 0 {
		t.Errorf("Sweep after 25h removed %d, left %d", n, c.Len())
	}
	if _, ok := c.Suspicious(netip.MustParseAddr("45.83.0.21"), now); ok {
		t.Error("swept suspicious verdict still in the index")
	}
}

// BenchmarkPutSuspicious is the cost of one more suspicious verdict in a
// cache that holds many: an event's window of fresh findings, or a fleet's
// verdicts arriving, is a burst of these.
func BenchmarkPutSuspicious(b *testing.B) {
	for _, held := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			c := verdicts.New(held+b.N+1, verdicts.TTLs{})
			for i := range held {
				c.Put(suspicious(addr(i)), t0)
			}
			b.ReportAllocs()
			i := held
			for b.Loop() {
				c.Put(suspicious(addr(i)), t0)
				i++
			}
		})
	}
}

// TestLookupFollowsTheStore checks that a lookup answers what the LRU
// holds, whatever the lock-free table in front of it holds: with more IPs
// than the table has entries (so IPs share entries), every IP gets its own
// verdict back, a replaced verdict is not served, and an evicted, deleted
// or expired IP has none (an evicted IP must be validated again).
func TestLookupFollowsTheStore(t *testing.T) {
	const n = 3000 // the table of a 3000-verdict cache has 4096 entries: some are shared
	c := verdicts.New(n, verdicts.TTLs{})
	for i := range n {
		c.Put(verdicts.Verdict{IP: addr(i), Outcome: verdicts.Clean, Score: fmt.Sprint(i)}, t0)
	}
	for i := range n {
		if v, ok := c.Get(addr(i), t0); !ok || v.IP != addr(i) || v.Score != fmt.Sprint(i) {
			t.Fatalf("Get(%s) = %+v, %v; want its own clean verdict", addr(i), v, ok)
		}
	}
	// Replace: the new verdict is served, by Get and the index alike.
	c.Put(suspicious(addr(7)), t0)
	if v, ok := c.Get(addr(7), t0); !ok || !v.Suspicious() {
		t.Fatalf("Get after a suspicious Put = %+v, %v", v, ok)
	}
	// Evict: one more IP pushes out the least recently used. Touch every
	// IP but addr(0) past the recency grain so that addr(0) is the one.
	later := t0.Add(2 * time.Second)
	for i := 1; i < n; i++ {
		c.Has(addr(i), later)
	}
	c.Put(verdicts.Verdict{IP: addr(n), Outcome: verdicts.Clean}, later)
	if c.Has(addr(0), later) {
		t.Fatalf("%s still has a verdict after its eviction", addr(0))
	}
	if !c.Has(addr(n), later) || !c.Has(addr(1), later) {
		t.Fatal("the new IP or a recently used one lost its verdict")
	}
	// Delete and expiry.
	c.Delete(addr(2))
	if c.Has(addr(2), later) {
		t.Fatalf("%s still has a verdict after Delete", addr(2))
	}
	if c.Has(addr(3), t0.Add(verdicts.DefaultCleanTTL)) {
		t.Fatalf("%s still has a verdict at its expiry", addr(3))
	}
	if c.Has(addr(3), later) {
		t.Fatalf("%s was not removed at its expiry", addr(3))
	}
	// Shrinking evicts too.
	c.Resize(10, verdicts.TTLs{})
	kept := 0
	for i := range n + 1 {
		if c.Has(addr(i), later) {
			kept++
		}
	}
	if kept != 10 {
		t.Fatalf("%d IPs have a verdict after Resize(10)", kept)
	}
}

// TestProbeAnswersAsHasAndSuspicious checks Probe (and FirstSuspicious)
// against the two lookups it stands for, for IPv4 and IPv6 addresses (recent keeps different
// records for them) and an IPv4-mapped one: Cached is Has, Suspicious is
// Suspicious, and Use moves the entry in the LRU as Has does.
func TestProbeAnswersAsHasAndSuspicious(t *testing.T) {
	const n = 300 // more than the table's 256 entries: some are shared
	c := verdicts.New(2*n, verdicts.TTLs{})
	v6 := func(i int) netip.Addr { return netip.AddrFrom16([16]byte{0x2a, 0x01, 15: byte(i), 14: byte(i >> 8)}) }
	var ips []netip.Addr
	for i := range n {
		ips = append(ips, addr(i), v6(i))
	}
	for i, ip := range ips {
		switch i % 3 {
		case 0:
			c.Put(suspicious(ip), t0)
		case 1:
			c.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Clean}, t0)
		default:
			c.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Error}, t0.Add(-time.Hour)) // expired
		}
	}
	for _, ip := range append(ips, addr(n+1), netip.AddrFrom16(addr(7).As16())) {
		e := c.Probe(ip, t0)
		sv, sok := e.Suspicious(t0)
		wantV, wantS := c.Suspicious(ip, t0)
		if sok != wantS || sv.IP != wantV.IP || sv.Decision != wantV.Decision || (wantS && !e.MaySuspicious()) {
			t.Errorf("%s: Probe's Suspicious = %v %s, Suspicious = %v %s", ip, sok, sv.Decision, wantS, wantV.Decision)
		}
		if fv, _, fok := c.FirstSuspicious([]netip.Addr{ip}, t0); fok != wantS || fv.Decision != wantV.Decision {
			t.Errorf("%s: FirstSuspicious = %v %s, Suspicious = %v %s", ip, fok, fv.Decision, wantS, wantV.Decision)
		}
		if e.Cached() != c.Has(ip, t0) {
			t.Errorf("%s: Probe's Cached = %v, Has the opposite", ip, e.Cached())
		}
	}
	// Use is a use: of two verdicts read at the same time, the one Used
	// afterwards survives the eviction of one.
	small := verdicts.New(2, verdicts.TTLs{})
	small.Put(verdicts.Verdict{IP: v6(1), Outcome: verdicts.Clean}, t0)
	small.Put(verdicts.Verdict{IP: addr(2), Outcome: verdicts.Clean}, t0)
	small.Has(addr(2), t0)
	small.Use(small.Probe(v6(1), t0), t0)
	small.Put(verdicts.Verdict{IP: addr(3), Outcome: verdicts.Clean}, t0)
	if !small.Has(v6(1), t0) || small.Has(addr(2), t0) {
		t.Error("Use did not move the probed verdict to the front of the LRU")
	}
}

// TestProbeUnderConcurrentPuts probes IPs that share table entries while
// other goroutines put them again: a probe must never mix one IP's record
// with another's. Even IPs are always suspicious and live, odd ones
// always clean and expired, and the cache holds all of them (nothing is
// evicted), so every probe's answer is known.
func TestProbeUnderConcurrentPuts(t *testing.T) {
	const n = 100 // 128 table entries: shared ones are all but certain
	c := verdicts.New(n, verdicts.TTLs{})
	put := func(i int) {
		if i%2 == 0 {
			c.Put(suspicious(addr(i)), t0)
		} else {
			c.Put(verdicts.Verdict{IP: addr(i), Outcome: verdicts.Clean}, t0.Add(-2*verdicts.DefaultCleanTTL))
		}
	}
	for i := range n {
		put(i)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := w; ; i += 7 {
				select {
				case <-stop:
					return
				default:
				}
				put(i % n)
			}
		})
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for probes := 0; time.Now().Before(deadline) || probes < 10000; probes++ {
		i := probes % n
		e := c.Probe(addr(i), t0)
		v, ok := e.Suspicious(t0)
		if i%2 == 0 && (!e.Cached() || !ok || v.IP != addr(i)) {
			t.Fatalf("%s (suspicious, live): Cached %v, Suspicious %v %s", addr(i), e.Cached(), ok, v.IP)
		}
		if i%2 == 1 && (e.Cached() || e.MaySuspicious()) {
			t.Fatalf("%s (clean, expired): Cached %v, MaySuspicious %v", addr(i), e.Cached(), e.MaySuspicious())
		}
	}
	close(stop)
	wg.Wait()
}
