package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

const testToken = "t0ken-for-tests"

// fakeBackend tags and untags, and answers Submit with what the test put in
// found; it records every submission.
type fakeBackend struct {
	defaults Defaults
	found    []Found
	verdicts map[netip.Addr]verdicts.Verdict
	block    chan struct{} // if set, Submit waits on it
	entered  chan struct{} // if set, Submit signals it first

	mu        sync.Mutex
	submitted []Event
	ids       []string
	tagged    map[netip.Addr]time.Time
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		defaults: testDefaults,
		verdicts: map[netip.Addr]verdicts.Verdict{},
		tagged:   map[netip.Addr]time.Time{},
	}
}

func (b *fakeBackend) Defaults() Defaults { return b.defaults }

func (b *fakeBackend) Submit(ev Event, id string) (Accepted, []Found) {
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.block != nil {
		<-b.block
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.submitted = append(b.submitted, ev)
	b.ids = append(b.ids, id)
	acc := Accepted{ID: "ignored-by-server", Backtracked: len(b.found), Queued: 1, Cached: 1, Dropped: 0}
	if ev.Watch > 0 {
		acc.TaggedUntil = ev.At.Add(ev.Watch)
		b.tagged[ev.Client] = acc.TaggedUntil
	}
	return acc, b.found
}

func (b *fakeBackend) Verdict(ip netip.Addr) (verdicts.Verdict, bool) {
	v, ok := b.verdicts[ip]
	return v, ok
}

func (b *fakeBackend) Clients() []tags.Tag {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := []tags.Tag{}
	for ip, until := range b.tagged {
		list = append(list, tags.Tag{Client: ip, Reason: tags.ReasonEvent, Until: until})
	}
	slices.SortFunc(list, func(a, b tags.Tag) int { return a.Client.Compare(b.Client) })
	return list
}

func (b *fakeBackend) Untag(ip netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.tagged[ip]
	delete(b.tagged, ip)
	return ok
}

func (b *fakeBackend) submissions() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.submitted)
}

// logSink collects Logf lines so a test can check what reached the log.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type fixture struct {
	srv     *Server
	backend *fakeBackend
	store   *Store
	logs    *logSink
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{backend: newFakeBackend(), store: NewStore(10), logs: &logSink{}}
	n := 0
	cfg := Config{
		Addr:    "127.0.0.1:0",
		Token:   testToken,
		Backend: f.backend,
		Store:   f.store,
		Now:     func() time.Time { return testNow },
		NewID:   func() string { n++; return fmt.Sprintf("ev-%012d", n) },
		Logf:    f.logs.logf,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	f.srv = srv
	return f
}

// do sends a request through the handler with the test token and, for a
// body, a JSON content type; headers override both ("" deletes).
func (f *fixture) do(method, path, body string, headers ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %q: %v", rec.Body, err)
	}
	return v
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
}

type postAnswer struct {
	ID          string    `json:"id"`
	Backtracked int       `json:"backtracked"`
	Queued      int       `json:"queued"`
	Cached      int       `json:"cached"`
	Dropped     int       `json:"dropped"`
	TaggedUntil time.Time `json:"tagged_until"`
	Found       []Found   `json:"found"`
}

func TestPostEventAppliesDefaults(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"edr.malware"}`)
	wantStatus(t, rec, http.StatusAccepted)

	got := f.backend.submissions()
	want := Event{Client: netip.MustParseAddr("10.1.2.3"), Type: "edr.malware", At: testNow, Window: 5 * time.Minute, Watch: 30 * time.Minute}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("Backend got %+v, want [%+v]", got, want)
	}
	if f.backend.ids[0] != "ev-000000000001" {
		t.Errorf("Backend got id %q, want the new event's id", f.backend.ids[0])
	}

	ans := decodeBody[postAnswer](t, rec)
	if ans.ID != "ev-000000000001" {
		t.Errorf("id = %q, want the server's id, not the Backend's", ans.ID)
	}
	if !ans.TaggedUntil.Equal(testNow.Add(30 * time.Minute)) {
		t.Errorf("tagged_until = %v, want now+30m", ans.TaggedUntil)
	}
	if ans.Found == nil {
		t.Errorf(`found is null; want [] when nothing was found: %s`, rec.Body)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/events/ev-000000000001" {
		t.Errorf("Location = %q", loc)
	}
	if _, ok := f.store.Get("ev-000000000001"); !ok {
		t.Error("the event is not in the store")
	}
	if !strings.Contains(f.logs.all(), "ev-000000000001") {
		t.Errorf("log %q does not mention the accepted event", f.logs.all())
	}
}

func TestPostEventWatchZeroOmitsTaggedUntil(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"x","watch":0}`)
	wantStatus(t, rec, http.StatusAccepted)
	if strings.Contains(rec.Body.String(), "tagged_until") {
		t.Errorf("body %s has tagged_until for an event that tags nobody", rec.Body)
	}
}

