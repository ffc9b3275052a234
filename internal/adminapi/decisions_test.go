package adminapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/risk"
)

// decisionBackend keeps decisions in a slice, newest first, and filters
// them as the engine does (by IP, client, factor codes, scope, state and
// creation time).
type decisionBackend struct {
	*blockBackend
	mu        sync.Mutex
	list      []DecisionDetail // newest first
	byEvent   map[string][]string
	lastBlock BlockRequest
}

func newDecisionBackend(n int) *decisionBackend {
	db := &decisionBackend{blockBackend: &blockBackend{fakeBackend: newFakeBackend(), blocked: map[netip.Addr]bool{}}, byEvent: map[string][]string{}}
	for i := n - 1; i >= 0; i-- {
		d := Decision{ID: fmt.Sprintf("cip-%012d", i), IP: fmt.Sprintf("45.83.%d.%d", i/256, i%256), State: StateActive,
			Origin: OriginEngine, Scope: ScopeEveryone, Reasons: []string{"SCORE: inbound Critical"}, Factors: []string{"score"},
			Clients: []string{fmt.Sprintf("10.0.0.%d", i%3)}, Events: []string{}, Qnames: []string{}, Hooks: []HookDelivery{},
			Evidence: Evidence{Ports: []int{}, Tags: []string{}}, Created: testNow.Add(-time.Duration(n-i) * time.Minute)}
		if i%2 == 1 {
			d.Scope, d.Factors, d.Reasons = ScopeTagged, []string{"ssh"}, []string{"SSH_OPENSSH: OpenSSH on port 22"}
		}
		db.list = append(db.list, DecisionDetail{Decision: d, Timeline: []TimelineEntry{{At: d.Created, Kind: "block", Detail: "blocked"}}})
	}
	return db
}

func (db *decisionBackend) Decisions(f DecisionFilter, after Cursor, limit int) ([]Decision, Cursor) {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := []Decision{}
	for _, d := range db.list {
		code := risk.Score
		if d.Scope == ScopeTagged {
			code = risk.SSHOpenSSH
		}
		switch {
		case !after.Before(d.Created, d.ID),
			f.IP.IsValid() && d.IP != f.IP.String(),
			f.Client.IsValid() && !slices.Contains(d.Clients, f.Client.String()),
			len(f.Factors) > 0 && !slices.Contains(f.Factors, code),
			f.Scope != "" && d.Scope != f.Scope,
			f.State != "" && d.State != f.State,
			!f.Since.IsZero() && d.Created.Before(f.Since):
			continue
		}
		if len(out) == limit {
			return out, Cursor{At: out[limit-1].Created, ID: out[limit-1].ID}
		}
		out = append(out, d.Decision)
	}
	return out, Cursor{}
}

func (db *decisionBackend) find(id string) *DecisionDetail {
	for i := range db.list {
		if db.list[i].ID == id {
			return &db.list[i]
		}
	}
	return nil
}

func (db *decisionBackend) Decision(id string) (DecisionDetail, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if d := db.find(id); d != nil {
		return *d, true
	}
	return DecisionDetail{}, false
}

func (db *decisionBackend) LiftDecision(id, actor, why string) (Decision, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	d := db.find(id)
	switch {
	case d == nil:
		return Decision{}, fmt.Errorf("%w %s", ErrUnknownDecision, id)
	case d.State != StateActive:
		return Decision{}, fmt.Errorf("%w: decision %s is %s", ErrConflict, id, d.State)
	}
	d.State, d.Lifted = StateLifted, &Lifted{At: testNow, Actor: actor, Reason: why}
	return d.Decision, nil
}

func (db *decisionBackend) Block(req BlockRequest) (Decision, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.lastBlock = req
	if req.IP == netip.MustParseAddr("45.83.9.9") {
		return Decision{}, fmt.Errorf("%w: 45.83.9.9 is allowlisted", ErrConflict)
	}
	if req.Range.IsValid() {
		return Decision{ID: "cip-range", Range: req.Range.String(), State: StateActive, Origin: OriginManual, Actor: req.Actor, Reason: req.Reason}, nil
	}
	return Decision{ID: "cip-manual", IP: req.IP.String(), State: StateActive, Origin: OriginManual, Actor: req.Actor, Reason: req.Reason}, nil
}

func (db *decisionBackend) EventDecisions(id string) []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.byEvent[id]
}

