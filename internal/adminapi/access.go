package adminapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// Default request limits (Config.Limits). The token burst lets an event
// storm through (an outbreak makes an EDR post a thousand events at once,
// and an event refused is an event lost to the many senders that do not
// retry), the rate bounds a stolen token or a runaway script; a person, a
// dashboard or a firewall polling the EDL stays far below both. The
// failure limit bounds guessing: 20 tries at once, then one a second, per
// source address, against tokens of 128 bits and more.
const (
	DefaultTokenRate  = 200.0
	DefaultTokenBurst = 1000
	DefaultFailRate   = 1.0
	DefaultFailBurst  = 20
)

// maxSources bounds the source addresses whose failures are remembered;
// past it the least recently failing is forgotten.
const maxSources = 10_000

// Limits bound the request rate of each token and the failed
// authentications of each source address (an IPv4 address, an IPv6 /64).
// Past a limit the API answers 429 with Retry-After. Zero fields mean the
// defaults. Without tokens (a loopback API without authentication) nothing
// is limited.
type Limits struct {
	// TokenRate is a token's requests a second and TokenBurst how many it
	// may send at once, unless its line in the tokens file sets its own.
	TokenRate  float64
	TokenBurst int
	// FailRate and FailBurst bound the requests with a missing or wrong
	// token from one source. Once they are spent, every request from the
	// source gets 429 until the bucket refills, a right token included:
	// checking it would be answering the guess.
	FailRate  float64
	FailBurst int
	// Clock is the limits' clock; nil means time.Now. It is not
	// Config.Now: a rate is one of real requests, whatever time the events
	// are given.
	Clock func() time.Time
}

func (l Limits) withDefaults() Limits {
	if l.TokenRate <= 0 {
		l.TokenRate = DefaultTokenRate
	}
	if l.TokenBurst <= 0 {
		l.TokenBurst = DefaultTokenBurst
	}
	if l.FailRate <= 0 {
		l.FailRate = DefaultFailRate
	}
	if l.FailBurst <= 0 {
		l.FailBurst = DefaultFailBurst
	}
	if l.Clock == nil {
		l.Clock = time.Now
	}
	return l
}

// AccessFiles are the files of the events option that say who may use the
// API and how it is reached: `token_file PATH`, `tokens PATH`, `tls CERT
// KEY`, `client_ca CA`. Empty fields are not given.
type AccessFiles struct {
	TokenFile, Tokens   string
	Cert, Key, ClientCA string
}

// Access is what AccessFiles hold, loaded: for Config.Tokens and
// Config.TLS.
type Access struct {
	Tokens []Token
	TLS    *tls.Config // nil: plain HTTP
}

// Load reads the files, now, so that a Corefile naming a missing or bad
// one fails when it is parsed, with its line; a reload reads them again.
// The token_file's token is an operator token named LegacyTokenName.
// Errors start with "events: ".
func (f AccessFiles) Load() (Access, error) {
	var a Access
	if f.ClientCA != "" && f.Cert == "" {
		return a, errors.New("events: client_ca needs tls CERT KEY: client certificates are checked in the TLS handshake")
	}
	if f.Tokens != "" {
		toks, err := LoadTokens(f.Tokens)
		if err != nil {
			return a, err
		}
		a.Tokens = toks
	}
	if f.TokenFile != "" {
		secret, err := LoadToken(f.TokenFile)
		if err != nil {
			return a, err
		}
		if a.Tokens, err = addLegacyToken(a.Tokens, secret); err != nil {
			return a, err
		}
	}
	if f.Cert != "" {
		var err error
		if a.TLS, err = LoadTLS(f.Cert, f.Key, f.ClientCA); err != nil {
			return a, err
		}
	}
	return a, nil
}

// addLegacyToken adds the token of token_file (or Config.Token) to toks,
// refusing one that toks already names or holds.
func addLegacyToken(toks []Token, secret string) ([]Token, error) {
	if err := CheckSecret(secret); err != nil {
		return nil, fmt.Errorf("events: token_file: %w", err)
	}
	legacy := NewToken(LegacyTokenName, RoleOperator, secret)
	for _, t := range toks {
		switch {
		case t.Name == LegacyTokenName:
			return nil, fmt.Errorf("events: the tokens file names a token %q, the name of token_file's token", LegacyTokenName)
		case t.Hash == legacy.Hash:
			return nil, fmt.Errorf("events: token_file holds the token of %q in the tokens file", t.Name)
		}
	}
	return append(slices.Clip(toks), legacy), nil
}

// authToken is a Token with its rate limiter.
type authToken struct {
	Token
	limit *rate.Limiter
}

// callerKey keys the request's *authToken in its context.
type callerKey struct{}

// callerOf is the token r was authenticated with; nil without
// authentication.
func callerOf(r *http.Request) *authToken {
	tok, _ := r.Context().Value(callerKey{}).(*authToken)
	return tok
}

