package enforce_test

import (
	"net/netip"
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
