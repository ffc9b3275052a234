package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/optval"
)

// contractNow is the fake API's clock and the CLI's in these tests.
var contractNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// contractAPI is an event API that answers as /work/notes/api14.md says,
// from canned data: the CLI is tested against the contract, not against
// the implementation being written beside it. Decisions are maps, so that
// the JSON keys come from the contract, not from the CLI's structs.
type contractAPI struct {
	mu        sync.Mutex
	decisions []map[string]any // newest first
	allow     []map[string]any
	clients   []map[string]any
	pageMax   int // the most a page holds, whatever ?limit= asks
	throttle  int // the next requests answered 429
	requests  []*http.Request
	bodies    []map[string]any // POST bodies, in order
}

// Tokens of the fake API and their roles.
const (
	readSecret     = "read-secret"
	operatorSecret = "operator-secret"
)

// newContractAPI serves 100 decisions: ten lifted (i%10 == 0), ten
// expired (i%10 == 1), the rest active; scope everyone for even i;
// factor score for i%3 == 0, else anonymity; clients 10.1.2.(i%5); one
// hour apart, newest first; decision 7 a range; 45.83.0.8 blocked twice;
// decision 41 (45.83.0.41) active, with the id of the README's examples.
func newContractAPI(t *testing.T) (*contractAPI, string) {
	api := &contractAPI{pageMax: 30}
	for i := range 100 {
		d := map[string]any{
			"id": fmt.Sprintf("cip-%012x", i), "ip": fmt.Sprintf("45.83.%d.%d", i/50, i%50), "range": "",
			"state": "active", "origin": "engine", "scope": "everyone", "port": 0, "narrowed": "", "monitor": false,
			"reasons": []string{"SCORE: inbound Critical, outbound Critical"}, "factors": []string{"score"},
			"evidence": map[string]any{"score_inbound": "Critical", "score_outbound": "Critical", "ports": []int{22, 443}, "tags": []string{"tor"}},
			"clients":  []string{fmt.Sprintf("10.1.2.%d", i%5)}, "events": []string{fmt.Sprintf("ev-%012x", i)},
			"qnames": []string{fmt.Sprintf("host%d.example.", i)}, "rewrites": i,
			"created":     contractNow.Add(-time.Duration(i) * time.Hour).Format(time.RFC3339),
			"expires":     contractNow.Add(time.Duration(24-i) * time.Hour).Format(time.RFC3339),
			"ttl_seconds": 86400, "remaining_seconds": 3600 * 24, "repeat": 0, "actor": "engine", "reason": "",
			"hooks":  []map[string]any{{"hook": "nftables", "state": "delivered", "delivered_at": contractNow.Format(time.RFC3339), "attempts": 1, "error": ""}},
			"lifted": nil,
		}
		switch i % 10 {
		case 0:
			d["state"], d["remaining_seconds"] = "lifted", 0
			d["lifted"] = map[string]any{"at": contractNow.Add(-time.Minute).Format(time.RFC3339), "actor": "bob", "reason": "fp"}
		case 1:
			d["state"], d["remaining_seconds"] = "expired", 0
		}
		if i%2 == 1 {
			d["scope"] = "tagged"
		}
		if i%3 != 0 {
			d["factors"], d["reasons"] = []string{"anonymity"}, []string{"ANON_TOR: a Tor exit node"}
		}
		api.decisions = append(api.decisions, d)
	}
	// The ids of the README's examples.
	api.decisions[41]["id"], api.decisions[41]["state"] = "cip-0123456789ab", "active"
	api.decisions[7]["ip"], api.decisions[7]["range"], api.decisions[7]["origin"] = "", "45.83.0.0/28", "manual"
	api.decisions[9]["ip"], api.decisions[9]["port"] = "45.83.0.8", 443 // 45.83.0.8 twice, active
	// Text from the network, as the CLI must not pass it to a terminal.
	api.decisions[2]["qnames"] = []string{"evil\x1b[2J\t.example."}
	api.decisions[2]["reasons"] = []string{"line one\nforged line"}
	api.allow = []map[string]any{{"value": "cdn.example.com", "until": contractNow.Add(48 * time.Hour).Format(time.RFC3339), "reason": "vendor, CDN", "actor": "ops", "created": contractNow.Format(time.RFC3339)},
		{"value": "10.9.0.0/16", "created": contractNow.Format(time.RFC3339), "static": true}}
	api.clients = []map[string]any{{"client": "10.1.2.3", "since": contractNow.Add(-time.Hour).Format(time.RFC3339), "until": contractNow.Add(time.Hour).Format(time.RFC3339), "event": "ev-000000000003", "ref": "SIEM-1"}}
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)
	return api, srv.URL
}

