package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stubAPI answers the issue-14 contract from canned data, checks the
// bearer token and the role of every request as the admin API does, and
// records the changes asked of it.
type stubAPI struct {
	mu        sync.Mutex
	tokens    map[string]Identity // secret -> who
	decisions []Decision          // newest first
	events    []EventSummary
	details   map[string]json.RawMessage // GET /v1/events/{id}
	clients   []Client
	status    map[string]any // GET /v1/status; nil: the route is absent, as in an older API
	calls     []stubCall
	mux       *http.ServeMux
}

// stubCall is a change the stub was asked for, with the token's name.
type stubCall struct {
	Method, Path, Reason, Token string
	Body                        map[string]string
}

const (
	readSecret     = "read-secret-0123456789"
	operatorSecret = "operator-secret-0123456789"
	eventsSecret   = "events-secret-0123456789"
)

var stubNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newStub() *stubAPI {
	s := &stubAPI{
		tokens: map[string]Identity{
			readSecret:     {"dashboard", "read"},
			operatorSecret: {"alice", "operator"},
			eventsSecret:   {"edr", "events"},
		},
		details: map[string]json.RawMessage{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/decisions", s.listDecisions)
	mux.HandleFunc("GET /v1/decisions/{id}", s.getDecision)
	mux.HandleFunc("DELETE /v1/decisions/{id}", s.liftDecision)
	mux.HandleFunc("GET /v1/events", s.listEvents)
	mux.HandleFunc("GET /v1/events/{id}", s.getEvent)
	mux.HandleFunc("GET /v1/clients", s.listClients)
	mux.HandleFunc("DELETE /v1/clients/{ip}", s.untag)
	mux.HandleFunc("POST /v1/allow", s.allow)
	mux.HandleFunc("GET /v1/status", s.getStatus)
	s.mux = mux
	return s
}

// decision makes a canned active decision n.
func decisionN(n int) Decision {
	created := stubNow.Add(-time.Duration(n) * time.Minute)
	return Decision{
		ID: fmt.Sprintf("cip-%012x", n), IP: fmt.Sprintf("45.83.%d.%d", n/250, n%250+1), State: "active",
		Origin: "engine", Scope: "everyone", Reasons: []string{"SCORE: inbound Critical, outbound Critical"},
		Factors: []string{"score"}, Clients: []string{"10.1.2.3"}, Events: []string{"ev-9e90b43a5dbb"},
		Qnames: []string{fmt.Sprintf("bad%d.example.", n)}, Rewrites: 3, Created: created,
		Expires: created.Add(24 * time.Hour), TTLSeconds: 86400, RemainingSeconds: 86400 - int64(n)*60,
		Actor: "engine", Hooks: []Delivery{{Hook: "nftables", State: "delivered", DeliveredAt: created, Attempts: 1}},
		Timeline: []TimeRecord{
			{At: created.Add(-time.Minute), Kind: "event", Detail: "ev-9e90b43a5dbb edr.malware from 10.1.2.3"},
			{At: created, Kind: "verdict", Detail: "suspicious: SCORE: inbound Critical"},
			{At: created, Kind: "block", Detail: "everyone for 24h"},
		},
	}
}

func (s *stubAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		_, _ = io.WriteString(w, "ok")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	who, ok := s.tokens[secret]
	if !ok {
		stubJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid bearer token"})
		return
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.URL.Path})
		return
	}
	need := "operator"
	if r.Method == http.MethodGet {
		need = "read"
	}
	if who.Role != "operator" && who.Role != need {
		stubJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("token %q has role %s; %s %s needs %s", who.Name, who.Role, r.Method, r.URL.Path, need)})
		return
	}
	r.Header.Set("X-Stub-Token", who.Name)
	s.mux.ServeHTTP(w, r)
}

func stubJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// cut cuts list at ?cursor= (an index) and ?limit=.
func cut[T any](w http.ResponseWriter, r *http.Request, list []T) ([]T, string, bool) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			stubJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: must be 1 to 1000", "field": "limit"})
			return nil, "", false
		}
		limit = n
	}
	from, _ := strconv.Atoi(q.Get("cursor"))
	from = min(from, len(list))
	to := min(from+limit, len(list))
	next := ""
	if to < len(list) {
		next = strconv.Itoa(to)
	}
	return list[from:to], next, true
}

