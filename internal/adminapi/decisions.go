package adminapi

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// DecisionBackend is the part of a Backend that keeps the history of
// block decisions. A Backend that implements it gets the routes:
//
//	GET    /v1/decisions           the history, newest first, filtered and paged
//	GET    /v1/decisions/{id}      one decision with its timeline
//	DELETE /v1/decisions/{id}      lift it everywhere (?reason= required, ?on_behalf_of=)
//	POST   /v1/blocks              an operator's block {"ip","ttl","reason","scope","force"}
//
// and the decisions each event led to in GET /v1/events and
// GET /v1/events/{id}.
type DecisionBackend interface {
	// Decisions returns up to limit decisions that f matches, newest
	// first, starting after cursor (zero: the newest), and the cursor of
	// the next page (zero: no more).
	Decisions(f DecisionFilter, after Cursor, limit int) ([]Decision, Cursor)
	// Decision returns one decision, found by its id (or the id it was
	// widened under), with its timeline.
	Decision(id string) (DecisionDetail, bool)
	// LiftDecision lifts an active decision by id like an unblock of its
	// IP; errors wrap ErrUnknownDecision or ErrConflict.
	LiftDecision(id, actor, why string) (Decision, error)
	// Block makes an operator's block; errors wrap ErrConflict (the IP is
	// allowlisted, the control plane or blocked already) or are field
	// errors (BadField).
	Block(req BlockRequest) (Decision, error)
	// EventDecisions lists the decisions an event led to.
	EventDecisions(eventID string) []string
}

// Errors of a DecisionBackend.
var (
	ErrUnknownDecision = errors.New("no such decision")
	// ErrConflict: the state of what a change is about forbids it (409).
	ErrConflict = errors.New("conflict")
)

// BadField returns an error that answers 400 naming field.
func BadField(field, format string, args ...any) error { return errField(field, format, args...) }

// Decision is one block decision as the API, the CLI and the console
// show it; see the README's Event API section for every field.
type Decision struct {
	ID               string         `json:"id"`
	IP               string         `json:"ip"`
	Range            string         `json:"range"`
	State            string         `json:"state"`  // active, expired or lifted
	Origin           string         `json:"origin"` // engine, fleet or manual
	Scope            string         `json:"scope"`
	Port             uint16         `json:"port"`
	Narrowed         string         `json:"narrowed"`
	Monitor          bool           `json:"monitor"`
	Reasons          []string       `json:"reasons"`
	Factors          []string       `json:"factors"`
	Evidence         Evidence       `json:"evidence"`
	Clients          []string       `json:"clients"`
	Events           []string       `json:"events"`
	Qnames           []string       `json:"qnames"`
	Rewrites         uint64         `json:"rewrites"`
	Created          time.Time      `json:"created"`
	Expires          time.Time      `json:"expires"`
	TTLSeconds       int64          `json:"ttl_seconds"`
	RemainingSeconds int64          `json:"remaining_seconds"`
	Repeat           int            `json:"repeat"`
	Actor            string         `json:"actor"`
	Reason           string         `json:"reason"`
	Hooks            []HookDelivery `json:"hooks"`
	Lifted           *Lifted        `json:"lifted"`
}

// The states, origins and scopes of a Decision.
const (
	StateActive  = "active"
	StateExpired = "expired"
	StateLifted  = "lifted"

	OriginEngine = "engine"
	OriginFleet  = "fleet"
	OriginManual = "manual"

	ScopeEveryone = "everyone"
	ScopeTagged   = "tagged"
)

// Evidence is the excerpt of the report behind a decision.
type Evidence struct {
	ScoreInbound  string   `json:"score_inbound"`
	ScoreOutbound string   `json:"score_outbound"`
	Ports         []int    `json:"ports"`
	Tags          []string `json:"tags"`
}