// answer writes v as the API does.
func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func refuse(w http.ResponseWriter, status int, field, msg string) {
	answer(w, status, map[string]string{"error": msg, "field": field})
}

func (a *contractAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/decisions", a.listDecisions)
	mux.HandleFunc("GET /v1/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		d := a.decision(r.PathValue("id"))
		if d == nil {
			refuse(w, http.StatusNotFound, "", "no decision "+r.PathValue("id"))
			return
		}
		withTimeline := map[string]any{"timeline": []map[string]any{
			{"at": d["created"], "kind": "event", "detail": "ev-1 tagged 10.1.2.3"},
			{"at": d["created"], "kind": "block", "detail": "blocked for everyone"}}}
		for k, v := range d {
			withTimeline[k] = v
		}
		answer(w, http.StatusOK, withTimeline)
	})
	mux.HandleFunc("DELETE /v1/decisions/{id}", a.liftDecision)
	mux.HandleFunc("POST /v1/blocks", a.postBlock)
	mux.HandleFunc("GET /v1/events", a.listEvents)
	mux.HandleFunc("GET /v1/events/{id}", a.showEvent)
	mux.HandleFunc("GET /v1/allow", func(w http.ResponseWriter, _ *http.Request) { answer(w, http.StatusOK, a.allow) })
	mux.HandleFunc("POST /v1/allow", func(w http.ResponseWriter, r *http.Request) {
		body := a.body(r)
		entry := map[string]any{"value": body["value"], "reason": body["reason"], "actor": "ops", "created": contractNow.Format(time.RFC3339), "lifted": []string{}}
		if u, ok := body["until"].(string); ok {
			entry["until"] = u
			// As the API today: an RFC 3339 time or a Go duration.
			if _, err := time.Parse(time.RFC3339, u); err != nil {
				d, err := time.ParseDuration(u)
				if err != nil {
					refuse(w, http.StatusBadRequest, "until", "not a time or a duration")
					return
				}
				entry["until"] = contractNow.Add(d).Format(time.RFC3339)
			}
		}
		answer(w, http.StatusCreated, entry)
	})
	mux.HandleFunc("DELETE /v1/allow/{value...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("value") != "cdn.example.com" {
			refuse(w, http.StatusNotFound, "", fmt.Sprintf("%q is not a dynamic allowlist entry", r.PathValue("value")))
			return
		}
		answer(w, http.StatusOK, map[string]any{"value": r.PathValue("value"), "removed": true})
	})
	mux.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, _ *http.Request) {
		answer(w, http.StatusOK, map[string]any{"clients": a.clients})
	})
	mux.HandleFunc("DELETE /v1/clients/{ip}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ip") != "10.1.2.3" {
			refuse(w, http.StatusNotFound, "", "client "+r.PathValue("ip")+" is not tagged by an event")
			return
		}
		answer(w, http.StatusOK, map[string]any{"client": "10.1.2.3", "untagged": true})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, r)
		throttled := a.throttle > 0
		a.throttle--
		a.mu.Unlock()
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case throttled:
			w.Header().Set("Retry-After", "0")
			refuse(w, http.StatusTooManyRequests, "", `token "ops" is over its rate limit`)
		case tok != readSecret && tok != operatorSecret:
			refuse(w, http.StatusUnauthorized, "", "a bearer token is required")
		case tok == readSecret && r.Method != http.MethodGet:
			refuse(w, http.StatusForbidden, "", `token "fw" has role read, which may not `+r.Method)
		default:
			a.mu.Lock()
			defer a.mu.Unlock()
			mux.ServeHTTP(w, r)
		}
	})
}

func (a *contractAPI) decision(id string) map[string]any {
	for _, d := range a.decisions {
		if d["id"] == id {
			return d
		}
	}
	return nil
}

// body decodes a POST body and keeps it for the test.
func (a *contractAPI) body(r *http.Request) map[string]any {
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	a.bodies = append(a.bodies, body)
	return body
}