// access is the authentication state of a Server.
type access struct {
	tokens   []*authToken
	limits   Limits
	failures *lru.Cache[netip.Prefix, *rate.Limiter]

	logMu  sync.Mutex
	logged map[string]time.Time // what logEvery last logged, by key
}

func newAccess(toks []Token, limits Limits) *access {
	limits = limits.withDefaults()
	a := &access{limits: limits, logged: map[string]time.Time{}}
	for _, t := range toks {
		r, b := t.Rate, t.Burst
		if r == 0 {
			r = limits.TokenRate
		}
		if b == 0 {
			b = limits.TokenBurst
			if t.Rate != 0 {
				b = max(1, int(math.Ceil(2*t.Rate)))
			}
		}
		a.tokens = append(a.tokens, &authToken{Token: t, limit: rate.NewLimiter(rate.Limit(r), b)})
	}
	a.failures, _ = lru.New[netip.Prefix, *rate.Limiter](maxSources) // only a size <= 0 fails
	return a
}

// checkTokens refuses two tokens of one name or one secret in toks.
func checkTokens(toks []Token) error {
	for i, t := range toks {
		if err := CheckTokenName(t.Name); err != nil {
			return fmt.Errorf("events: token %d: %w", i+1, err)
		}
		if _, err := ParseRole(string(t.Role)); err != nil {
			return fmt.Errorf("events: token %q: %w", t.Name, err)
		}
		for _, u := range toks[:i] {
			if u.Name == t.Name {
				return fmt.Errorf("events: two tokens are named %q", t.Name)
			}
			if u.Hash == t.Hash {
				return fmt.Errorf("events: tokens %q and %q are the same token", u.Name, t.Name)
			}
		}
	}
	return nil
}

// authenticate finds r's token and checks the rate limits; it answers r
// itself (401, 403, 429) and returns false when r goes no further. Without
// tokens every request passes, as nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*authToken, bool) {
	a := s.access
	if len(a.tokens) == 0 {
		return nil, true
	}
	now := a.limits.Clock()
	src := sourceOf(r)
	if d := a.failDelay(src, now); d > 0 {
		s.logEvery("failures", time.Minute, now, "events: too many requests with a missing or wrong token from %s; answering 429", src)
		tooMany(w, d, fmt.Sprintf("too many requests with a missing or wrong token from %s", src))
		return nil, false
	}
	secret, inQuery := bearer(r)
	if secret == "" {
		a.failed(src, now)
		w.Header().Set("WWW-Authenticate", `Bearer realm="cipvalidate"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing bearer token (Authorization: Bearer TOKEN)"})
		return nil, false
	}
	tok := a.match(secret)
	if tok == nil {
		a.failed(src, now)
		w.Header().Set("WWW-Authenticate", `Bearer realm="cipvalidate", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "invalid bearer token"})
		return nil, false
	}
	if inQuery && tok.Role != RoleRead {
		s.logEvery("edl:"+tok.Name, time.Hour, now, "events: the EDL was polled with the %s token %q as ?token= and refused: a URL is kept in firewall configs and proxy logs; give the firewall a read token", tok.Role, tok.Name)
		writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("the EDL's ?token= takes a read token, not the %s token %q: a URL is kept in firewall configs and proxy logs", tok.Role, tok.Name), Field: "token"})
		return nil, false
	}
	res := tok.limit.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		s.logEvery("rate:"+tok.Name, time.Minute, now, "events: token %q is over its rate limit (%g requests/s, burst %d); answering 429", tok.Name, float64(tok.limit.Limit()), tok.limit.Burst())
		tooMany(w, d, fmt.Sprintf("token %q is over its rate limit of %g requests/s", tok.Name, float64(tok.limit.Limit())))
		return nil, false
	}
	return tok, true
}

// bearer is r's token: the Authorization header's, else, for the EDL
// only, HTTP basic auth's password or ?token= (firewalls that poll it,
// Palo Alto EDL and FortiGate threat feeds, cannot send a bearer header;
// both can send a username and password, which stay out of URLs and
// proxy logs). The basic auth username is not checked.
func bearer(r *http.Request) (secret string, inQuery bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if tok = strings.TrimSpace(tok); strings.EqualFold(scheme, "Bearer") && tok != "" {
		return tok, false
	}
	if r.URL.Path == edlPath {
		if _, pw, ok := r.BasicAuth(); ok && pw != "" {
			return pw, false
		}
		if tok := r.URL.Query().Get("token"); tok != "" {
			return tok, true
		}
	}
	return "", false
}

// match returns the token whose hash is secret's, comparing every token
// in constant time so that the time taken says nothing of which matched.
func (a *access) match(secret string) *authToken {
	h := sha256.Sum256([]byte(secret))
	var found *authToken
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], t.Hash[:]) == 1 {
			found = t
		}
	}
	return found
}