func newDecisionFixture(t *testing.T, n int) (*fixture, *decisionBackend) {
	t.Helper()
	db := newDecisionBackend(n)
	f := newFixture(t, func(c *Config) { c.Backend, c.Tokens = db, roleTokens() })
	return f, db
}

type decisionPage struct {
	Decisions  []Decision `json:"decisions"`
	NextCursor string     `json:"next_cursor"`
}

// Pages of GET /v1/decisions hold every decision once, newest first, and
// the last one says there is no more.
func TestDecisionPagination(t *testing.T) {
	f, _ := newDecisionFixture(t, 250)
	var ids []string
	path := "/v1/decisions"
	for range 4 {
		rec := f.do("GET", path, "", "Authorization", "Bearer "+readToken)
		wantStatus(t, rec, http.StatusOK)
		page := decodeBody[decisionPage](t, rec)
		for _, d := range page.Decisions {
			ids = append(ids, d.ID)
		}
		if page.NextCursor == "" {
			break
		}
		path = "/v1/decisions?cursor=" + url.QueryEscape(page.NextCursor)
	}
	if len(ids) != 250 || ids[0] != "cip-000000000249" || ids[249] != "cip-000000000000" || len(slices.Compact(slices.Clone(ids))) != 250 {
		t.Errorf("pages gave %d decisions from %s to %s, want 250 from the newest, each once", len(ids), ids[0], ids[len(ids)-1])
	}
	rec := f.do("GET", "/v1/decisions?limit=7&state=active", "")
	if page := decodeBody[decisionPage](t, rec); len(page.Decisions) != 7 || page.NextCursor == "" {
		t.Errorf("limit=7: %d decisions, next %q", len(page.Decisions), page.NextCursor)
	}
	rec = f.do("GET", "/v1/decisions?ip=203.0.113.1", "")
	if body := rec.Body.String(); !strings.Contains(body, `"decisions":[]`) || !strings.Contains(body, `"next_cursor":""`) {
		t.Errorf("no match: %s, want an empty list and no cursor", body)
	}
}

func TestDecisionFilters(t *testing.T) {
	f, _ := newDecisionFixture(t, 30)
	tests := []struct {
		query string
		want  int
	}{
		{"ip=45.83.0.7", 1},
		{"client=10.0.0.1", 10},
		{"factor=ssh", 15},
		{"factor=SSH_OPENSSH", 15},
		{"factor=score", 15},
		{"factor=anonymity", 0},
		{"scope=tagged", 15},
		{"scope=everyone&client=10.0.0.0", 5},
		{"state=lifted", 0},
		{"since=" + url.QueryEscape(testNow.Add(-10*time.Minute).Format(time.RFC3339)), 10},
		{"since=10m", 10},
		{"since=1d", 30},
	}
	for _, tc := range tests {
		rec := f.do("GET", "/v1/decisions?"+tc.query, "")
		wantStatus(t, rec, http.StatusOK)
		if got := decodeBody[decisionPage](t, rec).Decisions; len(got) != tc.want {
			t.Errorf("?%s: %d decisions, want %d", tc.query, len(got), tc.want)
		}
	}
	for _, bad := range []struct{ query, field string }{
		{"ip=not-an-ip", "ip"}, {"client=10.0.0", "client"}, {"factor=luck", "factor"}, {"scope=monitor", "scope"},
		{"state=gone", "state"}, {"since=yesterday", "since"}, {"until=-5m", "until"}, {"limit=0", "limit"},
		{"limit=1001", "limit"}, {"cursor=%25%25", "cursor"}, {"cursor=bm90LWEtY3Vyc29y", "cursor"},
	} {
		rec := f.do("GET", "/v1/decisions?"+bad.query, "")
		wantStatus(t, rec, http.StatusBadRequest)
		if e := decodeBody[errorBody](t, rec); e.Field != bad.field {
			t.Errorf("?%s: field %q (%s), want %q", bad.query, e.Field, e.Error, bad.field)
		}
	}
}

