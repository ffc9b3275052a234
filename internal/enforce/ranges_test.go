package enforce_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// TestRangeBlock: an operator's range block rewrites every address inside
// it (and none outside), reaches the hooks and the EDL as the CIDR, is in
// the history as a range decision, survives a restart, is lifted by its
// decision id, and a second one expires by itself.
func TestRangeBlock(t *testing.T) {
	f := newFixture(t)
	e := f.start(t.Name())
	api := e.API()
	cidr := netip.MustParsePrefix("45.83.0.0/24")
	inside, outside := netip.MustParseAddr("45.83.0.77"), netip.MustParseAddr("45.83.1.77")
	d, err := api.Block(adminapi.BlockRequest{Range: cidr, TTL: 2 * time.Hour, Reason: "scanner farm", Scope: "everyone", Actor: "alice"})
	if err != nil || d.Range != "45.83.0.0/24" || d.IP != "" || d.Origin != "manual" || d.Actor != "alice" || d.State != "active" || d.TTLSeconds != 7200 {
		t.Fatalf("Block(range) = %+v, %v", d, err)
	}
	f.hook.waitFor(t, "block 45.83.0.0/24 alice")
	if v, ok := e.Suspicious(inside, f.clock.Now()); !ok || v.Decision != d.ID || v.Scope != risk.ScopeEveryone || !strings.Contains(v.ReasonText(), "scanner farm") {
		t.Errorf("DNS does not rewrite an address inside the range: %+v %v", v, ok)
	}
	if v, ok := e.Suspicious(outside, f.clock.Now()); ok {
		t.Errorf("DNS rewrites an address outside the range: %+v", v)
	}
	if !slices.Contains(api.BlockedRanges(), cidr) {
		t.Errorf("the EDL lacks the range: %v", api.BlockedRanges())
	}
	if got, _ := api.Decisions(adminapi.DecisionFilter{IP: inside}, adminapi.Cursor{}, 10); len(got) != 1 || got[0].ID != d.ID {
		t.Errorf("decisions reaching %s = %+v", inside, got)
	}
	if c := api.Status().Decisions; c.Active != 1 || c.ActiveEveryone != 1 {
		t.Errorf("GET /v1/status counts %+v active decisions, want the range as 1 for everyone", c)
	}
	if _, err := api.Block(adminapi.BlockRequest{Range: netip.MustParsePrefix("45.83.0.128/25"), TTL: time.Hour, Reason: "x", Actor: "bob"}); !errors.Is(err, adminapi.ErrConflict) {
		t.Errorf("an overlapping range: %v, want a conflict", err)
	}
	e.Stop()

	e = f.start(t.Name())
	api = e.API()
	f.hook.waitFor(t, "block 45.83.0.0/24 alice", "block 45.83.0.0/24 cipvalidate")
	if v, ok := e.Suspicious(inside, f.clock.Now()); !ok || v.Decision != d.ID {
		t.Errorf("after a restart, DNS does not rewrite inside the range: %+v %v", v, ok)
	}
	if got, _ := api.Decision(d.ID); got.State != "active" || got.Range != "45.83.0.0/24" {
		t.Errorf("after a restart the decision is %+v", got.Decision)
	}
	if _, err := api.Block(adminapi.BlockRequest{IP: netip.MustParseAddr("45.83.0.50"), TTL: 3 * time.Hour, Reason: "C2", Actor: "dave"}); err != nil {
		t.Fatal(err)
	}
	f.hook.waitFor(t, "block 45.83.0.50 dave")
	lifted, err := api.LiftDecision(d.ID, "bob", "vendor confirmed")
	if err != nil || lifted.State != "lifted" || lifted.Lifted == nil || lifted.Lifted.Actor != "bob" {
		t.Fatalf("LiftDecision = %+v, %v", lifted, err)
	}
	// An interval set dropped the IP elements the range covered: they
	// are pushed again.
	f.hook.waitFor(t, "block 45.83.0.0/24 cipvalidate", "unblock 45.83.0.0/24 bob", "block 45.83.0.50 cipvalidate")
	if _, ok := e.Suspicious(inside, f.clock.Now()); ok {
		t.Error("DNS still rewrites inside a lifted range")
	}
	if _, err := api.LiftDecision(d.ID, "bob", "again"); !errors.Is(err, adminapi.ErrConflict) {
		t.Errorf("lifting it again: %v, want a conflict", err)
	}

	v6 := netip.MustParsePrefix("2a0c:9a40::/48")
	d6, err := api.Block(adminapi.BlockRequest{Range: v6, TTL: time.Hour, Reason: "bulletproof hoster", Actor: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Suspicious(netip.MustParseAddr("2a0c:9a40:0:1::9"), f.clock.Now()); !ok {
		t.Error("DNS does not rewrite inside an IPv6 range")
	}
	f.hook.waitFor(t, "block 2a0c:9a40::/48 carol")
	e.Sweep(f.clock.Advance(time.Hour + time.Second))
	f.hook.waitFor(t, "block 2a0c:9a40::/48 carol", "unblock 2a0c:9a40::/48 cipvalidate")
	if got, _ := api.Decision(d6.ID); got.State != "expired" {
		t.Errorf("after its TTL the range decision is %s", got.State)
	}
	if _, ok := e.Suspicious(netip.MustParseAddr("2a0c:9a40:0:1::9"), f.clock.Now()); ok {
		t.Error("DNS still rewrites inside an expired range")
	}
	e.Stop()

	want := []string{"block 45.83.0.0/24", "block 45.83.0.50", "unblock 45.83.0.0/24", "block 2a0c:9a40::/48", "expire 2a0c:9a40::/48"}
	if got := f.auditKinds(); !slices.Equal(got, want) {
		t.Errorf("audit:\n got %q\nwant %q", got, want)
	}
}

// TestRangeBlockRefusals: a range over the allowlist needs force, one
// holding the control plane is refused, and so are broad or private ones.
func TestRangeBlockRefusals(t *testing.T) {
	f := newFixture(t)
	wh, err := sink.NewWebhook(f.url, nil, sink.WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy:  blocks.Policy{TTL: time.Hour, Factor: 1, Max: time.Hour},
		Hooks:        []enforce.HookSpec{{Kind: enforce.HookWebhook, Webhook: wh, Line: "webhook test"}},
		ControlPlane: []string{"45.83.7.53:53"},
		Now:          f.clock.Now,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	api := e.API()
	if _, err := api.Allow(adminapi.AllowRequest{Value: "45.83.0.60", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	req := adminapi.BlockRequest{Range: netip.MustParsePrefix("45.83.0.0/24"), TTL: time.Hour, Reason: "x", Actor: "alice"}
	if _, err := api.Block(req); !errors.Is(err, adminapi.ErrConflict) || !strings.Contains(err.Error(), "45.83.0.60") {
		t.Errorf("a range over an allowlisted IP: %v, want a conflict naming the entry", err)
	}
	req.Force = true
	if d, err := api.Block(req); err != nil || d.State != "active" {
		t.Errorf("forced: %+v, %v", d, err)
	}
	req.Range, req.Force = netip.MustParsePrefix("45.83.4.0/22"), true
	if _, err := api.Block(req); !errors.Is(err, adminapi.ErrConflict) || !strings.Contains(err.Error(), "45.83.7.53") {
		t.Errorf("a range holding the control plane: %v, want a conflict naming the address", err)
	}
	for _, bad := range []string{"45.0.0.0/7", "10.0.0.0/8", "100.64.0.0/10", "2001:db8::/32", "2a00::/16"} {
		req.Range = netip.MustParsePrefix(bad)
		if _, err := api.Block(req); err == nil || !strings.HasPrefix(err.Error(), "range:") {
			t.Errorf("range %s: %v, want an error naming range", bad, err)
		}
	}
}

// TestFirstSuspicious checks the scan of an answer's IPs, by the
// suspicious index (entries nil) and by Probe's entries alike: the first
// IP whose verdict reaches the client and is not shared, or the first in
// a range block; clean, shared and out-of-scope verdicts are passed over.
func TestFirstSuspicious(t *testing.T) {
	f := newFixture(t)
	e := enforce.New(t.Name(), enforce.Config{APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		Retain: 15 * time.Minute, Window: 5 * time.Minute, Shared: 20, Now: f.clock.Now})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	now := f.clock.Now()
	ips := []netip.Addr{netip.MustParseAddr("45.83.0.1"), netip.MustParseAddr("45.83.0.2"),
		netip.MustParseAddr("2a01::3"), netip.MustParseAddr("45.83.0.4")}
	cache := e.State().Cache()
	cache.Put(verdicts.Verdict{IP: ips[0], Outcome: verdicts.Clean}, now)
	cache.Put(verdicts.Verdict{IP: ips[1], Outcome: verdicts.Suspicious, Scope: risk.ScopeEveryone, Domains: 100}, now) // shared
	cache.Put(verdicts.Verdict{IP: ips[2], Outcome: verdicts.Suspicious, Scope: risk.ScopeTagged}, now)
	cache.Put(verdicts.Verdict{IP: ips[3], Outcome: verdicts.Suspicious, Scope: risk.ScopeEveryone}, now)
	check := func(what string, tagged bool, want int) {
		t.Helper()
		for _, entries := range [][]verdicts.Entry{nil, e.Probe(ips, nil, now)} {
			v, i, ok := e.FirstSuspicious(ips, entries, tagged, now)
			if !ok || i != want || v.IP != ips[want] {
				t.Errorf("%s (entries %v): FirstSuspicious = %s, %d, %v; want %s", what, entries != nil, v.IP, i, ok, ips[want])
			}
		}
	}
	check("tagged", true, 2)
	check("untagged", false, 3)
	if _, err := e.ManualRangeBlock(netip.MustParsePrefix("45.83.0.0/30"), time.Hour, "test", "test", false); err != nil {
		t.Fatal(err)
	}
	check("untagged, range block", false, 0)
}
