package adminapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// DefaultMaxBody is the POST body limit when Config.MaxBody is 0: an event is
// a few hundred bytes, so this leaves room without letting a client make the
// server buffer megabytes.
const DefaultMaxBody = 64 << 10

// Server timeouts. Every request is small and answered from memory, so these
// only bound slow or stuck clients; none of them is near a legitimate request.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// Config configures a Server. Backend and Addr are required.
type Config struct {
	// Addr is the listen address, e.g. "127.0.0.1:8053"; port 0 picks one.
	Addr string
	// Tokens are the named bearer tokens, with their roles, that every
	// request but /healthz must carry one of (LoadTokens reads them).
	Tokens []Token
	// Token, if not "", is one more: an operator token named
	// LegacyTokenName (`events ... token_file PATH`). With neither Tokens
	// nor Token authentication is off, which NewServer allows only on a
	// loopback Addr, where only local processes can reach the API.
	Token string
	// Limits bound each token's request rate and each source's failed
	// authentications; zero fields mean the defaults.
	Limits Limits
	// TLS, if not nil, serves HTTPS with it (see LoadTLS) instead of plain
	// HTTP; a MinVersion below TLS 1.2 is raised to it. Client certificates
	// add to the token, they do not replace it: a certificate says which
	// machine connects, the token that its operator may use the API, and a
	// leaked client key alone must not be enough to tag clients.
	TLS *tls.Config
	// MaxBody limits a POST body, in bytes; 0 means DefaultMaxBody.
	MaxBody int64
	// Backend receives events and answers the admin routes.
	Backend Backend
	// Store keeps events for GET /v1/events/{id}; nil means a new Store of
	// DefaultStoreSize.
	Store *Store
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// NewID names an event; nil means "ev-" and 12 random hex digits.
	NewID func() string
	// Logf, if set, receives one line per accepted event or untag and any
	// serving error. It never receives a token.
	Logf func(format string, args ...any)
	// Pace, if set, is the CPU budget event intake shares with the
	// validation workers: a POST /v1/events waits for it once its body is
	// read (a burst of events is spread, the answers wait), and is charged
	// its processing time.
	Pace *pace.Pacer
}

// Server is the event and admin API. Use Handler to mount it elsewhere, or
// Start and Stop to serve it on Config.Addr.
type Server struct {
	cfg     Config
	access  *access
	handler http.Handler

	mu   sync.Mutex
	srv  *http.Server  // nil when not serving
	done chan struct{} // closed when the serving goroutine returns
	addr string        // the bound address after Start
}

// NewServer checks cfg and returns a Server that is not yet listening.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("events: no Backend")
	}
	if cfg.Addr == "" {
		return nil, errors.New("events: no listen address")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("events: listen address %q: %w", cfg.Addr, err)
	}
	toks := cfg.Tokens
	if cfg.Token != "" {
		if toks, err = addLegacyToken(toks, cfg.Token); err != nil {
			return nil, err
		}
	}
	if err := checkTokens(toks); err != nil {
		return nil, err
	}
	if len(toks) == 0 && !isLoopback(host) {
		return nil, fmt.Errorf("events: listen address %q is not loopback, so a token is required (tokens or token_file); without one anyone who reaches it could tag clients", cfg.Addr)
	}
	if cfg.TLS != nil {
		if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil {
			return nil, errors.New("events: TLS without a certificate")
		}
		cfg.TLS = cfg.TLS.Clone() // the caller's Config may change after this
		cfg.TLS.MinVersion = max(cfg.TLS.MinVersion, tls.VersionTLS12)
	}
	if cfg.MaxBody < 0 {
		return nil, fmt.Errorf("events: body limit %d is negative", cfg.MaxBody)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Store == nil {
		cfg.Store = NewStore(0)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	s := &Server{cfg: cfg, access: newAccess(toks, cfg.Limits)}
	if s.handler, err = s.withConsole(s.routes()); err != nil {
		return nil, err
	}
	return s, nil
}

// isLoopback reports whether a listen host is reachable only from this
// machine. Names other than "localhost" are not resolved: what they point at
// can change after the check.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return "ev-" + hex.EncodeToString(b[:])
}