// sourceOf is the source whose failures are counted together: the
// client's address, its /64 for IPv6 (one host often holds a whole /64).
func sourceOf(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// failDelay is how long src must wait before its next request is heard.
func (a *access) failDelay(src netip.Prefix, now time.Time) time.Duration {
	lim, ok := a.failures.Get(src)
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// failed counts a request from src with a missing or wrong token.
func (a *access) failed(src netip.Prefix, now time.Time) {
	lim := rate.NewLimiter(rate.Limit(a.limits.FailRate), a.limits.FailBurst)
	if prev, ok, _ := a.failures.PeekOrAdd(src, lim); ok {
		lim = prev
	}
	lim.AllowN(now, 1)
}

// tooMany answers 429 with Retry-After in whole seconds, rounded up.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, errorBody{Error: fmt.Sprintf("%s; retry after %ds", msg, secs)})
}

// logEvery logs at most once per every for key, so that a client that
// keeps being refused cannot flood the log.
func (s *Server) logEvery(key string, every time.Duration, now time.Time, format string, args ...any) {
	a := s.access
	a.logMu.Lock()
	last, seen := a.logged[key]
	due := !seen || now.Sub(last) >= every
	if due {
		a.logged[key] = now
	}
	a.logMu.Unlock()
	if due {
		s.cfg.Logf(format, args...)
	}
}

// rolesFor lists the roles that may use a route, by its ServeMux pattern.
// A route not listed here is read's if it only reads (GET), operator's
// otherwise, so that a route added later is never open to more than that.
func rolesFor(pattern string) []Role {
	switch pattern {
	case "POST /v1/events", "POST /v1/connections":
		return []Role{RoleEvents, RoleOperator}
	case "GET /v1/events/{id}": // events: only its own (getEvent)
		return []Role{RoleEvents, RoleRead, RoleOperator}
	}
	if strings.HasPrefix(pattern, "GET ") {
		return []Role{RoleRead, RoleOperator}
	}
	return []Role{RoleOperator}
}

// permitted answers 403 and returns false if tok's role may not use the
// route of pattern.
func permitted(w http.ResponseWriter, r *http.Request, tok *authToken, pattern string) bool {
	if tok == nil {
		return true
	}
	allowed := rolesFor(pattern)
	if slices.Contains(allowed, tok.Role) {
		return true
	}
	names := make([]string, len(allowed))
	for i, role := range allowed {
		names[i] = string(role)
	}
	writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("token %q has role %s; %s %s needs %s",
		tok.Name, tok.Role, r.Method, r.URL.Path, strings.Join(names, " or "))})
	return false
}

// withCaller is r carrying tok, for callerOf.
func withCaller(r *http.Request, tok *authToken) *http.Request {
	if tok == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, tok))
}

// onBehalfOfFields are where a request may name the person an operator
// acts for, in order; actor and X-Actor are their older names.
var onBehalfOfFields = []struct {
	name   string
	header bool
}{{"on_behalf_of", false}, {"actor", false}, {"X-On-Behalf-Of", true}, {"X-Actor", true}}

// onBehalfOf is who r says it acts for: ?on_behalf_of=, ?actor=,
// X-On-Behalf-Of or X-Actor, checked by checkOnBehalfOf; "" if none.
func onBehalfOf(r *http.Request) (string, error) {
	q := r.URL.Query()
	for _, f := range onBehalfOfFields {
		v := q.Get(f.name)
		if f.header {
			v = r.Header.Get(f.name)
		}
		if v = strings.TrimSpace(v); v != "" {
			return checkOnBehalfOf(f.name, v)
		}
	}
	return "", nil
}

// checkOnBehalfOf cleans who a request says it acts for, from field. No
// parentheses: the audit log shows it as "NAME (on behalf of WHO)", which
// must read one way only.
func checkOnBehalfOf(field, v string) (string, error) {
	v = textsafe.Clean(strings.TrimSpace(v))
	switch {
	case len(v) > MaxRefLength:
		return "", errField(field, "longer than %d characters", MaxRefLength)
	case strings.ContainsAny(v, "()"):
		return "", errField(field, "may not hold parentheses")
	}
	return v, nil
}

// actorOf is who the audit log names for a change r asks for, given who
// it says it acts for (onBehalf, checked). With tokens it is the token's
// name, and for an operator token that names a person "NAME (on behalf of
// WHO)"; what another role says is ignored. Without authentication
// (loopback, no token) the caller's word is all there is: WHO, else
// api@ADDRESS.
func actorOf(r *http.Request, onBehalf string) string {
	if tok := callerOf(r); tok != nil {
		if onBehalf == "" || tok.Role != RoleOperator {
			return tok.Name
		}
		return tok.Name + " (on behalf of " + onBehalf + ")"
	}
	if onBehalf != "" {
		return onBehalf
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "api@" + host
}

// requestActor is actorOf with who r's query or headers say it acts for;
// it answers 400 and returns false if that is not acceptable.
func requestActor(w http.ResponseWriter, r *http.Request) (string, bool) {
	who, err := onBehalfOf(r)
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return "", false
	}
	return actorOf(r, who), true
}