func (s *stubAPI) listDecisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if st := q.Get("state"); st != "" && !slices.Contains([]string{"active", "expired", "lifted"}, st) {
		stubJSON(w, http.StatusBadRequest, map[string]string{"error": "state: must be active, expired or lifted", "field": "state"})
		return
	}
	var list []*Decision
	for i := range s.decisions {
		d := &s.decisions[i]
		if (q.Get("state") == "" || d.State == q.Get("state")) && (q.Get("scope") == "" || d.Scope == q.Get("scope")) &&
			(q.Get("ip") == "" || d.IP == q.Get("ip")) && (q.Get("client") == "" || slices.Contains(d.Clients, q.Get("client"))) {
			list = append(list, d)
		}
	}
	got, next, ok := cut(w, r, list)
	if !ok {
		return
	}
	out := make([]Decision, len(got))
	for i, d := range got {
		out[i] = *d
		out[i].Timeline = nil // only GET /v1/decisions/{id} has it
	}
	stubJSON(w, http.StatusOK, map[string]any{"decisions": out, "next_cursor": next})
}

func (s *stubAPI) find(id string) int {
	return slices.IndexFunc(s.decisions, func(d Decision) bool { return d.ID == id })
}

func (s *stubAPI) getDecision(w http.ResponseWriter, r *http.Request) {
	i := s.find(r.PathValue("id"))
	if i < 0 {
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "no decision " + r.PathValue("id")})
		return
	}
	stubJSON(w, http.StatusOK, s.decisions[i])
}

func (s *stubAPI) liftDecision(w http.ResponseWriter, r *http.Request) {
	id, reason := r.PathValue("id"), r.URL.Query().Get("reason")
	s.calls = append(s.calls, stubCall{Method: r.Method, Path: r.URL.Path, Reason: reason, Token: r.Header.Get("X-Stub-Token")})
	i := s.find(id)
	switch {
	case reason == "":
		stubJSON(w, http.StatusBadRequest, map[string]string{"error": "reason: required", "field": "reason"})
	case i < 0:
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "no decision " + id})
	case s.decisions[i].State != "active":
		stubJSON(w, http.StatusConflict, map[string]string{"error": "decision " + id + " is " + s.decisions[i].State})
	default:
		d := &s.decisions[i]
		d.State, d.RemainingSeconds = "lifted", 0
		d.Lifted = &Lift{At: stubNow, Actor: r.Header.Get("X-Stub-Token"), Reason: reason}
		d.Timeline = append(d.Timeline, TimeRecord{At: stubNow, Kind: "lift", Detail: "by " + d.Lifted.Actor + ": " + reason})
		stubJSON(w, http.StatusOK, d)
	}
}

func (s *stubAPI) listEvents(w http.ResponseWriter, r *http.Request) {
	got, next, ok := cut(w, r, s.events)
	if ok {
		stubJSON(w, http.StatusOK, map[string]any{"events": append([]EventSummary{}, got...), "next_cursor": next})
	}
}

func (s *stubAPI) getEvent(w http.ResponseWriter, r *http.Request) {
	body, ok := s.details[r.PathValue("id")]
	if !ok {
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "no event " + r.PathValue("id")})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *stubAPI) listClients(w http.ResponseWriter, _ *http.Request) {
	stubJSON(w, http.StatusOK, map[string]any{"clients": append([]Client{}, s.clients...)})
}

func (s *stubAPI) untag(w http.ResponseWriter, r *http.Request) {
	s.calls = append(s.calls, stubCall{Method: r.Method, Path: r.URL.Path, Token: r.Header.Get("X-Stub-Token")})
	i := slices.IndexFunc(s.clients, func(c Client) bool { return c.Client == r.PathValue("ip") })
	if i < 0 {
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "client " + r.PathValue("ip") + " is not tagged by an event"})
		return
	}
	s.clients = slices.Delete(s.clients, i, i+1)
	stubJSON(w, http.StatusOK, map[string]any{"client": r.PathValue("ip"), "untagged": true})
}

func (s *stubAPI) getStatus(w http.ResponseWriter, r *http.Request) {
	if s.status == nil {
		stubJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.URL.Path})
		return
	}
	stubJSON(w, http.StatusOK, s.status)
}

func (s *stubAPI) allow(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
		stubJSON(w, http.StatusBadRequest, map[string]string{"error": "body: malformed", "field": "body"})
		return
	}
	s.calls = append(s.calls, stubCall{Method: r.Method, Path: r.URL.Path, Reason: body["reason"], Token: r.Header.Get("X-Stub-Token"), Body: body})
	stubJSON(w, http.StatusCreated, map[string]any{"value": body["value"], "lifted": []string{"45.83.0.1"}})
}

// changes returns the changes the stub was asked for so far.
func (s *stubAPI) changes() []stubCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *stubAPI) identify(secret string) (Identity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	who, ok := s.tokens[secret]
	return who, ok
}
