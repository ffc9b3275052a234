package blocks

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestInRange: an address is found in the range that holds it, first and
// last addresses included, in either family, until the range expires.
func TestInRange(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m := New(Policy{}, nil)
	if _, ok := m.InRange(netip.MustParseAddr("45.83.0.1"), now); ok {
		t.Fatal("found in a range with none blocked")
	}
	for _, p := range []string{"45.83.0.0/24", "45.84.0.0/16", "46.0.0.0/8", "2a0c:9a40::/32"} {
		if _, err := m.DecideRange(netip.MustParsePrefix(p), Verdict{Decision: p, TTL: time.Hour}, now); err != nil {
			t.Fatal(err)
		}
	}
	for ip, want := range map[string]string{
		"45.83.0.0": "45.83.0.0/24", "45.83.0.255": "45.83.0.0/24", "45.83.1.0": "", "45.82.255.255": "",
		"45.84.200.1": "45.84.0.0/16", "46.255.255.255": "46.0.0.0/8", "47.0.0.0": "",
		"2a0c:9a40:ffff::1": "2a0c:9a40::/32", "2a0c:9a41::": "", "::ffff:45.83.0.9": "45.83.0.0/24",
	} {
		h, ok := m.InRange(netip.MustParseAddr(ip), now)
		if got := map[bool]string{true: h.Decision}[ok]; got != want {
			t.Errorf("InRange(%s) = %q, want %q", ip, got, want)
		}
	}
	if _, err := m.DecideRange(netip.MustParsePrefix("45.83.0.128/25"), Verdict{Decision: "x", TTL: time.Hour}, now); !errors.Is(err, ErrRangeOverlap) {
		t.Errorf("an overlapping range: %v, want ErrRangeOverlap", err)
	}
	if _, ok := m.InRange(netip.MustParseAddr("45.83.0.9"), now.Add(time.Hour)); ok {
		t.Error("found in an expired range")
	}
	if got := m.Sweep(now.Add(time.Hour)); len(got) != 4 {
		t.Errorf("Sweep expired %d blocks, want the 4 ranges", len(got))
	}
	if _, ok := m.InRange(netip.MustParseAddr("45.83.0.9"), now); ok {
		t.Error("found in a swept range")
	}
}