// Handler returns the API's handler, authentication included, with the
// web console at /ui/.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", s.postEvent)
	mux.HandleFunc("GET /v1/events", s.listEvents)
	mux.HandleFunc("GET /v1/events/{id}", s.getEvent)
	mux.HandleFunc("GET /v1/clients", s.getClients)
	mux.HandleFunc("DELETE /v1/clients/{ip}", s.deleteClient)
	mux.HandleFunc("GET /v1/verdicts/{ip}", s.getVerdict)
	s.blockRoutes(mux)
	s.decisionRoutes(mux)
	s.connRoutes(mux)
	s.statusRoutes(mux)
	mux.HandleFunc("GET /healthz", s.healthz)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tok *authToken
		// Liveness probes carry no secrets; everything else does.
		if r.URL.Path != "/healthz" {
			var ok bool
			if tok, ok = s.authenticate(w, r); !ok {
				return
			}
		}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			notRouted(w, r, h)
			return
		}
		if permitted(w, r, tok, pattern) {
			mux.ServeHTTP(w, withCaller(r, tok))
		}
	})
}

// notRouted answers in JSON what ServeMux's handler h would answer in plain
// text: 404, or 405 with the Allow header it computed.
func notRouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status != http.StatusMethodNotAllowed {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no route " + r.URL.Path})
		return
	}
	allow := rec.header.Get("Allow")
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
}

// headerRecorder keeps the status and headers ServeMux's own error handlers
// set and drops their plain-text body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(status int)      { h.status = status }

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// acceptedBody is the 202 answer: the counts and the IPs found.
type acceptedBody struct {
	Accepted
	Found []Found `json:"found"`
}

func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		writeFieldError(w, http.StatusUnsupportedMediaType, err)
		return
	}
	in := s.measureIntake(w)
	defer in.end()
	body, ok := s.readEventBody(w, r)
	if !ok {
		return
	}
	now := s.cfg.Now().Round(0) // no monotonic reading: times are stored, logged and compared across nodes
	if !in.wait(r) {
		return // the client is gone
	}
	defaults := s.cfg.Backend.Defaults()
	if isBatch(body) {
		s.postBatch(w, r, body, defaults, now, in)
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		writeFieldError(w, http.StatusRequestEntityTooLarge, s.tooLarge())
		return
	}
	ev, err := decodeEvent(body, defaults, now)
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	answers, err := s.submitEvents(r, []Event{ev}, defaults, now, in)
	if err != nil {
		writeNotDurable(w, err)
		return
	}
	w.Header().Set("Location", "/v1/events/"+answers[0].ID)
	writeJSON(w, http.StatusAccepted, answers[0])
}

func (s *Server) tooLarge() error {
	return errField("body", "larger than the limit of %d bytes", s.cfg.MaxBody)
}

// readEventBody reads a POST /v1/events body of up to a batch's limit; a
// single event's smaller limit is checked once the body shows which it is.
// It answers the request itself when it returns false.
func (s *Server) readEventBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := s.batchMaxBody()
	tooLarge := errField("body", "larger than the limit of %d bytes (%d for a batch)", s.cfg.MaxBody, limit)
	if r.ContentLength > limit {
		writeFieldError(w, http.StatusRequestEntityTooLarge, tooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			writeFieldError(w, http.StatusRequestEntityTooLarge, tooLarge)
			return nil, false
		}
		writeFieldError(w, http.StatusBadRequest, errField("body", "could not be read: %v", err))
		return nil, false
	}
	return body, true
}