// An event whose window reaches before the answers retained (MaxWindow is
// retain: 1h here) is answered with the interval searched and a warning,
// in the answer, the stored event and the log; one within the retained
// answers has neither.
func TestPostEventBeforeRetainedAnswers(t *testing.T) {
	type coverAnswer struct {
		Covered *struct {
			From time.Time `json:"from"`
			To   time.Time `json:"to"`
		} `json:"covered"`
		Warning string `json:"warning"`
	}
	tests := []struct {
		name, at, window string
		from             time.Time // zero: no covered, no warning
		warn             string
	}{
		{"within", "2026-03-14T11:30:00Z", "30m", time.Time{}, ""},
		{"partly", "2026-03-14T11:30:00Z", "1h", testNow.Add(-time.Hour), "only 2026-03-14T11:00:00Z to 2026-03-14T11:30:00Z was backtracked"},
		{"wholly", "2026-03-14T10:30:00Z", "30m", time.Date(2026, 3, 14, 10, 30, 0, 0, time.UTC), "nothing could be backtracked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do("POST", "/v1/events", fmt.Sprintf(`{"client":"10.1.2.3","type":"x","at":%q,"window":%q}`, tt.at, tt.window))
			wantStatus(t, rec, http.StatusAccepted)
			ans := decodeBody[coverAnswer](t, rec)
			if tt.from.IsZero() {
				if ans.Covered != nil || ans.Warning != "" || strings.Contains(f.logs.all(), "warning") {
					t.Errorf("answer %s, log %q: want no covered interval and no warning", rec.Body, f.logs.all())
				}
				return
			}
			at, _ := time.Parse(time.RFC3339, tt.at)
			if ans.Covered == nil || !ans.Covered.From.Equal(tt.from) || !ans.Covered.To.Equal(at) {
				t.Errorf("covered = %+v, want %v to %v", ans.Covered, tt.from, at)
			}
			if !strings.Contains(ans.Warning, tt.warn) || !strings.Contains(ans.Warning, "retained (1h)") {
				t.Errorf("warning %q, want it to say %q and the retention", ans.Warning, tt.warn)
			}
			if !strings.Contains(f.logs.all(), "warning: "+ans.Warning) {
				t.Errorf("log %q lacks the warning", f.logs.all())
			}
			got := decodeBody[struct {
				Accepted coverAnswer `json:"accepted"`
			}](t, f.do("GET", "/v1/events/ev-000000000001", ""))
			if got.Accepted.Warning != ans.Warning {
				t.Errorf("GET /v1/events: warning %q, want the POST's", got.Accepted.Warning)
			}
			// The counts are still there.
			if p := decodeBody[postAnswer](t, rec); p.Queued != 1 || p.Cached != 1 {
				t.Errorf("answer %s lost its counts", rec.Body)
			}
		})
	}
}

