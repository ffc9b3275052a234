package blocks

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	t0  = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	bad = netip.MustParseAddr("45.83.0.21")
	cl  = netip.MustParseAddr("10.1.2.3")
)

func verdict(ip netip.Addr, id string) Verdict {
	return Verdict{IP: ip, Decision: id, Reasons: []string{"SCORE: inbound Critical"}, Score: "Critical"}
}

func TestTTLFor(t *testing.T) {
	p := Policy{TTL: time.Hour, Factor: 2, Max: 6 * time.Hour}
	for repeats, want := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour, 6 * time.Hour} {
		if got := p.TTLFor(repeats); got != want {
			t.Errorf("TTLFor(%d) = %s, want %s", repeats, got, want)
		}
	}
	if got := (Policy{}).TTLFor(3); got != DefaultTTL {
		t.Errorf("zero policy: %s, want %s", got, DefaultTTL)
	}
	if got := (Policy{TTL: time.Hour, Factor: 1e308, Max: 2 * time.Hour}).TTLFor(1000); got != 2*time.Hour {
		t.Errorf("overflow: %s", got)
	}
}

func TestDecideAndEscalate(t *testing.T) {
	m := New(Policy{TTL: time.Hour, Factor: 3, Max: 5 * time.Hour}, nil)
	b, out, newClient := m.Decide(verdict(bad, "cip-1"), Cause{Client: cl, Event: "ev-1", Ref: "SIEM-1", Qname: "c2.example."}, t0)
	if out != Blocked || !newClient || b.TTL != time.Hour || !b.Expires.Equal(t0.Add(time.Hour)) || b.Decision != "cip-1" || b.Repeat != 0 {
		t.Fatalf("first block: %+v %v", b, out)
	}
	// Same IP, another client, while blocked: extended, expiry unchanged.
	other := netip.MustParseAddr("10.1.2.4")
	b, out, newClient = m.Decide(verdict(bad, "cip-2"), Cause{Client: other, Event: "ev-2"}, t0.Add(10*time.Minute))
	if out != Extended || !newClient || !b.Expires.Equal(t0.Add(time.Hour)) || len(b.Clients) != 2 || len(b.Events) != 2 || b.Decision != "cip-1" {
		t.Fatalf("extended: %+v %v", b, out)
	}
	if _, out, newClient = m.Decide(verdict(bad, "cip-3"), Cause{Client: cl}, t0.Add(20*time.Minute)); out != Extended || newClient {
		t.Errorf("same client again: %v newClient=%v", out, newClient)
	}
	// Expiry, then a repeat offence: 3h, then capped at 5h.
	if exp := m.Sweep(t0.Add(time.Hour)); len(exp) != 1 || exp[0].IP != bad {
		t.Fatalf("sweep: %+v", exp)
	}
	if _, ok := m.Get(bad, t0.Add(time.Hour)); ok {
		t.Error("expired block still there")
	}
	b, out, _ = m.Decide(verdict(bad, "cip-4"), Cause{}, t0.Add(2*time.Hour))
	if out != Blocked || b.TTL != 3*time.Hour || b.Repeat != 1 {
		t.Errorf("second offence: ttl %s repeat %d, want 3h, 1", b.TTL, b.Repeat)
	}
	m.Sweep(t0.Add(6 * time.Hour))
	b, _, _ = m.Decide(verdict(bad, "cip-5"), Cause{}, t0.Add(7*time.Hour))
	if b.TTL != 5*time.Hour || b.Repeat != 2 {
		t.Errorf("third offence: ttl %s, want the 5h cap", b.TTL)
	}
	// Long after the history, the count starts again.
	m.Sweep(t0.Add(12*time.Hour + HistoryKeep))
	b, _, _ = m.Decide(verdict(bad, "cip-6"), Cause{}, t0.Add(13*time.Hour+HistoryKeep))
	if b.TTL != time.Hour {
		t.Errorf("after the history window: ttl %s, want 1h", b.TTL)
	}
}