// submitEvents hands evs to the Backend inside one Durably, so a batch is
// one write to disk, then stores and logs each. An error means the events
// were taken in memory but are not on disk. The time Durably waits for
// the disk is taken off in's charge.
func (s *Server) submitEvents(r *http.Request, evs []Event, defaults Defaults, now time.Time, in *intake) ([]acceptedBody, error) {
	answers := make([]acceptedBody, len(evs))
	ids := make([]string, len(evs))
	for i := range ids {
		ids[i] = s.cfg.NewID()
	}
	var submitting time.Duration
	start := in.clock()
	err := s.durably(func() {
		t := in.clock()
		for i, ev := range evs {
			answers[i].Accepted, answers[i].Found = s.cfg.Backend.Submit(ev, ids[i])
		}
		submitting = in.clock().Sub(t)
		in.waiting() // for the disk
	})
	in.computing()
	in.notProcessing(in.clock().Sub(start) - submitting)
	if err != nil {
		return nil, err
	}
	by := actorOf(r, "")
	for i, ev := range evs {
		a := &answers[i]
		a.ID = ids[i] // whatever Submit said
		a.Covered, a.Warning = coverage(ev, defaults.MaxWindow, now)
		a.LabelsDropped = ev.LabelsDropped
		if a.Found == nil {
			a.Found = []Found{} // "found": [] rather than null
		}
		s.cfg.Store.Add(Record{ID: a.ID, Event: ev, Received: now, Accepted: a.Accepted, Found: a.Found, By: by})
		s.cfg.Logf("events: %s: client %s type %s ref %q by %s: backtracked %d, queued %d, cached %d, dropped %d",
			a.ID, ev.Client, ev.Type, ev.Ref, by, a.Backtracked, a.Queued, a.Cached, a.Dropped)
		if a.Warning != "" {
			s.cfg.Logf("events: %s: warning: %s", a.ID, a.Warning)
		}
	}
	return answers, nil
}

// checkJSONContentType accepts application/json with no charset or UTF-8,
// the only encoding JSON has (RFC 8259).
func checkJSONContentType(ct string) error {
	bad := errField("Content-Type", "must be application/json, got %q", ct)
	if ct == "" {
		return bad
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil || mediaType != "application/json" {
		return bad
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errField("Content-Type", "charset must be utf-8, got %q", cs)
	}
	return nil
}

// foundWithVerdict is a found IP in GET /v1/events/{id}, with the verdict
// the Backend holds now, which may be newer than the event, and the state
// of its validation now.
type foundWithVerdict struct {
	Found
	State   string            `json:"state"`
	Verdict *verdicts.Verdict `json:"verdict"`
}

// StateBackend is the part of a Backend that follows validations: it
// gives the state of an IP an event found (validating, retrying (n),
// error: gave up, clean, suspicious, …). Without it, the state is the
// verdict's outcome, or validating while there is none.
type StateBackend interface {
	ValidationState(ip netip.Addr) string
}

// foundState is f's state now; v is its verdict, if any.
func (s *Server) foundState(f Found, v *verdicts.Verdict) string {
	if f.Result == "skipped" {
		return "skipped"
	}
	if sb, ok := s.cfg.Backend.(StateBackend); ok {
		return sb.ValidationState(f.IP)
	}
	if v != nil {
		return string(v.Outcome)
	}
	return "validating"
}

type recordBody struct {
	ID       string             `json:"id"`
	Event    Event              `json:"event"`
	Received time.Time          `json:"received"`
	Accepted Accepted           `json:"accepted"`
	Found    []foundWithVerdict `json:"found"`
	// Decisions are the block decisions the event led to.
	Decisions []string                   `json:"decisions"`
	By        string                     `json:"by,omitempty"`
	Fleet     map[string]json.RawMessage `json:"fleet,omitempty"` // node -> what it found, in a fleet
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, ok := s.cfg.Store.Get(id)
	if tok := callerOf(r); tok != nil && tok.Role == RoleEvents && (!ok || rec.By != tok.Name) {
		// Neither another client's event nor the fleet's reports.
		writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("token %q has role events, which reads only the events it posted to this node", tok.Name)})
		return
	}
	var fleet map[string]json.RawMessage
	if rb, isFleet := s.cfg.Backend.(ReportBackend); isFleet {
		fleet = rb.Reports(id)
	}
	if !ok {
		if len(fleet) == 0 {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no event " + id})
			return
		}
		// Posted to another node of the fleet: what every node found.
		writeJSON(w, http.StatusOK, struct {
			ID    string                     `json:"id"`
			Fleet map[string]json.RawMessage `json:"fleet"`
		}{id, fleet})
		return
	}
	body := recordBody{ID: rec.ID, Event: rec.Event, Received: rec.Received, Accepted: rec.Accepted,
		Found: make([]foundWithVerdict, len(rec.Found))}
	for i, f := range rec.Found {
		body.Found[i].Found = f
		if v, ok := s.cfg.Backend.Verdict(f.IP); ok {
			body.Found[i].Verdict = &v
		}
		body.Found[i].State = s.foundState(f, body.Found[i].Verdict)
	}
	body.By, body.Fleet, body.Decisions = rec.By, fleet, s.eventDecisions(id)
	writeJSON(w, http.StatusOK, body)
}