// A decision is read by id, lifted by id with a reason, once.
func TestDecisionLift(t *testing.T) {
	f, _ := newDecisionFixture(t, 3)
	rec := f.do("GET", "/v1/decisions/cip-000000000001", "", "Authorization", "Bearer "+readToken)
	wantStatus(t, rec, http.StatusOK)
	if d := decodeBody[DecisionDetail](t, rec); d.ID != "cip-000000000001" || len(d.Timeline) != 1 || d.Lifted != nil {
		t.Errorf("decision = %+v", d)
	}
	if !strings.Contains(rec.Body.String(), `"lifted":null`) {
		t.Errorf("an active decision's lifted is not null: %s", rec.Body)
	}
	wantStatus(t, f.do("GET", "/v1/decisions/cip-nope", ""), http.StatusNotFound)

	rec = f.do("DELETE", "/v1/decisions/cip-000000000001", "")
	wantStatus(t, rec, http.StatusBadRequest)
	if e := decodeBody[errorBody](t, rec); e.Field != "reason" {
		t.Errorf("a lift without a reason: %+v, want field reason", e)
	}
	wantStatus(t, f.do("DELETE", "/v1/decisions/cip-000000000001?reason=fp", "", "Authorization", "Bearer "+readToken), http.StatusForbidden)
	rec = f.do("DELETE", "/v1/decisions/cip-000000000001?reason=false+positive&on_behalf_of=bob", "")
	wantStatus(t, rec, http.StatusOK)
	if d := decodeBody[Decision](t, rec); d.State != StateLifted || d.Lifted == nil || d.Lifted.Actor != "token_file (on behalf of bob)" || d.Lifted.Reason != "false positive" {
		t.Errorf("lifted = %+v", d)
	}
	wantStatus(t, f.do("DELETE", "/v1/decisions/cip-000000000001?reason=again", ""), http.StatusConflict)
	wantStatus(t, f.do("DELETE", "/v1/decisions/cip-nope?reason=x", ""), http.StatusNotFound)
}