func TestPostEventAnswerAndLookup(t *testing.T) {
	f := newFixture(t, nil)
	bad, clean := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("198.51.100.9")
	f.backend.found = []Found{
		{IP: bad, Names: []string{"evil.example"}, First: testNow.Add(-4 * time.Minute), Last: testNow.Add(-time.Minute), Count: 3, Result: "cached"},
		{IP: clean, Ports: []uint16{8443}, First: testNow.Add(-2 * time.Minute), Last: testNow.Add(-2 * time.Minute), Count: 1, Result: "queued"},
	}
	f.backend.verdicts[bad] = verdicts.Verdict{IP: bad, Outcome: verdicts.Suspicious, Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical"}}}

	body := `{"client":"10.1.2.3","type":"phishing.click","at":"2026-03-14T11:58:00Z","window":"10m","watch":"1h","ref":"SIEM-123"}`
	rec := f.do("POST", "/v1/events", body, "Content-Type", "application/json; charset=UTF-8")
	wantStatus(t, rec, http.StatusAccepted)
	ans := decodeBody[postAnswer](t, rec)
	if ans.Backtracked != 2 || ans.Queued != 1 || ans.Cached != 1 || len(ans.Found) != 2 || ans.Found[0].Result != "cached" {
		t.Fatalf("answer = %+v", ans)
	}

	rec = f.do("GET", "/v1/events/"+ans.ID, "")
	wantStatus(t, rec, http.StatusOK)
	type foundAnswer struct {
		IP      string         `json:"ip"`
		Names   []string       `json:"names"`
		Ports   []uint16       `json:"ports"`
		Count   int            `json:"count"`
		State   string         `json:"state"`
		Verdict map[string]any `json:"verdict"`
	}
	got := decodeBody[struct {
		ID    string `json:"id"`
		Event struct {
			Client, Type, At, Window, Watch, Ref string
		} `json:"event"`
		Received time.Time     `json:"received"`
		Accepted postAnswer    `json:"accepted"`
		Found    []foundAnswer `json:"found"`
	}](t, rec)
	if got.ID != ans.ID || got.Accepted.ID != ans.ID || got.Accepted.Queued != 1 {
		t.Errorf("ids/counts = %q %+v", got.ID, got.Accepted)
	}
	ev := got.Event
	if ev.Client != "10.1.2.3" || ev.Type != "phishing.click" || ev.At != "2026-03-14T11:58:00Z" || ev.Window != "10m0s" || ev.Watch != "1h0m0s" || ev.Ref != "SIEM-123" {
		t.Errorf("event = %+v", ev)
	}
	if !got.Received.Equal(testNow) {
		t.Errorf("received = %v, want %v", got.Received, testNow)
	}
	if len(got.Found) != 2 {
		t.Fatalf("found = %+v", got.Found)
	}
	if f0 := got.Found[0]; f0.IP != "203.0.113.7" || f0.Names[0] != "evil.example" || f0.Count != 3 || f0.Verdict["outcome"] != "suspicious" {
		t.Errorf("found[0] = %+v, want the bad IP with its verdict", f0)
	}
	if got.Found[0].State != "suspicious" || got.Found[1].State != "validating" {
		t.Errorf("states %q and %q, want suspicious and validating", got.Found[0].State, got.Found[1].State)
	}
	if f1 := got.Found[1]; f1.IP != "198.51.100.9" || f1.Ports[0] != 8443 || f1.Verdict != nil {
		t.Errorf("found[1] = %+v, want the clean IP without a verdict", f1)
	}
	if !strings.Contains(rec.Body.String(), `"verdict":null`) || !strings.Contains(rec.Body.String(), `"decisions":[]`) {
		t.Errorf("body lacks a null verdict or an empty decisions list: %s", rec.Body)
	}
}

func TestGetEventUnknown(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do("GET", "/v1/events/ev-nope", "")
	wantStatus(t, rec, http.StatusNotFound)
	if got := decodeBody[errorBody](t, rec); got.Error != "no event ev-nope" {
		t.Errorf("error = %q", got.Error)
	}
}

func TestPostEventRejected(t *testing.T) {
	longRef := strings.Repeat("r", MaxRefLength+1)
	longType := strings.Repeat("t", MaxTypeLength+1)
	tests := []struct {
		name        string
		body        string
		contentType string // default application/json
		status      int    // default 400
		field       string
		msg         string // substring of the error
		maxBody     int64
	}{
		{name: "bad client", body: `{"client":"10.1.2","type":"x"}`, field: "client", msg: `client: "10.1.2" is not an IP address`},
		{name: "missing client", body: `{"type":"x"}`, field: "client", msg: "client: required"},
		{name: "client not a string", body: `{"client":10,"type":"x"}`, field: "client", msg: "must be a JSON string"},
		{name: "client unspecified", body: `{"client":"0.0.0.0","type":"x"}`, field: "client", msg: "not a unicast address"},
		{name: "client multicast", body: `{"client":"ff02::1","type":"x"}`, field: "client", msg: "not a unicast address"},
		{name: "client broadcast", body: `{"client":"255.255.255.255","type":"x"}`, field: "client", msg: "not a unicast address"},
		{name: "client with zone", body: `{"client":"fe80::1%eth0","type":"x"}`, field: "client", msg: "has a zone"},
		{name: "missing type", body: `{"client":"10.1.2.3"}`, field: "type", msg: "type: required"},
		{name: "empty type", body: `{"client":"10.1.2.3","type":""}`, field: "type", msg: "must not be empty"},
		{name: "type with space", body: `{"client":"10.1.2.3","type":"edr malware"}`, field: "type", msg: "only letters, digits"},
		{name: "type too long", body: `{"client":"10.1.2.3","type":"` + longType + `"}`, field: "type", msg: "at most 64"},
		{name: "bad at", body: `{"client":"10.1.2.3","type":"x","at":"yesterday"}`, field: "at", msg: "not an RFC 3339 time"},
		{name: "at as number", body: `{"client":"10.1.2.3","type":"x","at":1773489600}`, field: "at", msg: "must be a JSON string"},
		{name: "at too old", body: `{"client":"10.1.2.3","type":"x","at":"2026-03-13T11:59:59Z"}`, field: "at", msg: "more than 24h in the past"},
		{name: "at in the future", body: `{"client":"10.1.2.3","type":"x","at":"2026-03-14T12:05:01Z"}`, field: "at", msg: "more than 5m in the future"},
		{name: "window 0", body: `{"client":"10.1.2.3","type":"x","window":"0s"}`, field: "window", msg: "must be more than 0"},
		{name: "window 0 seconds", body: `{"client":"10.1.2.3","type":"x","window":0}`, field: "window", msg: "must be more than 0"},
		{name: "window negative", body: `{"client":"10.1.2.3","type":"x","window":"-5m"}`, field: "window", msg: "got -5m"},
		{name: "window over max", body: `{"client":"10.1.2.3","type":"x","window":"2h"}`, field: "window", msg: "2h is longer than answers are retained (1h)"},
		{name: "window no unit", body: `{"client":"10.1.2.3","type":"x","window":"300"}`, field: "window", msg: "not a duration"},
		{name: "window fraction", body: `{"client":"10.1.2.3","type":"x","window":1.5}`, field: "window", msg: "not a duration"},
		{name: "window huge", body: `{"client":"10.1.2.3","type":"x","window":99999999999999}`, field: "window", msg: "out of range"},
		{name: "watch negative", body: `{"client":"10.1.2.3","type":"x","watch":"-1m"}`, field: "watch", msg: "must not be negative"},
		{name: "watch over 7 days", body: `{"client":"10.1.2.3","type":"x","watch":"169h"}`, field: "watch", msg: "maximum of 168h"},
		{name: "ref too long", body: `{"client":"10.1.2.3","type":"x","ref":"` + longRef + `"}`, field: "ref", msg: "at most 128"},
		{name: "ref control character", body: `{"client":"10.1.2.3","type":"x","ref":"a\nb"}`, field: "ref", msg: "non-printable"},
		{name: "severity unknown", body: `{"client":"10.1.2.3","type":"x","severity":"severe"}`, field: "severity", msg: `"severe" is not one of info, low, medium, high, critical or a number from 0 to 10`},
		{name: "severity over 10", body: `{"client":"10.1.2.3","type":"x","severity":11}`, field: "severity", msg: "a number from 0 to 10"},
		{name: "severity negative", body: `{"client":"10.1.2.3","type":"x","severity":"-1"}`, field: "severity", msg: "a number from 0 to 10"},
		{name: "severity NaN", body: `{"client":"10.1.2.3","type":"x","severity":"NaN"}`, field: "severity", msg: "a number from 0 to 10"},
		{name: "severity object", body: `{"client":"10.1.2.3","type":"x","severity":{"level":3}}`, field: "severity", msg: "a number from 0 to 10"},
		{name: "malformed JSON", body: `{"client":"10.1.2.3",`, field: "body", msg: "malformed JSON"},
		{name: "syntax error", body: `{"client" "10.1.2.3"}`, field: "body", msg: "malformed JSON at byte"},
		{name: "not an object", body: `"10.1.2.3"`, field: "body", msg: "must be a JSON object, not string"},
		{name: "empty body", body: ``, field: "body", msg: "empty"},
		{name: "trailing data", body: `{"client":"10.1.2.3","type":"x"} {}`, field: "body", msg: "unexpected data after"},
		{name: "body too large", body: `{"client":"10.1.2.3","type":"x","ref":"` + strings.Repeat(" ", 200) + `"}`, maxBody: 128, status: http.StatusRequestEntityTooLarge, field: "body", msg: "larger than the limit of 128 bytes"},
		{name: "wrong content type", body: `{"client":"10.1.2.3","type":"x"}`, contentType: "text/plain", status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "must be application/json"},
		{name: "form content type", body: `client=10.1.2.3`, contentType: "application/x-www-form-urlencoded", status: http.StatusUnsupportedMediaType, field: "Content-Type"},
		{name: "no content type", body: `{"client":"10.1.2.3","type":"x"}`, contentType: "none", status: http.StatusUnsupportedMediaType, field: "Content-Type"},
		{name: "latin-1 charset", body: `{"client":"10.1.2.3","type":"x"}`, contentType: "application/json; charset=iso-8859-1", status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "charset must be utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.MaxBody = tt.maxBody })
			ct := "application/json"
			switch tt.contentType {
			case "":
			case "none":
				ct = ""
			default:
				ct = tt.contentType
			}
			req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)

			status := tt.status
			if status == 0 {
				status = http.StatusBadRequest
			}
			wantStatus(t, rec, status)
			got := decodeBody[errorBody](t, rec)
			if got.Field != tt.field {
				t.Errorf("field = %q, want %q (error %q)", got.Field, tt.field, got.Error)
			}
			if !strings.HasPrefix(got.Error, tt.field+": ") || !strings.Contains(got.Error, tt.msg) {
				t.Errorf("error = %q, want it to start with %q and contain %q", got.Error, tt.field+": ", tt.msg)
			}
			if n := len(f.backend.submissions()); n != 0 {
				t.Errorf("a rejected event reached the Backend %d times", n)
			}
			if f.store.Len() != 0 {
				t.Error("a rejected event was stored")
			}
		})
	}
}

