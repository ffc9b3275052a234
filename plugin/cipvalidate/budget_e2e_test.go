package cipvalidate

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// budgetZone adds to the e2e zone 24 names (e1…e24) an event will find
// and 30 (l1…l30) a tagged client resolves live, each on its own public
// IP that no fixture describes (the fake API calls them clean).
func budgetZone() string {
	var b strings.Builder
	b.WriteString(e2eZone)
	for i := 1; i <= 24; i++ {
		fmt.Fprintf(&b, "e%d 300 IN A 45.83.1.%d\n", i, i)
	}
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "l%d 300 IN A 45.83.2.%d\n", i, i)
	}
	return b.String()
}

type budgetStatus struct {
	Budget *struct {
		Limit     int64     `json:"limit"`
		Period    string    `json:"period"`
		Spent     int64     `json:"spent"`
		Remaining int64     `json:"remaining"`
		Exhausted bool      `json:"exhausted"`
		ResetsAt  time.Time `json:"resets_at"`
	} `json:"budget"`
}

// TestE2EBudget is the acceptance test of the API budget: `budget 20 per
// day` under a storm of event backtracks and a tagged client's live
// answers spends exactly 20 calls, event backtracks first and live answers
// only up to their 80% share, shows the exhaustion in the metrics and
// GET /v1/status, and spends again after the reset.
func TestE2EBudget(t *testing.T) {
	slack := &slackReceiver{}
	srv := httptest.NewServer(slack)
	t.Cleanup(srv.Close)
	urlFile := filepath.Join(t.TempDir(), "slack-url")
	os.WriteFile(urlFile, []byte(srv.URL+"/services/T0K3N\n"), 0o600)
	e := startE2EZone(t, budgetZone(), "budget 20 per day\nhook slack url_file "+urlFile)
	T := e.clock.Now()
	// 127.0.0.2 and .4 resolve the names two events will find; .3 is tagged
	// by an event of its own (nothing to backtrack), so its answers are live.
	for i := 1; i <= 12; i++ {
		e.query("127.0.0.2", fmt.Sprintf("e%d.example.org", i), dns.TypeA)
		e.query("127.0.0.4", fmt.Sprintf("e%d.example.org", i+12), dns.TypeA)
	}
	e.postEvent("127.0.0.3", T, "5m")

	// The storm: the first event's 12 IPs and 30 live answers compete.
	e.postEvent("127.0.0.2", T, "5m")
	for i := 1; i <= 30; i++ {
		e.query("127.0.0.3", fmt.Sprintf("l%d.example.org", i), dns.TypeA)
	}
	waitFor(t, "16 API calls and an idle queue", func() bool {
		high, low := e.owner().eng.Queue().Depth()
		return e.fake.Calls() == 16 && high+low == 0
	})
	for i := 1; i <= 12; i++ {
		if n := e.fake.CallsFor(fmt.Sprintf("45.83.1.%d", i)); n != 1 {
			t.Errorf("event IP 45.83.1.%d: %d calls, want 1 (event backtracks go first)", i, n)
		}
	}
	live := 0
	for i := 1; i <= 30; i++ {
		live += e.fake.CallsFor(fmt.Sprintf("45.83.2.%d", i))
	}
	if live != 4 {
		t.Errorf("live answers spent %d calls, want 4 (their share stops at 80%% of 20, after the event's 12)", live)
	}

	// The second event spends the last 20%; more of everything spends nothing.
	e.postEvent("127.0.0.4", T, "5m")
	waitFor(t, "20 API calls", func() bool { return e.fake.Calls() == 20 })
	e.postEvent("127.0.0.2", T, "5m")
	for i := 1; i <= 30; i++ {
		e.query("127.0.0.3", fmt.Sprintf("l%d.example.org", i), dns.TypeA)
	}
	waitFor(t, "an idle queue", func() bool { high, low := e.owner().eng.Queue().Depth(); return high+low == 0 })
	if n := e.fake.Calls(); n != 20 {
		t.Errorf("%d API calls past a budget of 20", n)
	}

	// One Slack message at 80%, one at exhaustion.
	waitFor(t, "the two budget notices", func() bool { return slack.count("API budget") == 2 })
	if warn, ex := slack.count("API budget 80% spent: 16 of 20 per day"), slack.count("API budget exhausted: 20 of 20"); warn != 1 || ex != 1 {
		t.Errorf("Slack got %d warnings and %d exhaustion notices, want one each: %q", warn, ex, slack.texts)
	}

	var st budgetStatus
	if code := e.api("GET", "/v1/status", nil, &st); code != http.StatusOK || st.Budget == nil {
		t.Fatalf("GET /v1/status: %d, budget %+v", code, st.Budget)
	}
	if b := st.Budget; b.Limit != 20 || b.Period != "day" || b.Spent != 20 || b.Remaining != 0 || !b.Exhausted || !b.ResetsAt.After(T) {
		t.Errorf("GET /v1/status budget = %+v, want 20 of 20 spent, exhausted", *b)
	}
	if spent, remaining := gaugeValue(t, "coredns_cipvalidate_api_budget_spent", ""), gaugeValue(t, "coredns_cipvalidate_api_budget_remaining", ""); spent != 20 || remaining != 0 {
		t.Errorf("metrics: spent %v remaining %v, want 20 and 0", spent, remaining)
	}
	if refused := gaugeValue(t, "coredns_cipvalidate_api_budget_refused_total", "live"); refused < 26 {
		t.Errorf("refused live calls = %v, want at least 26", refused)
	}

	// After the reset the budget spends again (the refused event IPs'
	// retries may spend too: every call counts in the new period).
	e.clock.Set(st.Budget.ResetsAt.Add(time.Minute))
	T = e.clock.Now()
	e.query("127.0.0.5", "e24.example.org", dns.TypeA)
	e.postEvent("127.0.0.5", T, "5m")
	waitFor(t, "a call after the reset, counted", func() bool {
		e.api("GET", "/v1/status", nil, &st)
		return e.fake.CallsFor("45.83.1.24") == 1 && st.Budget.Spent == int64(e.fake.Calls()-20)
	})
	if st.Budget.Exhausted || st.Budget.Remaining != 20-st.Budget.Spent {
		t.Errorf("after the reset: budget %+v, want a fresh period", *st.Budget)
	}
}

// waitFor waits up to 15s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 15s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gaugeValue reads a gauge's or counter's value from the default registry:
// the series with no labels, or the one whose only label value is label.
func gaugeValue(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if (label == "" && len(m.GetLabel()) == 0) || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} is not exported", name, label)
	return 0
}