// HookDelivery is what became of a decision's last change in one hook.
type HookDelivery struct {
	Hook        string     `json:"hook"`
	Action      string     `json:"action"` // block or unblock
	State       string     `json:"state"`  // pending, delivered or failed (still retried)
	DeliveredAt *time.Time `json:"delivered_at"`
	Attempts    int        `json:"attempts"`
	Error       string     `json:"error"`
}

// Lifted says who lifted a decision, when and why.
type Lifted struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
}

// DecisionDetail is a Decision with its timeline, oldest first.
type DecisionDetail struct {
	Decision
	Timeline []TimelineEntry `json:"timeline"`
}

// TimelineEntry is one step of a decision's life: kind event, verdict,
// block, rewrite, hook, lift or expire.
type TimelineEntry struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

// DecisionFilter selects decisions; zero fields select all.
type DecisionFilter struct {
	IP, Client   netip.Addr
	Factors      []risk.Factor // any of them among its reasons
	Scope, State string
	Since, Until time.Time // its creation
}

// BlockRequest is a checked POST /v1/blocks body.
type BlockRequest struct {
	IP     netip.Addr
	Range  netip.Prefix // a range block's CIDR, instead of IP
	TTL    time.Duration
	Reason string
	Scope  string // everyone
	Force  bool   // block an allowlisted IP all the same
	Actor  string // the token's name (on behalf of whom): actorOf
}

// MaxBlockTTL is the longest manual block, the bound of block_ttl.
const MaxBlockTTL = 366 * 24 * time.Hour

// Cursor is where a page of a list ends: the time and id of its last
// item. The zero Cursor is the start.
type Cursor struct {
	At time.Time
	ID string
}

// IsZero reports whether c is the start (or, as a next cursor, the end).
func (c Cursor) IsZero() bool { return c.At.IsZero() && c.ID == "" }

// Before reports whether an item at (at, id) comes after c in a list
// sorted newest first (by time, then by id, descending).
func (c Cursor) Before(at time.Time, id string) bool {
	if c.IsZero() {
		return true
	}
	if !at.Equal(c.At) {
		return at.Before(c.At)
	}
	return id < c.ID
}

// String is the cursor as the API gives it: opaque to clients.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixNano(), 10) + ":" + c.ID))
}

func parseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	bad := errField("cursor", "%q is not a cursor this server gave", s)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	ns, id, ok := strings.Cut(string(raw), ":")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return Cursor{}, bad
	}
	return Cursor{At: time.Unix(0, n).UTC(), ID: id}, nil
}

// Page bounds.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// page reads ?limit= and ?cursor=.
func page(q map[string][]string) (Cursor, int, error) {
	limit := DefaultLimit
	if v := first(q, "limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return Cursor{}, 0, errField("limit", "%q is not a whole number from 1 to %d", v, MaxLimit)
		}
		limit = n
	}
	c, err := parseCursor(first(q, "cursor"))
	return c, limit, err
}