// ReportBackend is the part of a Backend in a fleet: it returns what each
// node found for an event (node -> JSON-able report), whichever node it
// was posted to.
type ReportBackend interface {
	Reports(eventID string) map[string]json.RawMessage
}

func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) {
	ip, err := parseIP("ip", r.PathValue("ip"))
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	actor, ok := requestActor(w, r)
	if !ok {
		return
	}
	var untagged bool
	err = s.durably(func() { untagged = s.cfg.Backend.Untag(ip) })
	if !untagged {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("client %s is not tagged by an event", ip)})
		return
	}
	if err != nil {
		writeNotDurable(w, err)
		return
	}
	s.cfg.Logf("events: client %s untagged by %s", ip, actor)
	writeJSON(w, http.StatusOK, struct {
		Client   netip.Addr `json:"client"`
		Untagged bool       `json:"untagged"`
	}{ip, true})
}

func (s *Server) getVerdict(w http.ResponseWriter, r *http.Request) {
	ip, err := parseIP("ip", r.PathValue("ip"))
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	v, ok := s.cfg.Backend.Verdict(ip)
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no verdict for %s", ip)})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeFieldError(w http.ResponseWriter, status int, err error) {
	body := errorBody{Error: err.Error()}
	if fe := (*fieldError)(nil); errors.As(err, &fe) {
		body.Field = fe.Field
	}
	writeJSON(w, status, body)
}

// writeJSON encodes before writing the status, so a value the Backend made
// that cannot be encoded becomes a 500 rather than half a 200.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(errorBody{Error: "cannot encode the answer: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1)) // an answer flushed by its handler is not chunked
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// Start listens on Config.Addr and serves in a goroutine. It fails at once
// if the address cannot be bound, so a Corefile with a taken port fails at
// startup, not silently later.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("events: already serving on %s", s.addr)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(logfWriter(s.cfg.Logf), "events: ", 0),
		TLSConfig:         s.cfg.TLS,
	}
	serve := srv.Serve
	if s.cfg.TLS != nil {
		// ServeTLS takes the certificate from TLSConfig when given no files.
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logf("events: serving on %s stopped: %v", ln.Addr(), err)
		}
	}()
	s.srv, s.done, s.addr = srv, done, ln.Addr().String()
	return nil
}

// logfWriter sends net/http's own error lines (bad TLS, accept errors) to
// Config.Logf.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Addr returns the address the server listens on after Start, with the real
// port when Config.Addr asked for port 0; before Start, Config.Addr.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == "" {
		return s.cfg.Addr
	}
	return s.addr
}

// Stop closes the listener and waits for requests in progress to finish or
// ctx to end, then closes every connection. It returns once the serving
// goroutine has exited; a handler still running in the Backend when ctx ends
// is the one thing it cannot stop. Stop without Start, or twice, does
// nothing. The Server may be started again afterwards.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv, s.done = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("events: shutdown: %w", err)
	}
	<-done
	return err
}