func TestBodyTooLargeWithoutContentLength(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBody = 64 })
	// A reader of unknown length makes the request chunked: the limit must
	// hold while reading, not only against Content-Length.
	req := httptest.NewRequest("POST", "/v1/events", io.MultiReader(strings.NewReader(`{"ref":"`+strings.Repeat("x", 100)+`"}`)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	wantStatus(t, rec, http.StatusRequestEntityTooLarge)
	if got := decodeBody[errorBody](t, rec); !strings.Contains(got.Error, "64 bytes") {
		t.Errorf("error = %q, want it to name the limit", got.Error)
	}
}

func TestDefaultMaxBody(t *testing.T) {
	f := newFixture(t, nil)
	pad := strings.Repeat(" ", DefaultMaxBody-100)
	wantStatus(t, f.do("POST", "/v1/events", `{"client":"10.1.2.3",`+pad+`"type":"x"}`), http.StatusAccepted)
	pad = strings.Repeat(" ", DefaultMaxBody)
	rec := f.do("POST", "/v1/events", `{"client":"10.1.2.3",`+pad+`"type":"x"}`)
	wantStatus(t, rec, http.StatusRequestEntityTooLarge)
	if got := decodeBody[errorBody](t, rec); !strings.Contains(got.Error, "65536 bytes") {
		t.Errorf("error = %q, want it to name the limit", got.Error)
	}
}

func TestClients(t *testing.T) {
	f := newFixture(t, nil)
	wantStatus(t, f.do("GET", "/v1/clients", ""), http.StatusOK)
	if got := f.do("GET", "/v1/clients", "").Body.String(); got != `{"clients":[]}`+"\n" {
		t.Errorf("no clients: body = %q, want {\"clients\":[]}", got)
	}
	wantStatus(t, f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"x"}`), http.StatusAccepted)
	wantStatus(t, f.do("POST", "/v1/events", `{"client":"fd00::7","type":"x","watch":"1h"}`), http.StatusAccepted)

	rec := f.do("GET", "/v1/clients", "")
	wantStatus(t, rec, http.StatusOK)
	got := decodeBody[struct {
		Clients []struct {
			Client string    `json:"client"`
			Until  time.Time `json:"until"`
		} `json:"clients"`
	}](t, rec).Clients
	if len(got) != 2 || got[0].Client != "10.1.2.3" || got[1].Client != "fd00::7" || !got[1].Until.Equal(testNow.Add(time.Hour)) {
		t.Errorf("clients = %+v", got)
	}

	rec = f.do("DELETE", "/v1/clients/fd00::7", "")
	wantStatus(t, rec, http.StatusOK)
	if body := rec.Body.String(); body != `{"client":"fd00::7","untagged":true}`+"\n" {
		t.Errorf("untag body = %s", body)
	}
	if !strings.Contains(f.logs.all(), "fd00::7 untagged") {
		t.Errorf("log %q does not record the untag", f.logs.all())
	}

	rec = f.do("DELETE", "/v1/clients/fd00::7", "")
	wantStatus(t, rec, http.StatusNotFound)
	if got := decodeBody[errorBody](t, rec); got.Error != "client fd00::7 is not tagged by an event" {
		t.Errorf("error = %q", got.Error)
	}

	// The mapped form names the same client.
	wantStatus(t, f.do("DELETE", "/v1/clients/::ffff:10.1.2.3", ""), http.StatusOK)

	rec = f.do("DELETE", "/v1/clients/not-an-ip", "")
	wantStatus(t, rec, http.StatusBadRequest)
	if got := decodeBody[errorBody](t, rec); got.Field != "ip" || got.Error != `ip: "not-an-ip" is not an IP address` {
		t.Errorf("error = %+v", got)
	}
}

func TestVerdicts(t *testing.T) {
	f := newFixture(t, nil)
	f.backend.verdicts[netip.MustParseAddr("203.0.113.7")] = verdicts.Verdict{IP: netip.MustParseAddr("203.0.113.7"), Decision: "d-1", Outcome: verdicts.Suspicious}

	rec := f.do("GET", "/v1/verdicts/203.0.113.7", "")
	wantStatus(t, rec, http.StatusOK)
	if got := decodeBody[map[string]any](t, rec); got["decision"] != "d-1" {
		t.Errorf("verdict = %v", got)
	}

	rec = f.do("GET", "/v1/verdicts/198.51.100.1", "")
	wantStatus(t, rec, http.StatusNotFound)
	if got := decodeBody[errorBody](t, rec); got.Error != "no verdict for 198.51.100.1" {
		t.Errorf("error = %q", got.Error)
	}

	rec = f.do("GET", "/v1/verdicts/203.0.113", "")
	wantStatus(t, rec, http.StatusBadRequest)
	if got := decodeBody[errorBody](t, rec); got.Field != "ip" {
		t.Errorf("error = %+v, want field ip", got)
	}
}

func TestHealthzNeedsNoToken(t *testing.T) {
	f := newFixture(t, nil)
	for _, method := range []string{"GET", "HEAD"} {
		rec := f.do(method, "/healthz", "", "Authorization", "")
		wantStatus(t, rec, http.StatusOK)
		if method == "GET" && rec.Body.String() != "ok" {
			t.Errorf("body = %q, want ok", rec.Body)
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", http.StatusNotFound, ""},
		{"GET", "/v1/blocks", http.StatusNotFound, ""},
		{"GET", "/v1/events/", http.StatusNotFound, ""},
		{"PUT", "/v1/events", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"PUT", "/v1/clients", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"POST", "/v1/clients/10.1.2.3", http.StatusMethodNotAllowed, "DELETE"},
		{"DELETE", "/v1/events/ev-1", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"POST", "/healthz", http.StatusMethodNotAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := f.do(tt.method, tt.path, "")
			wantStatus(t, rec, tt.status)
			got := decodeBody[errorBody](t, rec)
			if got.Error == "" {
				t.Error("no error message")
			}
			if allow := rec.Header().Get("Allow"); allow != tt.allow {
				t.Errorf("Allow = %q, want %q", allow, tt.allow)
			}
			if tt.allow != "" && !strings.Contains(got.Error, tt.allow) {
				t.Errorf("error %q does not say which methods are allowed", got.Error)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"missing", "", http.StatusUnauthorized, `Bearer realm="cipvalidate"`},
		{"wrong", "Bearer not-the-token", http.StatusUnauthorized, `Bearer realm="cipvalidate", error="invalid_token"`},
		{"prefix of the token", "Bearer " + testToken[:4], http.StatusUnauthorized, `Bearer realm="cipvalidate", error="invalid_token"`},
		{"token plus more", "Bearer " + testToken + "x", http.StatusUnauthorized, `Bearer realm="cipvalidate", error="invalid_token"`},
		{"basic scheme", "Basic " + testToken, http.StatusUnauthorized, `Bearer realm="cipvalidate"`},
		{"scheme only", "Bearer", http.StatusUnauthorized, `Bearer realm="cipvalidate"`},
		{"bare token", testToken, http.StatusUnauthorized, `Bearer realm="cipvalidate"`},
		{"right", "Bearer " + testToken, http.StatusOK, ""},
		{"scheme in lower case", "bearer " + testToken, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/v1/clients", "/v1/no-such-route"} {
				rec := f.do("GET", path, "", "Authorization", tt.auth)
				if path == "/v1/no-such-route" && tt.status == http.StatusOK {
					wantStatus(t, rec, http.StatusNotFound)
					continue
				}
				wantStatus(t, rec, tt.status)
				if got := rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
				}
				if tt.status == http.StatusUnauthorized {
					if got := decodeBody[errorBody](t, rec); !strings.Contains(got.Error, "bearer token") {
						t.Errorf("error = %q", got.Error)
					}
				}
				if strings.Contains(rec.Body.String(), testToken) {
					t.Errorf("answer %s shows the token", rec.Body)
				}
			}
		})
	}
	// An unauthorized POST must not be submitted, whatever its body.
	rec := f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"x"}`, "Authorization", "Bearer wrong")
	wantStatus(t, rec, http.StatusUnauthorized)
	if n := len(f.backend.submissions()); n != 0 {
		t.Errorf("an unauthorized event reached the Backend")
	}
	if strings.Contains(f.logs.all(), testToken) {
		t.Errorf("the log shows the token: %s", f.logs.all())
	}
}

