// Package fakeapi is a stand-in for the Criminal IP asset report API
// (GET /v1/asset/ip/report) for tests and demos that cannot reach the real
// service. It replays fixture bodies byte for byte, synthesizes clean reports
// for other IPs, counts calls, and injects faults on demand, either from Go or
// over HTTP through its /_fake/ admin endpoints.
package fakeapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ReportPath is the path of the one API endpoint the fake serves.
const ReportPath = "/v1/asset/ip/report"

const (
	manifestName   = "manifest.json"
	invalidKeyFile = "error_invalid_key.json"
	quotaFile      = "error_quota.json"
)

var (
	builtinInvalidKeyBody = []byte(`{"message":"invalid api key","status":401}`)
	builtinQuotaBody      = []byte(`{"message":"limit exceeded","status":429}`)
	invalidIPBody         = []byte(`{"message":"invalid ip","status":400}`)
	notFoundBody          = []byte(`{"message":"not found","status":404}`)
	methodNotAllowedBody  = []byte(`{"message":"method not allowed","status":405}`)
)

// rawIPPattern finds the IP in a fixture that is not valid JSON (truncated on
// purpose), where decoding cannot.
var rawIPPattern = regexp.MustCompile(`"ip"\s*:\s*"([^"]*)"`)

// Server is a fake Criminal IP API. Create it with Load. The exported fields
// are configuration: set them before the server handles requests. Everything
// else (faults, delay, counters) is safe to use concurrently at any time.
type Server struct {
	// Key, when not empty, is the only x-api-key accepted. When empty, any
	// non-empty key is accepted.
	Key string
	// UnknownNotFound makes IPs without a fixture answer 404 instead of a
	// synthesized clean report.
	UnknownNotFound bool
	// RetryAfter, in seconds, is sent as a Retry-After header with Mode429
	// answers when positive.
	RetryAfter int
	// SlowDelay is how long ModeSlow waits before answering; zero means 5s.
	SlowDelay time.Duration

	byIP           map[string][]byte
	invalidKeyBody []byte
	quotaBody      []byte
	fixtures       int

	mu        sync.Mutex
	calls     int
	callsByIP map[string]int
	sawKey    bool
	faults    []fault
	delay     time.Duration
}

// Load reads every *.json fixture in dir. A fixture is served for the IP that
// dir's manifest.json gives it; fixtures without one there are served for
// their top-level "ip" field, found by a pattern match when the body is not
// valid JSON. error_invalid_key.json and error_quota.json, when present,
// become the bodies of the key and quota answers and faults.
func Load(dir string) (*Server, error) {
	return LoadFS(os.DirFS(dir), dir)
}

// Embedded returns a server for the fixture set compiled into the binary (a
// copy of the shared Criminal IP fixtures), so the demo runs offline with
// nothing beside it.
func Embedded() (*Server, error) {
	sub, err := fs.Sub(embedded, "fixtures")
	if err != nil {
		return nil, err
	}
	return LoadFS(sub, "(embedded fixtures)")
}

//go:embed fixtures/*.json
var embedded embed.FS

// LoadFS is Load for the root of fsys; dir names it in error messages.
func LoadFS(fsys fs.FS, dir string) (*Server, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("fakeapi: reading fixtures in %s: %w", dir, err)
	}
	manifestIPs, err := readManifest(fsys, dir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		byIP:           make(map[string][]byte),
		invalidKeyBody: builtinInvalidKeyBody,
		quotaBody:      builtinQuotaBody,
		callsByIP:      make(map[string]int),
	}
	ipOwner := make(map[string]string)
	loaded := make(map[string]bool)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".json" || name == manifestName {
			continue
		}
		path := filepath.Join(dir, name)
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("fakeapi: reading fixture: %w", err)
		}
		ip, err := fixtureIP(body, manifestIPs[name])
		if err != nil {
			return nil, fmt.Errorf("fakeapi: fixture %s: %w", path, err)
		}
		if ip != "" {
			if other, dup := ipOwner[ip]; dup {
				return nil, fmt.Errorf("fakeapi: fixture %s: IP %s is already served by %s", path, ip, other)
			}
			ipOwner[ip] = name
			s.byIP[ip] = body
		}
		switch name {
		case invalidKeyFile:
			s.invalidKeyBody = body
		case quotaFile:
			s.quotaBody = body
		}
		loaded[name] = true
		s.fixtures++
	}
	for _, name := range slices.Sorted(maps.Keys(manifestIPs)) {
		if !loaded[name] {
			return nil, fmt.Errorf("fakeapi: %s lists %s, which is not a fixture file in %s",
				filepath.Join(dir, manifestName), name, dir)
		}
	}
	if s.fixtures == 0 {
		return nil, fmt.Errorf("fakeapi: no *.json fixtures in %s", dir)
	}
	return s, nil
}