func TestAllowWins(t *testing.T) {
	static, err := ParseAllow("45.83.0.0/28")
	if err != nil {
		t.Fatal(err)
	}
	m := New(Policy{TTL: time.Hour}, []Allow{static})
	if _, out, _ := m.Decide(verdict(netip.MustParseAddr("45.83.0.5"), "x"), Cause{}, t0); out != Allowed {
		t.Errorf("static allow CIDR: %v", out)
	}
	m.Decide(verdict(bad, "cip-1"), Cause{Qname: "c2.example.", Client: cl}, t0)
	m.Decide(verdict(netip.MustParseAddr("45.83.0.41"), "cip-2"), Cause{Qname: "files.partner.example."}, t0)

	// A domain entry lifts the block whose names it covers.
	dom, err := ParseAllow("Partner.Example")
	if err != nil {
		t.Fatal(err)
	}
	lifted := m.AddAllow(dom, t0.Add(time.Minute))
	if len(lifted) != 1 || lifted[0].IP != netip.MustParseAddr("45.83.0.41") {
		t.Fatalf("lifted %+v", lifted)
	}
	// An expiring IP entry lifts and then wins, until it expires.
	ipEntry, _ := ParseAllow("45.83.0.21")
	ipEntry.Until = t0.Add(2 * time.Hour)
	ipEntry.Reason = "false positive"
	if lifted := m.AddAllow(ipEntry, t0.Add(2*time.Minute)); len(lifted) != 1 || lifted[0].IP != bad {
		t.Fatalf("lifted %+v", lifted)
	}
	if _, out, _ := m.Decide(verdict(bad, "cip-3"), Cause{}, t0.Add(time.Hour)); out != Allowed {
		t.Error("allowed IP blocked again")
	}
	if len(m.Active(t0.Add(time.Hour))) != 0 {
		t.Errorf("active: %+v", m.Active(t0.Add(time.Hour)))
	}
	m.Sweep(t0.Add(3 * time.Hour))
	if _, out, _ := m.Decide(verdict(bad, "cip-4"), Cause{}, t0.Add(3*time.Hour)); out != Blocked {
		t.Error("expired allow entry still wins")
	}
	if got := m.Allowlist(t0.Add(3 * time.Hour)); len(got) != 2 || !got[0].Static || got[1].Value != "partner.example." {
		t.Errorf("allowlist %+v", got)
	}
	if !m.RemoveAllow("partner.example") || m.RemoveAllow("partner.example") {
		t.Error("RemoveAllow")
	}
}

func TestUnblockForgetsHistory(t *testing.T) {
	m := New(Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour}, nil)
	m.Decide(verdict(bad, "cip-1"), Cause{}, t0)
	b, err := m.Unblock(bad)
	if err != nil || b.Decision != "cip-1" {
		t.Fatalf("unblock: %+v %v", b, err)
	}
	if _, err := m.Unblock(bad); !errors.Is(err, ErrNotBlocked) {
		t.Errorf("second unblock: %v", err)
	}
	if b, _, _ := m.Decide(verdict(bad, "cip-2"), Cause{}, t0.Add(time.Minute)); b.TTL != time.Hour {
		t.Errorf("after a false positive unblock, ttl %s, want no escalation", b.TTL)
	}
}

func TestMonitorAndRestore(t *testing.T) {
	m := New(Policy{TTL: time.Hour, Monitor: true}, nil)
	b, out, _ := m.Decide(verdict(bad, "cip-1"), Cause{}, t0)
	if out != Blocked || !b.Monitor {
		t.Errorf("monitor block: %+v", b)
	}
	if _, ok := m.History(bad); ok {
		t.Error("a would-be block counts as an offence")
	}

	m = New(Policy{TTL: time.Hour}, nil)
	old := Block{IP: netip.MustParseAddr("45.83.0.52"), Decision: "cip-old", Created: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Hour)}
	live := Block{IP: bad, Decision: "cip-live", Created: t0.Add(-time.Hour), Expires: t0.Add(time.Hour)}
	a, _ := ParseAllow("ok.example")
	a.Until = t0.Add(time.Hour)
	expiredAllow, _ := ParseAllow("gone.example")
	expiredAllow.Until = t0.Add(-time.Minute)
	m.Restore([]Block{old, live}, []History{{IP: bad, Count: 2, Last: t0.Add(time.Hour)}}, []Allow{a, expiredAllow}, t0)
	got := m.Active(t0)
	if len(got) != 1 || got[0].Decision != "cip-live" || got[0].TTL != 2*time.Hour || got[0].Remaining(t0) != time.Hour {
		t.Errorf("restored %+v", got)
	}
	if h, ok := m.History(bad); !ok || h.Count != 2 {
		t.Errorf("history %+v", h)
	}
	if l := m.Allowlist(t0); len(l) != 1 || l[0].Value != "ok.example." {
		t.Errorf("allowlist %+v", l)
	}
}

