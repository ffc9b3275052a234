package adminapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// statusBackend reports a fixed status.
type statusBackend struct {
	*fakeBackend
	status Status
}

func (sb statusBackend) Status() Status { return sb.status }

// GET /v1/status is read's and operator's, not an events token's; it
// answers in the contract's shape, with the events of the last 24 hours
// from the server's own store.
func TestStatus(t *testing.T) {
	failedAt := testNow.Add(-time.Minute)
	sb := statusBackend{fakeBackend: newFakeBackend(), status: Status{
		API:           APIStatus{State: APIQuota, LastError: "criminal ip: rate limited or quota exhausted (http 429)", LastErrorAt: &failedAt, Calls24h: 40, Errors24h: 3, QuotaErrors24h: 2},
		Hooks:         []HookStatus{{Hook: "nftables", Pending: 4, Failing: true, LastError: "nft: no such table", LastErrorAt: &failedAt}},
		Decisions:     DecisionCounts{Active: 5, ActiveEveryone: 3, ActiveTagged: 1, ActiveMonitor: 1},
		TaggedClients: 2,
		State:         StateStatus{Configured: true, Writable: true},
	}}
	f := newFixture(t, func(c *Config) { c.Backend, c.Tokens = sb, roleTokens() })
	for _, ago := range []time.Duration{30 * time.Hour, 23 * time.Hour, time.Hour} {
		f.store.Add(Record{ID: "ev-" + ago.String(), Received: testNow.Add(-ago)})
	}

	wantStatus(t, f.do("GET", "/v1/status", "", "Authorization", "Bearer "+eventsToken), http.StatusForbidden)
	wantStatus(t, f.do("GET", "/v1/status", "", "Authorization", "Bearer "+testToken), http.StatusOK)
	rec := f.do("GET", "/v1/status", "", "Authorization", "Bearer "+readToken)
	wantStatus(t, rec, http.StatusOK)
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	api, _ := got["api"].(map[string]any)
	hooks, _ := got["hooks"].([]any)
	decisions, _ := got["decisions"].(map[string]any)
	if api["state"] != "quota" || api["quota_errors_24h"] != 2.0 || api["errors_24h"] != 3.0 || api["calls_24h"] != 40.0 ||
		api["last_error_at"] != failedAt.Format(time.RFC3339) {
		t.Errorf("api %v", api)
	}
	if len(hooks) != 1 {
		t.Fatalf("hooks %v, want one", hooks)
	}
	if h := hooks[0].(map[string]any); h["hook"] != "nftables" || h["pending"] != 4.0 || h["failing"] != true || h["last_error"] != "nft: no such table" {
		t.Errorf("hook %v", h)
	}
	if decisions["active"] != 5.0 || decisions["active_everyone"] != 3.0 || decisions["active_tagged"] != 1.0 {
		t.Errorf("decisions %v", decisions)
	}
	if got["tagged_clients"] != 2.0 || got["events_24h"] != 2.0 {
		t.Errorf("tagged_clients %v, events_24h %v; want 2 and 2 (the event of 30h ago is older)", got["tagged_clients"], got["events_24h"])
	}
	if st, _ := got["state"].(map[string]any); st["writable"] != true || st["error"] != "" {
		t.Errorf("state %v", st)
	}
	if fl, _ := got["fleet"].(map[string]any); fl["configured"] != false || fl["up"] != false {
		t.Errorf("fleet %v", fl)
	}

	// Without hooks: [], and null for the times of no error.
	sb.status = Status{}
	f = newFixture(t, func(c *Config) { c.Backend = sb })
	rec = f.do("GET", "/v1/status", "", "Authorization", "Bearer "+testToken)
	wantStatus(t, rec, http.StatusOK)
	var empty struct {
		API   map[string]any  `json:"api"`
		Hooks json.RawMessage `json:"hooks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &empty); err != nil {
		t.Fatal(err)
	}
	if string(empty.Hooks) != "[]" || empty.API["last_error_at"] != nil {
		t.Errorf("no hooks, no error: %s", rec.Body)
	}
}

// A Backend without a status has no GET /v1/status.
func TestStatusAbsent(t *testing.T) {
	f := newFixture(t, nil)
	wantStatus(t, f.do("GET", "/v1/status", "", "Authorization", "Bearer "+testToken), http.StatusNotFound)
}