// readManifest returns the IP manifest.json gives each fixture file (nil for
// "ip": null), or nil when dir has no manifest.
func readManifest(fsys fs.FS, dir string) (map[string]*string, error) {
	path := filepath.Join(dir, manifestName)
	raw, err := fs.ReadFile(fsys, manifestName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fakeapi: reading manifest: %w", err)
	}
	var m struct {
		Fixtures map[string]struct {
			IP *string `json:"ip"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("fakeapi: manifest %s: %w", path, err)
	}
	ips := make(map[string]*string, len(m.Fixtures))
	for name, entry := range m.Fixtures {
		ips[name] = entry.IP
	}
	return ips, nil
}

// fixtureIP returns the canonical IP a fixture body is served for, or "" if
// it has none.
func fixtureIP(body []byte, manifestIP *string) (string, error) {
	if manifestIP != nil {
		return canonicalIP(*manifestIP, "manifest.json gives it the ip")
	}
	if !json.Valid(body) {
		m := rawIPPattern.FindSubmatch(body)
		if m == nil {
			return "", nil
		}
		return canonicalIP(string(m[1]), `body is not valid JSON and its "ip"`)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return "", nil // valid JSON but not an object: nothing to serve it for
	}
	raw, ok := top["ip"]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var ip string
	if err := json.Unmarshal(raw, &ip); err != nil {
		return "", fmt.Errorf(`top-level "ip" is %s, not a string`, raw)
	}
	return canonicalIP(ip, `top-level "ip"`)
}

func canonicalIP(ip, what string) (string, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("%s %q, which is not an IP address", what, ip)
	}
	return addr.String(), nil
}

// Serve answers ip with body from now on, as a fixture would: a test's own
// report (say, a shared IP with thousands of domains) without a file in
// the shared fixture set.
func (s *Server) Serve(ip string, body []byte) {
	s.mu.Lock()
	s.byIP[ip] = bytes.Clone(body)
	s.mu.Unlock()
}

// Fixtures reports how many fixture files Load read (manifest.json excluded).
func (s *Server) Fixtures() int { return s.fixtures }

// Calls reports how many GET requests reached the report endpoint since the
// last Reset, whatever their answer, faults included.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// CallsFor reports how many of those requests asked about ip. Any textual
// form of an IP address counts for the same address.
func (s *Server) CallsFor(ip string) int {
	if addr, err := netip.ParseAddr(ip); err == nil {
		ip = addr.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callsByIP[ip]
}

// SawKey reports whether the last report request carried a non-empty
// x-api-key header. The key itself is never kept.
func (s *Server) SawKey() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sawKey
}

// Reset zeroes the counters. Faults and delay are left as they are.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = 0
	s.sawKey = false
	clear(s.callsByIP)
}

// Handler returns the handler for the report endpoint and the admin endpoints:
//
//	GET  /_fake/stats                        {"calls":N,"by_ip":{"IP":n}}
//	POST /_fake/fault?mode=M[&count=N][&retry_after=S][&delay=D]
//	POST /_fake/clear                        clears queued faults
//	POST /_fake/reset                        zeroes the counters
//	POST /_fake/delay?d=D                    as SetDelay
//
// count defaults to 1 (-1: until cleared); retry_after overrides RetryAfter
// for that fault; delay is waited before the fault's answer (for mode=slow it
// replaces SlowDelay). Parameters may also come as a form body.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ReportPath, s.serveReport)
	mux.HandleFunc("GET /_fake/stats", s.serveStats)
	mux.HandleFunc("POST /_fake/fault", s.serveAddFault)
	mux.HandleFunc("POST /_fake/clear", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_fake/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_fake/delay", s.serveSetDelay)
	return mux
}

// Start serves Handler on addr (such as 127.0.0.1:0) until stop is called.
// baseURL carries the real port; for an unspecified host (":0") it names
// 127.0.0.1. stop ends delayed answers, shuts the server down and returns
// the serving error, if any; calling it again returns the same result.
func (s *Server) Start(addr string) (baseURL string, stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("fakeapi: %w", err)
	}
	baseCtx, cancel := context.WithCancel(context.Background())
	var unused connSet
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnState:         unused.track,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			// Cancelling the requests' base context ends delayed and slow
			// answers, which Shutdown would otherwise wait for.
			cancel()
			// Shutdown closes idle connections but waits 5s for one that
			// has not sent a request yet, such as the spare a client's
			// transport dials when its requests race.
			unused.closeAll()
			ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			if err := srv.Shutdown(ctx); err != nil {
				stopErr = fmt.Errorf("fakeapi: graceful shutdown: %w", err)
				srv.Close()
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) && stopErr == nil {
				stopErr = fmt.Errorf("fakeapi: serving: %w", err)
			}
		})
		return stopErr
	}
	return "http://" + reachableAddr(ln.Addr()), stop, nil
}

// connSet holds the server's connections that have not sent a request yet.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// track is an http.Server ConnState hook.
func (cs *connSet) track(c net.Conn, state http.ConnState) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if state != http.StateNew {
		delete(cs.conns, c)
		return
	}
	if cs.conns == nil {
		cs.conns = make(map[net.Conn]bool)
	}
	cs.conns[c] = true
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.conns {
		c.Close()
	}
}

func reachableAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, methodNotAllowedBody)
		return
	}
	key := r.Header.Get("x-api-key")
	rawIP := r.URL.Query().Get("ip")
	ip, ipErr := canonicalIP(rawIP, "ip")
	f, faulted, delay := s.record(ip, key != "")

	// A wait cut short (client gone, or server stopping) must not end in the
	// empty 200 net/http sends for a handler that wrote nothing.
	if !wait(r.Context(), delay) {
		hangUp(w)
		return
	}
	if faulted {
		if !wait(r.Context(), s.faultDelay(f)) {
			hangUp(w)
			return
		}
		if f.mode != ModeSlow {
			s.writeFault(w, r, f, rawIP)
			return
		}
	}

	s.mu.Lock()
	fixture, known := s.byIP[ip]
	s.mu.Unlock()
	switch {
	case key == "" || (s.Key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.Key)) != 1):
		writeJSON(w, http.StatusUnauthorized, s.invalidKeyBody)
	case ipErr != nil:
		writeJSON(w, http.StatusBadRequest, invalidIPBody)
	case known:
		writeJSON(w, http.StatusOK, fixture)
	case s.UnknownNotFound:
		writeJSON(w, http.StatusNotFound, notFoundBody)
	default:
		writeJSON(w, http.StatusOK, cleanReport(ip))
	}
}

// record counts a report request and, under the same lock so that queued
// faults go to requests in arrival order, takes the fault it must suffer and
// the delay in force.
func (s *Server) record(ip string, sawKey bool) (f fault, faulted bool, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if ip != "" {
		s.callsByIP[ip]++
	}
	s.sawKey = sawKey
	if len(s.faults) == 0 {
		return fault{}, false, s.delay
	}
	f = s.faults[0]
	switch {
	case f.remaining == 1:
		s.faults = slices.Delete(s.faults, 0, 1)
	case f.remaining > 1:
		s.faults[0].remaining--
	}
	return f, true, s.delay
}

// wait waits d, or less if ctx ends first; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// emptyBlock is a report section with no records.
type emptyBlock struct {
	Count int        `json:"count"`
	Data  []struct{} `json:"data"`
}

// report has the shape of a Criminal IP asset report, field order included.
type report struct {
	IP     string `json:"ip"`
	Issues struct {
		IsVPN          bool `json:"is_vpn"`
		IsCloud        bool `json:"is_cloud"`
		IsTor          bool `json:"is_tor"`
		IsProxy        bool `json:"is_proxy"`
		IsHosting      bool `json:"is_hosting"`
		IsMobile       bool `json:"is_mobile"`
		IsDarkweb      bool `json:"is_darkweb"`
		IsScanner      bool `json:"is_scanner"`
		IsSnort        bool `json:"is_snort"`
		IsAnonymousVPN bool `json:"is_anonymous_vpn"`
	} `json:"issues"`
	Score struct {
		Inbound  string `json:"inbound"`
		Outbound string `json:"outbound"`
	} `json:"score"`
	UserSearchCount int        `json:"user_search_count"`
	ProtectedIP     emptyBlock `json:"protected_ip"`
	Domain          emptyBlock `json:"domain"`
	Whois           emptyBlock `json:"whois"`
	Hostname        emptyBlock `json:"hostname"`
	IDS             emptyBlock `json:"ids"`
	VPN             emptyBlock `json:"vpn"`
	AnonymousVPN    emptyBlock `json:"anonymous_vpn"`
	Webcam          emptyBlock `json:"webcam"`
	Honeypot        emptyBlock `json:"honeypot"`
	IPCategory      emptyBlock `json:"ip_category"`
	Port            emptyBlock `json:"port"`
	Vulnerability   emptyBlock `json:"vulnerability"`
	Mobile          emptyBlock `json:"mobile"`
	Status          int        `json:"status"`
}

// cleanReport is the body served for an IP without a fixture: nothing found.
func cleanReport(ip string) []byte {
	none := emptyBlock{Data: []struct{}{}}
	r := report{
		IP:          ip,
		ProtectedIP: none, Domain: none, Whois: none, Hostname: none, IDS: none,
		VPN: none, AnonymousVPN: none, Webcam: none, Honeypot: none,
		IPCategory: none, Port: none, Vulnerability: none, Mobile: none,
		Status: http.StatusOK,
	}
	r.Score.Inbound, r.Score.Outbound = "Safe", "Safe"
	body, err := json.Marshal(r)
	if err != nil {
		panic(err) // a fixed struct of strings, ints and bools always marshals
	}
	return body
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	body, err := json.Marshal(struct {
		Calls int            `json:"calls"`
		ByIP  map[string]int `json:"by_ip"`
	}{s.calls, s.callsByIP})
	s.mu.Unlock()
	if err != nil {
		panic(err) // an int and a map of ints always marshal
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) serveAddFault(w http.ResponseWriter, r *http.Request) {
	mode, err := ParseMode(r.FormValue("mode"))
	if err != nil {
		badParameter(w, "mode", err.Error())
		return
	}
	f := fault{mode: mode, remaining: 1}
	if v := r.FormValue("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 || n < -1 {
			badParameter(w, "count", fmt.Sprintf("%q is not a positive integer or -1 (until cleared)", v))
			return
		}
		f.remaining = n
	}
	if v := r.FormValue("retry_after"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			badParameter(w, "retry_after", fmt.Sprintf("%q is not a number of seconds", v))
			return
		}
		f.retryAfter = n
	}
	if v := r.FormValue("delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			badParameter(w, "delay", fmt.Sprintf("%q is not a duration such as 2s or 150ms", v))
			return
		}
		f.delay = d
	}
	s.enqueue(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveSetDelay(w http.ResponseWriter, r *http.Request) {
	v := r.FormValue("d")
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		badParameter(w, "d", fmt.Sprintf("%q is not a duration such as 2s or 150ms", v))
		return
	}
	s.SetDelay(d)
	w.WriteHeader(http.StatusNoContent)
}

func badParameter(w http.ResponseWriter, name, why string) {
	body, err := json.Marshal(struct {
		Message string `json:"message"`
		Status  int    `json:"status"`
	}{"parameter " + name + ": " + why, http.StatusBadRequest})
	if err != nil {
		panic(err) // a string and an int always marshal
	}
	writeJSON(w, http.StatusBadRequest, body)
}