// sent returns the requests made since the n-th, as "METHOD PATH?QUERY".
func (a *contractAPI) sent(n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.requests[n:] {
		out = append(out, r.Method+" "+r.URL.RequestURI())
	}
	return out
}

func (a *contractAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.requests)
}

// sinceParam reads since and until as the API does.
func sinceParam(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, true
	}
	d, err := optval.Duration(v)
	return contractNow.Add(-d), err == nil
}

// page answers one page of items under key, after the cursor.
func page(w http.ResponseWriter, r *http.Request, key string, items []map[string]any, pageMax int) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			refuse(w, http.StatusBadRequest, "limit", "must be 1 to 1000")
			return
		}
		limit = n
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "after-"))
		if err != nil {
			refuse(w, http.StatusBadRequest, "cursor", "not a cursor")
			return
		}
		start = n
	}
	end := min(start+min(limit, pageMax), len(items))
	next := ""
	if end < len(items) {
		next = "after-" + strconv.Itoa(end)
	}
	answer(w, http.StatusOK, map[string]any{key: items[start:end], "next_cursor": next})
}

func (a *contractAPI) listDecisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, f := range []string{"ip", "client"} {
		if v := q.Get(f); v != "" {
			if _, err := netip.ParseAddr(v); err != nil {
				refuse(w, http.StatusBadRequest, f, "not an IP")
				return
			}
		}
	}
	var since, until time.Time
	for f, t := range map[string]*time.Time{"since": &since, "until": &until} {
		if v := q.Get(f); v != "" {
			var ok bool
			if *t, ok = sinceParam(v); !ok {
				refuse(w, http.StatusBadRequest, f, "not a time or a duration")
				return
			}
		}
	}
	list := []map[string]any{}
	for _, d := range a.decisions {
		created, _ := time.Parse(time.RFC3339, d["created"].(string))
		switch {
		case q.Get("ip") != "" && d["ip"] != q.Get("ip"),
			q.Get("client") != "" && !slices.Contains(d["clients"].([]string), q.Get("client")),
			q.Get("factor") != "" && !slices.Contains(d["factors"].([]string), q.Get("factor")),
			q.Get("scope") != "" && d["scope"] != q.Get("scope"),
			q.Get("state") != "" && d["state"] != q.Get("state"),
			!since.IsZero() && created.Before(since),
			!until.IsZero() && !created.Before(until):
			continue
		}
		list = append(list, d)
	}
	page(w, r, "decisions", list, a.pageMax)
}

func (a *contractAPI) liftDecision(w http.ResponseWriter, r *http.Request) {
	d := a.decision(r.PathValue("id"))
	q := r.URL.Query()
	switch {
	case q.Get("reason") == "":
		refuse(w, http.StatusBadRequest, "reason", "is required")
	case d == nil:
		refuse(w, http.StatusNotFound, "", "no decision "+r.PathValue("id"))
	case d["state"] != "active":
		refuse(w, http.StatusConflict, "", fmt.Sprintf("decision %s is %s, not active", d["id"], d["state"]))
	default:
		d["state"], d["remaining_seconds"] = "lifted", 0
		d["lifted"] = map[string]any{"at": contractNow.Format(time.RFC3339), "actor": "ops (on behalf of " + q.Get("on_behalf_of") + ")", "reason": q.Get("reason")}
		answer(w, http.StatusOK, d)
	}
}

func (a *contractAPI) postBlock(w http.ResponseWriter, r *http.Request) {
	body := a.body(r)
	ttl, _ := body["ttl"].(string)
	d, err := time.ParseDuration(ttl)
	switch {
	case err != nil:
		refuse(w, http.StatusBadRequest, "ttl", "not a duration")
		return
	case body["reason"] == nil:
		refuse(w, http.StatusBadRequest, "reason", "is required")
		return
	case body["ip"] == "45.83.9.9" && body["force"] != true:
		refuse(w, http.StatusConflict, "ip", "45.83.9.9 is allowlisted (cdn.example.com); send \"force\": true")
		return
	}
	ip, _ := body["ip"].(string)
	rng, _ := body["range"].(string)
	made := map[string]any{"id": "cip-00000000beef", "ip": ip, "range": rng, "state": "active", "origin": "manual",
		"scope": "everyone", "actor": "ops (on behalf of " + r.URL.Query().Get("on_behalf_of") + ")", "reason": body["reason"],
		"created": contractNow.Format(time.RFC3339), "expires": contractNow.Add(d).Format(time.RFC3339),
		"ttl_seconds": int(d.Seconds()), "remaining_seconds": int(d.Seconds()), "reasons": []string{}, "factors": []string{},
		"clients": []string{}, "events": []string{}, "qnames": []string{}, "hooks": []map[string]any{}, "lifted": nil}
	a.decisions = append([]map[string]any{made}, a.decisions...)
	answer(w, http.StatusCreated, made)
}

