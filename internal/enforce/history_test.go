package enforce_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

// waitDecision waits until the decision id satisfies ok.
func waitDecision(t *testing.T, e *enforce.Engine, id string, what string, ok func(adminapi.DecisionDetail) bool) adminapi.DecisionDetail {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, found := e.API().Decision(id)
		if found && ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision %s: want %s; have %+v (found %v)", id, what, d, found)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hookState(d adminapi.DecisionDetail, action, state string) bool {
	return len(d.Hooks) == 1 && d.Hooks[0].Action == action && d.Hooks[0].State == state
}

func timelineKinds(d adminapi.DecisionDetail) []string {
	var out []string
	for _, s := range d.Timeline {
		if !slices.Contains(out, s.Kind) {
			out = append(out, s.Kind)
		}
	}
	return out
}

// TestDecisionHistoryLifecycle follows one decision from the event that
// led to it through its hook delivery, DNS rewrites and a lift by id to a
// restart that keeps all of it, and retention that drops it.
func TestDecisionHistoryLifecycle(t *testing.T) {
	f := newFixture(t)
	f.history = 30 * 24 * time.Hour
	e := f.start(t.Name())
	api := e.API()
	client, ip := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("45.83.0.21")
	v := f.suspicious("45.83.0.21")
	e.Decide(v, validate.Job{IP: ip, Client: client, Event: "ev-1", Name: "bad.example."})

	d := waitDecision(t, e, v.Decision, "its block delivered to the hook", func(d adminapi.DecisionDetail) bool { return hookState(d, "block", "delivered") })
	if d.State != "active" || d.Origin != "engine" || d.Actor != "engine" || d.Scope != "everyone" || d.IP != "45.83.0.21" ||
		!slices.Equal(d.Factors, []string{"score"}) || !slices.Equal(d.Clients, []string{"10.1.2.3"}) ||
		!slices.Equal(d.Events, []string{"ev-1"}) || !slices.Equal(d.Qnames, []string{"bad.example."}) ||
		d.TTLSeconds != 3600 || d.RemainingSeconds != 3600 || d.Lifted != nil || d.Hooks[0].DeliveredAt == nil {
		t.Errorf("active decision = %+v", d)
	}
	if got := api.EventDecisions("ev-1"); !slices.Equal(got, []string{v.Decision}) {
		t.Errorf("event ev-1 led to %v, want [%s]", got, v.Decision)
	}

	for range 3 {
		e.CountRewrite(v.Decision)
	}
	e.Sweep(f.clock.Advance(time.Second))
	if d, _ := api.Decision(v.Decision); d.Rewrites != 3 {
		t.Errorf("rewrites = %d, want 3", d.Rewrites)
	}

	lifted, err := api.LiftDecision(v.Decision, "alice (on behalf of bob)", "false positive")
	if err != nil || lifted.State != "lifted" || lifted.Lifted == nil || lifted.Lifted.Actor != "alice (on behalf of bob)" ||
		lifted.Lifted.Reason != "false positive" || lifted.RemainingSeconds != 0 {
		t.Fatalf("LiftDecision = %+v, %v", lifted, err)
	}
	f.hook.waitFor(t, "block 45.83.0.21", "unblock 45.83.0.21 alice (on behalf of bob)")
	d = waitDecision(t, e, v.Decision, "its unblock delivered", func(d adminapi.DecisionDetail) bool { return hookState(d, "unblock", "delivered") })
	if want := []string{"event", "verdict", "block", "hook", "rewrite", "lift"}; !slices.Equal(timelineKinds(d), want) {
		t.Errorf("timeline kinds = %v, want %v: %+v", timelineKinds(d), want, d.Timeline)
	}
	if _, ok := e.Suspicious(ip, f.clock.Now()); ok {
		t.Error("the lifted decision's IP is still rewritten by DNS")
	}
	if _, err := api.LiftDecision(v.Decision, "alice", "again"); !errors.Is(err, adminapi.ErrConflict) {
		t.Errorf("lifting a lifted decision: %v, want a conflict", err)
	}
	if _, err := api.LiftDecision("cip-000000000000", "alice", "x"); !errors.Is(err, adminapi.ErrUnknownDecision) {
		t.Errorf("lifting an unknown decision: %v, want unknown", err)
	}
	e.Stop()

	e = f.start(t.Name())
	after, ok := e.API().Decision(v.Decision)
	if !ok || after.State != "lifted" || after.Lifted == nil || after.Lifted.Actor != "alice (on behalf of bob)" || after.Rewrites != 3 ||
		len(after.Timeline) != len(d.Timeline) {
		t.Errorf("after a restart: %+v (found %v), want the lifted decision as before", after, ok)
	}

	// Retention: 30 days after the lift the decision goes, from memory and
	// from the state directory.
	e.Sweep(f.clock.Advance(29 * 24 * time.Hour))
	if _, ok := e.API().Decision(v.Decision); !ok {
		t.Error("dropped before its retention")
	}
	e.Sweep(f.clock.Advance(24 * time.Hour))
	if _, ok := e.API().Decision(v.Decision); ok {
		t.Error("kept past its retention")
	}
	e.Stop()
	e = f.start(t.Name())
	defer e.Stop()
	if list, _ := e.API().Decisions(adminapi.DecisionFilter{}, adminapi.Cursor{}, 10); len(list) != 0 {
		t.Errorf("after a restart past retention: %+v", list)
	}
}