func first(q map[string][]string, key string) string {
	if v := q[key]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// parseSince reads a time filter: RFC 3339, or a duration back from now
// such as 24h or 7d.
func parseSince(field, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := optval.Duration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errField(field, "%q is neither an RFC 3339 time nor a duration back from now such as 24h or 7d", s)
}

// parseDecisionFilter reads the query of GET /v1/decisions.
func parseDecisionFilter(q map[string][]string, now time.Time) (DecisionFilter, error) {
	var f DecisionFilter
	var err error
	for _, p := range []struct {
		name string
		dst  *netip.Addr
	}{{"ip", &f.IP}, {"client", &f.Client}} {
		if v := first(q, p.name); v != "" {
			if *p.dst, err = parseIP(p.name, v); err != nil {
				return f, err
			}
		}
	}
	if v := first(q, "factor"); v != "" {
		if f.Factors, err = risk.FactorsNamed(v); err != nil {
			return f, errField("factor", "%v", err)
		}
	}
	if f.Scope = first(q, "scope"); f.Scope != "" && f.Scope != ScopeEveryone && f.Scope != ScopeTagged {
		return f, errField("scope", "%q is neither everyone nor tagged", f.Scope)
	}
	switch f.State = first(q, "state"); f.State {
	case "", StateActive, StateExpired, StateLifted:
	default:
		return f, errField("state", "%q is not active, expired or lifted", f.State)
	}
	if f.Since, err = parseSince("since", first(q, "since"), now); err != nil {
		return f, err
	}
	f.Until, err = parseSince("until", first(q, "until"), now)
	return f, err
}

// decisionList is the answer to GET /v1/decisions.
type decisionList struct {
	Decisions  []Decision `json:"decisions"`
	NextCursor string     `json:"next_cursor"`
}

func (s *Server) decisionRoutes(mux *http.ServeMux) {
	db, ok := s.cfg.Backend.(DecisionBackend)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, err := parseDecisionFilter(q, s.cfg.Now())
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, err)
			return
		}
		after, limit, err := page(q)
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, err)
			return
		}
		list, next := db.Decisions(f, after, limit)
		if list == nil {
			list = []Decision{}
		}
		writeJSON(w, http.StatusOK, decisionList{Decisions: list, NextCursor: next.String()})
	})
	mux.HandleFunc("GET /v1/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, ok := db.Decision(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no decision " + textsafe.Clean(r.PathValue("id"))})
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("DELETE /v1/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.liftDecision(w, r, db)
	})
	mux.HandleFunc("POST /v1/blocks", func(w http.ResponseWriter, r *http.Request) {
		s.postBlock(w, r, db)
	})
}

func (s *Server) liftDecision(w http.ResponseWriter, r *http.Request, db DecisionBackend) {
	id := r.PathValue("id")
	why := textsafe.Clean(strings.TrimSpace(r.URL.Query().Get("reason")))
	switch {
	case why == "":
		writeFieldError(w, http.StatusBadRequest, errField("reason", "required: why the decision is lifted"))
		return
	case len(why) > MaxRefLength*2:
		writeFieldError(w, http.StatusBadRequest, errField("reason", "longer than %d characters", MaxRefLength*2))
		return
	}
	actor, ok := requestActor(w, r)
	if !ok {
		return
	}
	var d Decision
	var liftErr error
	err := s.durably(func() { d, liftErr = db.LiftDecision(id, actor, why) })
	if liftErr != nil {
		writeChangeError(w, liftErr)
		return
	}
	if err != nil {
		writeNotDurable(w, err)
		return
	}
	s.cfg.Logf("events: decision %s (%s) lifted by %q (%q)", d.ID, cmp.Or(d.Range, d.IP), actor, why)
	writeJSON(w, http.StatusOK, d)
}

// writeChangeError answers a change the Backend refused.
func writeChangeError(w http.ResponseWriter, err error) {
	switch fe := (*fieldError)(nil); {
	case errors.Is(err, ErrUnknownDecision):
		writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case errors.Is(err, ErrConflict):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	case errors.As(err, &fe):
		writeFieldError(w, http.StatusBadRequest, err)
	default:
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
	}
}

func (s *Server) postBlock(w http.ResponseWriter, r *http.Request, db DecisionBackend) {
	body, ok := s.readJSONBody(w, r)
	if !ok {
		return
	}
	req, err := decodeBlock(body)
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	if req.Actor == "" {
		if req.Actor, ok = requestActor(w, r); !ok {
			return
		}
	} else {
		req.Actor = actorOf(r, req.Actor)
	}
	var d Decision
	var blockErr error
	durableErr := s.durably(func() { d, blockErr = db.Block(req) })
	if blockErr != nil {
		writeChangeError(w, blockErr)
		return
	}
	if durableErr != nil {
		writeNotDurable(w, durableErr)
		return
	}
	s.cfg.Logf("events: %s blocked by %q for %s as %s (%q)", cmp.Or(d.Range, d.IP), req.Actor, ShortDuration(req.TTL), d.ID, req.Reason)
	w.Header().Set("Location", "/v1/decisions/"+d.ID)
	writeJSON(w, http.StatusCreated, d)
}

