package enforce_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// TestNameMemoryIgnoresCase checks that a remembered name is answered
// whatever the case of the query (resolvers randomise it, DNS 0x20), that
// another name is not, and that a name is held until its verdict expires.
func TestNameMemoryIgnoresCase(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	v := verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.11"), Outcome: verdicts.Suspicious, Decision: "cip-0123456789ab", Expires: now.Add(time.Hour)}
	nm := enforce.NewNameMemory()
	nm.Put("Bad.Example.ORG.", v)
	for _, q := range []string{"bad.example.org.", "BAD.EXAMPLE.ORG.", "bAd.ExAmPlE.oRg."} {
		if got, ok := nm.Get(q, now); !ok || got.Decision != v.Decision {
			t.Errorf("Get(%q) = %v, %v; want the remembered verdict", q, got.Decision, ok)
		}
	}
	for _, q := range []string{"good.example.org.", "Good.Example.org.", "example.org."} {
		if _, ok := nm.Get(q, now); ok {
			t.Errorf("Get(%q) found a verdict for a name never put", q)
		}
	}
	if _, ok := nm.Get("bad.example.org.", now.Add(time.Hour)); ok {
		t.Error("the name is still held at its verdict's expiry")
	}
	if nm.Len() != 1 {
		t.Errorf("Len = %d, want 1", nm.Len())
	}
}

// TestNameMemoryForget checks that forgotten names are no longer answered
// and the others still are, however many are forgotten (the filter in
// front of the map is rebuilt past a few), names with non-ASCII bytes
// included.
func TestNameMemoryForget(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	bad, lifted := netip.MustParseAddr("45.83.0.11"), netip.MustParseAddr("45.83.0.12")
	nm := enforce.NewNameMemory()
	name := func(i int) string { return fmt.Sprintf("H%d.Example.org.", i) }
	for i := range 3000 {
		ip := bad
		if i%3 != 0 {
			ip = lifted
		}
		nm.Put(name(i), verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious, Expires: now.Add(time.Hour)})
	}
	nm.Put("Éclair.example.", verdicts.Verdict{IP: bad, Outcome: verdicts.Suspicious, Expires: now.Add(time.Hour)})
	if n := nm.Forget(func(v verdicts.Verdict) bool { return v.IP == lifted }); n != 2000 {
		t.Fatalf("Forget dropped %d names, want 2000", n)
	}
	for i := range 3000 {
		_, ok := nm.Get(strings.ToLower(name(i)), now)
		if want := i%3 == 0; ok != want {
			t.Errorf("Get(%s) = %v after the lift of %s, want %v", name(i), ok, lifted, want)
		}
	}
	if _, ok := nm.Get("éclair.example.", now); !ok {
		t.Error("a name with non-ASCII bytes is not answered")
	}
	// Forget them all, then remember one again.
	nm.Forget(func(verdicts.Verdict) bool { return true })
	if _, ok := nm.Get("h0.example.org.", now); ok || nm.Len() != 0 {
		t.Fatalf("a name is answered after everything was forgotten (Len %d)", nm.Len())
	}
	nm.Put(name(1), verdicts.Verdict{IP: bad, Outcome: verdicts.Suspicious, Expires: now.Add(time.Hour)})
	if _, ok := nm.Get("h1.EXAMPLE.org.", now); !ok {
		t.Error("a name put again is not answered")
	}
}