// TestManualBlock: an operator's block goes the way of every block (the
// hook, DNS, the EDL), says who and why, refuses what it must, and
// expires.
func TestManualBlock(t *testing.T) {
	f := newFixture(t)
	e := f.start(t.Name())
	defer e.Stop()
	api := e.API()
	ip := netip.MustParseAddr("45.83.0.50")
	req := adminapi.BlockRequest{IP: ip, TTL: 2 * time.Hour, Reason: "C2 from the IR ticket", Scope: "everyone", Actor: "alice"}
	d, err := api.Block(req)
	if err != nil || d.Origin != "manual" || d.Actor != "alice" || d.Reason != "C2 from the IR ticket" || d.TTLSeconds != 7200 ||
		!slices.Equal(d.Factors, []string{"manual"}) || d.State != "active" {
		t.Fatalf("Block = %+v, %v", d, err)
	}
	f.hook.waitFor(t, "block 45.83.0.50 alice")
	if v, ok := e.Suspicious(ip, f.clock.Now()); !ok || v.Decision != d.ID {
		t.Errorf("DNS does not rewrite the blocked IP: %+v %v", v, ok)
	}
	if !slices.Contains(api.Blocklist(), ip) {
		t.Error("the EDL lacks the blocked IP")
	}
	if _, err := api.Block(req); !errors.Is(err, adminapi.ErrConflict) {
		t.Errorf("blocking it again: %v, want a conflict", err)
	}
	if _, err := api.Allow(adminapi.AllowRequest{Value: "45.83.0.60", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	allowed := req
	allowed.IP = netip.MustParseAddr("45.83.0.60")
	if _, err := api.Block(allowed); !errors.Is(err, adminapi.ErrConflict) || !strings.Contains(err.Error(), "allowlisted") {
		t.Errorf("blocking an allowlisted IP: %v, want a conflict naming the allowlist", err)
	}
	allowed.Force = true
	if d, err := api.Block(allowed); err != nil || d.State != "active" {
		t.Errorf("forced block of an allowlisted IP = %+v, %v", d, err)
	}
	private := req
	private.IP = netip.MustParseAddr("10.9.9.9")
	if _, err := api.Block(private); err == nil || !strings.HasPrefix(err.Error(), "ip:") {
		t.Errorf("blocking a private IP: %v, want an error naming ip", err)
	}

	e.Sweep(f.clock.Advance(2*time.Hour + time.Second))
	f.hook.waitFor(t, "block 45.83.0.50 alice", "unblock 45.83.0.50 cipvalidate")
	if d, _ := api.Decision(d.ID); d.State != "expired" || !slices.Contains(timelineKinds(d), "expire") {
		t.Errorf("after its TTL: %+v", d)
	}
	if _, ok := e.Suspicious(ip, f.clock.Now()); ok {
		t.Error("DNS still rewrites the expired manual block")
	}
}

// TestDecisionPages: pages of the history hold every decision once,
// newest first, and filters select.
func TestDecisionPages(t *testing.T) {
	f := newFixture(t)
	e := f.startHooked(t.Name())
	defer e.Stop()
	api := e.API()
	var ids []string
	for i := range 25 {
		ip := fmt.Sprintf("45.83.1.%d", i)
		v := f.suspicious(ip)
		e.Decide(v, validate.Job{IP: netip.MustParseAddr(ip), Client: netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 2)})})
		ids = append(ids, v.Decision)
		f.clock.Advance(time.Second)
	}
	if _, err := api.LiftDecision(ids[3], "alice", "fp"); err != nil {
		t.Fatal(err)
	}
	var got []string
	var cursor adminapi.Cursor
	for page := 0; ; page++ {
		list, next := api.Decisions(adminapi.DecisionFilter{}, cursor, 10)
		for _, d := range list {
			got = append(got, d.ID)
		}
		if next.IsZero() {
			break
		}
		if page > 3 {
			t.Fatal("more pages than decisions")
		}
		cursor = next
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
	if list, _ := api.Decisions(adminapi.DecisionFilter{Client: netip.MustParseAddr("10.0.0.1")}, adminapi.Cursor{}, 100); len(list) != 12 {
		t.Errorf("client 10.0.0.1: %d decisions, want 12", len(list))
	}
	if list, _ := api.Decisions(adminapi.DecisionFilter{State: "lifted"}, adminapi.Cursor{}, 100); len(list) != 1 || list[0].ID != ids[3] {
		t.Errorf("lifted: %+v", list)
	}
	if list, _ := api.Decisions(adminapi.DecisionFilter{IP: netip.MustParseAddr("45.83.1.7")}, adminapi.Cursor{}, 100); len(list) != 1 || list[0].ID != ids[7] {
		t.Errorf("ip 45.83.1.7: %+v", list)
	}
}