// contractEvents are the fake API's events, newest first.
var contractEvents = []map[string]any{
	{"id": "ev-2", "client": "10.1.2.4", "type": "edr.malware", "ref": "SIEM-2 <script>", "at": contractNow.Add(-time.Hour).Format(time.RFC3339),
		"received": contractNow.Add(-time.Hour).Format(time.RFC3339), "by": "siem", "backtracked": 2, "decisions": []string{"cip-000000000002"}},
	{"id": "ev-1", "client": "10.1.2.3", "type": "edr.phishing", "ref": "SIEM-1", "at": contractNow.Add(-48 * time.Hour).Format(time.RFC3339),
		"received": contractNow.Add(-48 * time.Hour).Format(time.RFC3339), "by": "siem", "backtracked": 0, "decisions": []string{}},
}

func (a *contractAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if typ := q.Get("type"); typ != "" && strings.ToLower(typ) != typ {
		refuse(w, http.StatusBadRequest, "type", "must be lower case")
		return
	}
	list := []map[string]any{}
	for _, e := range contractEvents {
		if (q.Get("client") == "" || e["client"] == q.Get("client")) && (q.Get("type") == "" || e["type"] == q.Get("type")) {
			list = append(list, e)
		}
	}
	page(w, r, "events", list, a.pageMax)
}

func (a *contractAPI) showEvent(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != "ev-2" && id != "ev-9e90b43a5dbb" { // and the README's
		refuse(w, http.StatusNotFound, "", "no event "+r.PathValue("id"))
		return
	}
	answer(w, http.StatusOK, map[string]any{
		"id":       "ev-2",
		"event":    map[string]any{"client": "10.1.2.4", "type": "edr.malware", "at": contractNow.Add(-time.Hour).Format(time.RFC3339), "window": "5m0s", "watch": "0s", "ref": "SIEM-2 <script>"},
		"received": contractNow.Add(-time.Hour).Format(time.RFC3339),
		"accepted": map[string]any{"id": "ev-2", "backtracked": 2, "queued": 2, "cached": 0, "dropped": 0},
		"by":       "siem",
		"found": []map[string]any{
			{"ip": "45.83.0.2", "names": []string{"evil.example."}, "ports": []int{443}, "count": 3, "result": "queued", "state": "suspicious",
				"verdict": map[string]any{"outcome": "suspicious", "reasons": []map[string]any{{"factor": "SCORE", "detail": "inbound Critical"}}, "decision": "cip-000000000002"}},
			{"ip": "93.184.216.34", "names": []string{"example.com."}, "count": 1, "result": "queued", "state": "clean",
				"verdict": map[string]any{"outcome": "clean", "reasons": []map[string]any{}, "decision": ""}},
		},
		"decisions": []string{"cip-000000000002"},
	})
}

// cli runs an API command against the fake API with the operator token
// (as $CIP_TOKEN) and $USER alice, and returns its exit status and output.
func (a *contractAPI) cliWith(t *testing.T, base string, cio cliIO, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	cio.stdout, cio.stderr = &out, &errb
	if cio.stdin == nil {
		cio.stdin = strings.NewReader("")
	}
	if cio.getenv == nil {
		cio.getenv = func(k string) string {
			return map[string]string{"CIP_API": base, "CIP_TOKEN": operatorSecret, "USER": "alice"}[k]
		}
	}
	cio.now = func() time.Time { return contractNow }
	groups := map[string]apiGroup{"decisions": decisionsGroup, "events": eventsGroup, "allow": allowGroup, "clients": clientsGroup}
	g, ok := groups[args[0]]
	if !ok {
		t.Fatalf("no command group %q", args[0])
	}
	code := runAPIGroup(context.Background(), g, args[1:], cio)
	return code, out.String(), errb.String()
}

func (a *contractAPI) cli(t *testing.T, base string, args ...string) (int, string, string) {
	t.Helper()
	return a.cliWith(t, base, cliIO{}, args...)
}
