package enforce

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// A restart within the period resumes the budget where it was (no fresh
// credits), the 80% and exhaustion alerts reach the audit log once each,
// and an exhausted budget makes the API count as unavailable (fail closed).
func TestBudgetSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	cfg := Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour},
		StateDir:    dir, AuditPath: filepath.Join(dir, "audit.log"), Now: clock.Now,
		Budget: &budget.Config{Limit: 20, Period: budget.Day, Loc: time.UTC},
	}
	start := func() *Engine {
		e := New(t.Name(), cfg)
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := start()
	for range 17 {
		if !e.budget.Take(budget.Event, clock.Now()) {
			t.Fatal("the budget refused an event call below its limit")
		}
	}
	if _, failing := e.APIFailure(); failing {
		t.Error("the API counts as unavailable with budget left")
	}
	e.Stop()

	e = start()
	defer e.Stop()
	if st := e.API().Status().Budget; st == nil || st.Spent != 17 || st.Remaining != 3 {
		t.Fatalf("after a restart: budget %+v, want 17 of 20 spent", st)
	}
	for e.budget.Take(budget.Event, clock.Now()) {
	}
	if kind, failing := e.APIFailure(); !failing || kind != criminalip.KindBudget {
		t.Errorf("APIFailure with the budget exhausted = %q, %v; want budget", kind, failing)
	}
	var alerts []string
	for _, l := range auditDetails(t, dir) {
		if strings.HasPrefix(l, "budget ") {
			alerts = append(alerts, strings.SplitN(l, ":", 3)[1])
		}
	}
	if !slices.Equal(alerts, []string{" warning", " exhausted"}) {
		t.Errorf("budget audit entries %q, want one warning then one exhaustion", alerts)
	}
}