func TestNoTokenOnLoopback(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Token = "" })
	rec := f.do("GET", "/v1/clients", "", "Authorization", "")
	wantStatus(t, rec, http.StatusOK)
}

func TestNewServerChecksConfig(t *testing.T) {
	backend := newFakeBackend()
	tests := []struct {
		name string
		cfg  Config
		err  string // "" = accepted
	}{
		{"no token on 127.0.0.1", Config{Addr: "127.0.0.1:8053", Backend: backend}, ""},
		{"no token on ::1", Config{Addr: "[::1]:0", Backend: backend}, ""},
		{"no token on localhost", Config{Addr: "localhost:8053", Backend: backend}, ""},
		{"no token on 127.0.0.2", Config{Addr: "127.0.0.2:8053", Backend: backend}, ""},
		{"token on all interfaces", Config{Addr: ":8053", Token: testToken, Backend: backend}, ""},
		{"no token on all interfaces", Config{Addr: ":8053", Backend: backend}, "token is required"},
		{"no token on 0.0.0.0", Config{Addr: "0.0.0.0:8053", Backend: backend}, "token is required"},
		{"no token on ::", Config{Addr: "[::]:8053", Backend: backend}, "token is required"},
		{"no token on a private address", Config{Addr: "10.0.0.53:8053", Backend: backend}, "token is required"},
		{"no token on a name", Config{Addr: "dns.internal:8053", Backend: backend}, "token is required"},
		{"no backend", Config{Addr: "127.0.0.1:0"}, "no Backend"},
		{"no address", Config{Backend: backend}, "no listen address"},
		{"address without port", Config{Addr: "127.0.0.1", Backend: backend}, "missing port"},
		{"token with a space", Config{Addr: "127.0.0.1:0", Token: "two words", Backend: backend}, "visible ASCII"},
		{"token with a newline", Config{Addr: "127.0.0.1:0", Token: "tok\n", Backend: backend}, "visible ASCII"},
		{"negative body limit", Config{Addr: "127.0.0.1:0", Backend: backend, MaxBody: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.cfg)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("NewServer: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("NewServer error = %v, want one containing %q", err, tt.err)
			}
			if err != nil && tt.cfg.Token != "" && strings.Contains(err.Error(), tt.cfg.Token) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

func TestDefaultID(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.NewID = nil })
	seen := map[string]bool{}
	for range 20 {
		ans := decodeBody[postAnswer](t, f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"x"}`))
		id, ok := strings.CutPrefix(ans.ID, "ev-")
		if !ok || len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("id = %q, want ev- and 12 hex digits", ans.ID)
		}
		if seen[ans.ID] {
			t.Fatalf("id %q repeated", ans.ID)
		}
		seen[ans.ID] = true
	}
}

// serverGoroutines lists goroutines that belong to a running HTTP server or
// client, so a test can see that Stop left none behind.
func serverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*Server).Serve") || strings.Contains(g, "net/http.(*conn).serve") ||
			strings.Contains(g, "net/http.(*persistConn)") || strings.Contains(g, "internal/events.(*Server)") {
			found = append(found, g)
		}
	}
	return found
}

// waitNoServerGoroutines polls until the server's goroutines are gone; they
// exit shortly after Stop returns, so it waits rather than asserting at once.
func waitNoServerGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := serverGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left behind:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	waitNoServerGoroutines(t)
	f := newFixture(t, nil)
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := f.srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	addrPort, err := netip.ParseAddrPort(f.srv.Addr())
	if err != nil || addrPort.Port() == 0 || !addrPort.Addr().IsLoopback() {
		t.Fatalf("Addr = %q, want 127.0.0.1 and the real port", f.srv.Addr())
	}
	if err := f.srv.Start(); err == nil {
		t.Error("a second Start succeeded")
	}

	base := "http://" + f.srv.Addr()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	req, _ := http.NewRequest("POST", base+"/v1/events", strings.NewReader(`{"client":"10.1.2.3","type":"edr.malware"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"id":"ev-000000000001"`) {
		t.Fatalf("POST = %d %s", resp.StatusCode, body)
	}
	resp, err = client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d", resp.StatusCode)
	}

	// The client keeps its connection open: Stop must close it.
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := net.Dial("tcp", addrPort.String()); err == nil {
		t.Error("the listener is still open after Stop")
	}
	tr.CloseIdleConnections()
	waitNoServerGoroutines(t)

	// Stopped is not final: a reload starts the API again.
	if err := f.srv.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitNoServerGoroutines(t)
}

func TestStartPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := newFixture(t, func(c *Config) { c.Addr = ln.Addr().String() })
	err = f.srv.Start()
	if err == nil {
		_ = f.srv.Stop(context.Background())
		t.Fatal("Start on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start: %v", err)
	}
}

func TestStopDeadlineWithRequestInFlight(t *testing.T) {
	waitNoServerGoroutines(t)
	f := newFixture(t, nil)
	f.backend.entered = make(chan struct{})
	f.backend.block = make(chan struct{})
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+f.srv.Addr()+"/v1/events", strings.NewReader(`{"client":"10.1.2.3","type":"x"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-f.backend.entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.srv.Stop(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Stop with an expired context and a request in flight = %v, want the context's error", err)
	}
	if err := <-done; err == nil {
		t.Error("the in-flight request succeeded although Stop closed its connection")
	}
	close(f.backend.block)
	tr.CloseIdleConnections()
	waitNoServerGoroutines(t)
}