func TestParseAllow(t *testing.T) {
	for _, v := range []string{"45.83.0.21", "::ffff:45.83.0.21", "45.83.0.0/24", "2a0c::/32", "example.com", "sub.example.com."} {
		if _, err := ParseAllow(v); err != nil {
			t.Errorf("ParseAllow(%q): %v", v, err)
		}
	}
	for _, v := range []string{"", ".", "45.83.0.0/33", "http://x", "a b", "user@example.com"} {
		if _, err := ParseAllow(v); err == nil || !strings.Contains(err.Error(), "") {
			t.Errorf("ParseAllow(%q) accepted", v)
		}
	}
	a, _ := ParseAllow("::ffff:45.83.0.21")
	if a.Value != "45.83.0.21" {
		t.Errorf("value %q", a.Value)
	}
}

func TestAdopt(t *testing.T) {
	m := New(Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour}, nil)
	remote := Block{IP: bad, Decision: "cip-remote", Created: t0, Expires: t0.Add(2 * time.Hour), Repeat: 1}
	if !m.Adopt(remote, t0.Add(time.Minute)) {
		t.Fatal("not adopted")
	}
	if b, ok := m.Get(bad, t0.Add(time.Minute)); !ok || b.Decision != "cip-remote" || b.TTL != 2*time.Hour {
		t.Errorf("adopted %+v", b)
	}
	if m.Adopt(Block{IP: bad, Decision: "older", Created: t0, Expires: t0.Add(time.Hour)}, t0) {
		t.Error("a block ending sooner replaced a later one")
	}
	if h, _ := m.History(bad); h.Count != 2 {
		t.Errorf("history %+v, want the remote repeat counted", h)
	}
	// In a fleet, the later change wins, however long either block lasts.
	versioned := Block{IP: bad, Decision: "cip-v2", Created: t0, Expires: t0.Add(time.Hour), Version: 2}
	if !m.Adopt(versioned, t0) {
		t.Error("a later version ending sooner was not adopted")
	}
	if m.Adopt(Block{IP: bad, Decision: "cip-v1", Created: t0, Expires: t0.Add(8 * time.Hour), Version: 1}, t0) {
		t.Error("an earlier version replaced a later one")
	}
	if b, _ := m.Get(bad, t0); b.Decision != "cip-v2" {
		t.Errorf("block %+v, want cip-v2", b)
	}
	if m.Adopt(Block{IP: netip.MustParseAddr("45.83.0.1"), Expires: t0.Add(-time.Minute)}, t0) {
		t.Error("an expired block was adopted")
	}
	a, _ := ParseAllow("45.83.0.9")
	m.AddAllow(a, t0)
	if m.Adopt(Block{IP: netip.MustParseAddr("45.83.0.9"), Created: t0, Expires: t0.Add(time.Hour)}, t0) {
		t.Error("an allowlisted IP was adopted")
	}
}

// TooBroad refuses what would lift blocks across much of the Internet:
// more than an IPv4 /8 or an IPv6 /32, or a whole public suffix.
func TestAllowTooBroad(t *testing.T) {
	for _, tc := range []struct {
		value string
		broad bool
	}{
		{"0.0.0.0/0", true},
		{"45.0.0.0/7", true},
		{"45.0.0.0/8", false},
		{"45.83.0.21", false},
		{"::/0", true},
		{"2a00::/31", true},
		{"2a0c::/32", false},
		{"2a0c:9a40:1::21", false},
		{"com", true},
		{"Com.", true},
		{"co.uk", true},
		{"github.io", true},
		{"internal", true}, // not on the list: a single label counts as a TLD
		{"example.co.uk", false},
		{"user.github.io", false},
		{"cdn.example.com", false},
	} {
		a, err := ParseAllow(tc.value)
		if err != nil {
			t.Fatalf("ParseAllow(%q): %v", tc.value, err)
		}
		if err := a.TooBroad(); (err != nil) != tc.broad || (err != nil && !errors.Is(err, ErrTooBroad)) {
			t.Errorf("%s: TooBroad() = %v, want broad %v", tc.value, err, tc.broad)
		}
	}
}