func TestPostBlock(t *testing.T) {
	f, db := newDecisionFixture(t, 0)
	rec := f.do("POST", "/v1/blocks", `{"ip":"45.83.0.9","ttl":"7d","reason":"C2 <b>","scope":"everyone"}`)
	wantStatus(t, rec, http.StatusCreated)
	if d := decodeBody[Decision](t, rec); d.ID != "cip-manual" || d.Actor != "token_file" || rec.Header().Get("Location") != "/v1/decisions/cip-manual" {
		t.Errorf("block = %+v, Location %q", d, rec.Header().Get("Location"))
	}
	if req := db.lastBlock; req.IP.String() != "45.83.0.9" || req.TTL != 7*24*time.Hour || req.Reason != "C2 <b>" || req.Force {
		t.Errorf("request reached the Backend as %+v", req)
	}
	wantStatus(t, f.do("POST", "/v1/blocks", `{"ip":"45.83.0.9","ttl":"1h","reason":"x"}`, "Authorization", "Bearer "+readToken), http.StatusForbidden)
	wantStatus(t, f.do("POST", "/v1/blocks", `{"ip":"45.83.9.9","ttl":"1h","reason":"x"}`), http.StatusConflict)
	rec = f.do("POST", "/v1/blocks", `{"range":"45.83.0.7/24","ttl":"1h","reason":"scanner farm"}`)
	wantStatus(t, rec, http.StatusCreated)
	if d := decodeBody[Decision](t, rec); d.ID != "cip-range" || d.Range != "45.83.0.0/24" || d.IP != "" || rec.Header().Get("Location") != "/v1/decisions/cip-range" {
		t.Errorf("range block = %+v, Location %q", d, rec.Header().Get("Location"))
	}
	if req := db.lastBlock; req.Range.String() != "45.83.0.0/24" || req.IP.IsValid() || req.TTL != time.Hour {
		t.Errorf("range request reached the Backend as %+v", req)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"ttl":"1h","reason":"x"}`, "ip"},
		{`{"ip":"nope","ttl":"1h","reason":"x"}`, "ip"},
		{`{"ip":"45.83.0.9","reason":"x"}`, "ttl"},
		{`{"ip":"45.83.0.9","ttl":"367d","reason":"x"}`, "ttl"},
		{`{"ip":"45.83.0.9","ttl":"-1h","reason":"x"}`, "ttl"},
		{`{"ip":"45.83.0.9","ttl":"1h"}`, "reason"},
		{`{"ip":"45.83.0.9","ttl":"1h","reason":"  "}`, "reason"},
		{`{"ip":"45.83.0.9","ttl":"1h","reason":"x","scope":"tagged"}`, "scope"},
		{`{"ip":"45.83.0.9","ttl":"1h","reason":"x","force":"yes"}`, "force"},
		{`{"ip":"45.83.0.9","ttl":"1h","reason":"x","bogus":1}`, "bogus"},
		{`{"range":"45.83.0.0/33","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"45.0.0.0/7","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"2a00::/31","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"10.1.0.0/16","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"192.0.0.0/8","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"2001:db8::/48","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"45.83.0.0","ttl":"1h","reason":"x"}`, "range"},
		{`{"range":"45.83.0.0/24","reason":"x"}`, "ttl"},
		{`{"range":"45.83.0.0/24","ttl":"1h"}`, "reason"},
		{`{"ip":"45.83.0.9","range":"45.83.0.0/24","ttl":"1h","reason":"x"}`, "range"},
	} {
		rec := f.do("POST", "/v1/blocks", bad.body)
		wantStatus(t, rec, http.StatusBadRequest)
		if e := decodeBody[errorBody](t, rec); e.Field != bad.field {
			t.Errorf("%s: field %q (%s), want %q", bad.body, e.Field, e.Error, bad.field)
		}
	}
}

// GET /v1/events lists the events kept, newest first, filtered and
// paged, each with the decisions it led to.
func TestEventList(t *testing.T) {
	f, db := newDecisionFixture(t, 0)
	f.srv.cfg.Store = NewStore(100)
	for i := range 12 {
		typ := "edr.malware"
		if i%3 == 0 {
			typ = "phishing.click"
		}
		wantStatus(t, f.do("POST", "/v1/events", fmt.Sprintf(`{"client":"10.1.2.%d","type":%q,"ref":"SIEM-%d"}`, i%4, typ, i)), http.StatusAccepted)
	}
	db.byEvent["ev-000000000012"] = []string{"cip-aaaaaaaaaaaa"}
	type list struct {
		Events     []EventSummary `json:"events"`
		NextCursor string         `json:"next_cursor"`
	}
	var ids []string
	path := "/v1/events?limit=5"
	for range 4 {
		rec := f.do("GET", path, "", "Authorization", "Bearer "+readToken)
		wantStatus(t, rec, http.StatusOK)
		page := decodeBody[list](t, rec)
		for _, ev := range page.Events {
			ids = append(ids, ev.ID)
		}
		if page.NextCursor == "" {
			break
		}
		path = "/v1/events?limit=5&cursor=" + url.QueryEscape(page.NextCursor)
	}
	if len(ids) != 12 || ids[0] != "ev-000000000012" || ids[11] != "ev-000000000001" {
		t.Errorf("pages: %v, want the 12 events newest first", ids)
	}
	rec := f.do("GET", "/v1/events?client=10.1.2.3&type=phishing.click", "")
	got := decodeBody[list](t, rec).Events
	if len(got) != 1 || got[0].ID != "ev-000000000004" || got[0].Ref != "SIEM-3" || got[0].Backtracked != 0 || got[0].By != "token_file" {
		t.Errorf("client and type: %+v", got)
	}
	rec = f.do("GET", "/v1/events?type=edr.malware&limit=1", "")
	if got := decodeBody[list](t, rec).Events; len(got) != 1 || !slices.Equal(got[0].Decisions, []string{"cip-aaaaaaaaaaaa"}) {
		t.Errorf("the newest edr.malware event: %+v, want its decision", got)
	}
	if body := f.do("GET", "/v1/events?client=10.9.9.9", "").Body.String(); body != `{"events":[],"next_cursor":""}`+"\n" {
		t.Errorf("no match: %s", body)
	}
	rec = f.do("GET", "/v1/events/ev-000000000012", "")
	if !strings.Contains(rec.Body.String(), `"decisions":["cip-aaaaaaaaaaaa"]`) {
		t.Errorf("event detail lacks its decisions: %s", rec.Body)
	}
	for _, bad := range []struct{ query, field string }{
		{"client=x", "client"}, {"type=a%20b", "type"}, {"since=soon", "since"}, {"limit=-1", "limit"}, {"cursor=x", "cursor"},
	} {
		rec := f.do("GET", "/v1/events?"+bad.query, "")
		wantStatus(t, rec, http.StatusBadRequest)
		if e := decodeBody[errorBody](t, rec); e.Field != bad.field {
			t.Errorf("?%s: field %q (%s), want %q", bad.query, e.Field, e.Error, bad.field)
		}
	}
	wantStatus(t, f.do("GET", "/v1/events", "", "Authorization", "Bearer "+eventsToken), http.StatusForbidden)
	wantStatus(t, f.do("GET", "/v1/decisions", "", "Authorization", "Bearer "+eventsToken), http.StatusForbidden)
}