type blockBody struct {
	IP     json.RawMessage `json:"ip"`
	Range  json.RawMessage `json:"range"`
	TTL    json.RawMessage `json:"ttl"`
	Reason json.RawMessage `json:"reason"`
	Scope  json.RawMessage `json:"scope"`
	Force  json.RawMessage `json:"force"`
	Behalf json.RawMessage `json:"on_behalf_of"`
}

// decodeBlock checks a POST /v1/blocks body.
func decodeBlock(body []byte) (BlockRequest, error) {
	var raw blockBody
	var req BlockRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return req, errField(strings.Trim(name, `"`), "unknown field; the fields are ip, range, ttl, reason, scope, force, on_behalf_of")
		}
		return req, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errField("body", "unexpected data after the JSON object")
	}
	switch {
	case !absent(raw.Range) && !absent(raw.IP):
		return req, errField("range", "give ip or range, not both")
	case !absent(raw.Range):
		s, err := parseString("range", raw.Range)
		if err != nil {
			return req, err
		}
		if req.Range, err = netip.ParsePrefix(s); err != nil {
			return req, errField("range", "%q is not a CIDR such as 45.83.0.0/24", s)
		}
		if req.Range, err = blocks.CheckRange(req.Range); err != nil {
			return req, errField("range", "%v", err)
		}
	case absent(raw.IP):
		return req, errField("ip", "required: the IP (or \"range\": the CIDR) to block")
	default:
		s, err := parseString("ip", raw.IP)
		if err != nil {
			return req, err
		}
		if req.IP, err = parseIP("ip", s); err != nil {
			return req, err
		}
	}
	var s string
	var err error
	if absent(raw.TTL) {
		return req, errField("ttl", "required: how long the block lasts, such as 24h or 7d")
	}
	if s, err = parseString("ttl", raw.TTL); err != nil {
		return req, err
	}
	if req.TTL, err = optval.DurationUpTo(s, MaxBlockTTL); err != nil {
		return req, errField("ttl", "%v", err)
	}
	if !absent(raw.Reason) {
		if req.Reason, err = parseString("reason", raw.Reason); err != nil {
			return req, err
		}
	}
	if req.Reason = textsafe.Clean(strings.TrimSpace(req.Reason)); req.Reason == "" {
		return req, errField("reason", "required: why the IP is blocked")
	} else if len(req.Reason) > 512 {
		return req, errField("reason", "longer than 512 characters")
	}
	req.Scope = ScopeEveryone
	if !absent(raw.Scope) {
		if req.Scope, err = parseString("scope", raw.Scope); err != nil {
			return req, err
		}
		if req.Scope != ScopeEveryone {
			return req, errField("scope", "%q: a manual block reaches everyone (a tagged block needs the clients a finding names)", req.Scope)
		}
	}
	if !absent(raw.Force) {
		if err := json.Unmarshal(raw.Force, &req.Force); err != nil {
			return req, errField("force", "must be true or false, got %s", raw.Force)
		}
	}
	if !absent(raw.Behalf) {
		if req.Actor, err = parseString("on_behalf_of", raw.Behalf); err != nil {
			return req, err
		}
		if req.Actor, err = checkOnBehalfOf("on_behalf_of", req.Actor); err != nil {
			return req, err
		}
	}
	return req, nil
}

// DecisionState is a decision's state at now, given the state recorded
// and its expiry: an active decision past its expiry is expired, even
// before the sweeper has lifted it.
func DecisionState(recorded string, expires, now time.Time) string {
	if recorded == StateActive && !now.Before(expires) {
		return StateExpired
	}
	return recorded
}

// Seconds is d in whole seconds, never negative.
func Seconds(d time.Duration) int64 { return max(int64(d/time.Second), 0) }
