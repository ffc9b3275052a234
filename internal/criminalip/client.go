// Package criminalip is a client for the Criminal IP asset report API
// (GET /v1/asset/ip/report?ip=IP&full=true, header x-api-key). It rate-limits
// on the client side, retries what is worth retrying with exponential backoff
// and jitter, collapses concurrent requests for one IP into a single call,
// bounds response bodies, and classifies every failure (see ErrBadKey and its
// siblings). It does no caching and no logging: callers own both.
package criminalip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/publicip"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Defaults for Config fields left zero.
const (
	DefaultBaseURL      = "https://api.criminalip.io"
	DefaultTimeout      = 20 * time.Second // per attempt, as the original tool
	DefaultRate         = 2.0              // requests per second
	DefaultBurst        = 4
	DefaultMaxAttempts  = 4
	DefaultBaseBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultMaxBodyBytes = 4 << 20
	DefaultBadKeyHold   = time.Minute
	reportPath          = "/v1/asset/ip/report"
)

// APIKey is a secret that prints as "[REDACTED]" through fmt and encoding,
// so a logged Config or error cannot leak it.
type APIKey string

func (APIKey) String() string   { return "[REDACTED]" }
func (APIKey) GoString() string { return `"[REDACTED]"` }

// MarshalText keeps the key out of JSON and text encodings.
func (APIKey) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

// Config configures a Client. Zero fields take the Default* values.
type Config struct {
	APIKey     APIKey
	BaseURL    string       // scheme and host, e.g. https://api.criminalip.io
	HTTPClient *http.Client // nil: a client with sane transport limits
	// Concurrency is how many calls the caller makes at once (its workers):
	// the default client keeps that many connections open between calls, so
	// that a burst (an event's window) does not pay a TCP and TLS handshake
	// per IP. At least 8.
	Concurrency  int
	Timeout      time.Duration
	Rate         float64 // API requests per second, across all IPs; <0 means unlimited
	Burst        int
	MaxAttempts  int // attempts per request, first one included
	BaseBackoff  time.Duration
	MaxBackoff   time.Duration
	MaxBodyBytes int64
	// BadKeyHold is how long a refused key short-circuits further calls, so
	// a revoked key does not hammer the API.
	BadKeyHold time.Duration
	// Observe, if set, is called after every API call (not for requests
	// served by singleflight or refused before calling).
	Observe func(Attempt)
	// Limiter, if set, replaces the Rate/Burst limiter: a fleet of nodes
	// shares one (see internal/fleet).
	Limiter Limiter
	// WrapConn, if set, wraps each connection the default client dials
	// (HTTPClient nil): the CPU budget meters the transport's writes.
	WrapConn func(net.Conn) net.Conn
}

// Limiter paces API calls.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Attempt describes one API call, for metrics.
type Attempt struct {
	Outcome    ErrorKind // KindOK or the failure's kind
	HTTPStatus int
	Duration   time.Duration
	// Err is the failure (an *Error, without the key), nil on success:
	// what a status page shows as the API's last error.
	Err error
}

// Client talks to the API. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	http     *http.Client
	limiter  Limiter
	group    singleflight.Group
	closed   context.Context
	close    context.CancelFunc

	mu         sync.Mutex
	notBefore  time.Time // honour a Retry-After across all requests
	badKeyTill time.Time
	badKeyErr  *Error
}

// New validates cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(string(cfg.APIKey)) == "" {
		return nil, errors.New("criminal ip: api key is empty")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("criminal ip: api url %q must be http(s)://host[:port]", cfg.BaseURL)
	}
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.BaseBackoff, DefaultBaseBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&cfg.BadKeyHold, DefaultBadKeyHold)
	setDefault(&cfg.Rate, DefaultRate)
	setDefault(&cfg.Burst, DefaultBurst)
	if cfg.Burst < 0 || cfg.MaxAttempts < 0 || cfg.Timeout < 0 || cfg.MaxBodyBytes < 0 {
		return nil, errors.New("criminal ip: burst, attempts, timeout and body limit must not be negative")
	}
	limit := rate.Limit(cfg.Rate)
	if cfg.Rate < 0 {
		limit = rate.Inf
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer(cfg.WrapConn),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: max(8, cfg.Concurrency),
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	closed, closeFn := context.WithCancel(context.Background())
	var limiter Limiter = rate.NewLimiter(limit, cfg.Burst)
	if cfg.Limiter != nil {
		limiter = cfg.Limiter
	}
	return &Client{
		cfg:      cfg,
		endpoint: strings.TrimRight(u.String(), "/") + reportPath,
		http:     hc,
		limiter:  limiter,
		closed:   closed,
		close:    closeFn,
	}, nil
}

// Close ends the API calls in flight; their callers get ErrTransient.
func (c *Client) Close() {
	c.close()
}

// dialer is the default client's DialContext, its connections wrapped by
// wrap if set.
func dialer(wrap func(net.Conn) net.Conn) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if wrap == nil {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrap(c), nil
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Report fetches the full report for ip. Concurrent calls for the same IP
// share one API call; each caller still gives up when its own ctx ends. A
// non-public IP is refused with ErrNotPublic without calling the API.
func (c *Client) Report(ctx context.Context, ip netip.Addr) (*Report, error) {
	if why := publicip.Why(ip); why != "" {
		return nil, &Error{Class: ErrNotPublic, IP: ip.String(), Message: why}
	}
	key := ip.Unmap().String()
	ctx = WithMeter(ctx, nil) // the call runs on a goroutine of its own
	ch := c.group.DoChan(key, func() (any, error) { return c.shared(ctx, key) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Report), nil
	case <-ctx.Done():
		return nil, &Error{Class: ErrTransient, IP: key, Message: "gave up waiting", Err: ctx.Err()}
	}
}

// ReportHere is Report with the call made on the calling goroutine rather
// than a goroutine of its own, so that its processing (building the
// request, reading and decoding the answer) runs on the caller's thread: a
// validation worker under the CPU budget is charged its thread's CPU time.
// A call for the same IP already under way is shared as with Report, but
// waiting for it does not end with ctx (the call's own timeouts and Close
// bound it). A Meter in ctx (WithMeter) is told when the call waits.
func (c *Client) ReportHere(ctx context.Context, ip netip.Addr) (*Report, error) {
	if why := publicip.Why(ip); why != "" {
		return nil, &Error{Class: ErrNotPublic, IP: ip.String(), Message: why}
	}
	key := ip.Unmap().String()
	v, err, _ := c.group.Do(key, func() (any, error) { return c.shared(ctx, key) })
	if err != nil {
		return nil, err
	}
	return v.(*Report), nil
}

// Meter is told when a call made on the caller's goroutine (ReportHere)
// waits (for the rate limit, a retry's pause, the HTTP exchange) and when
// it computes again (building the request, reading and decoding the
// answer), so that a caller measuring its thread's CPU time (pace.Unit)
// can let go of its thread while the call waits.
type Meter interface {
	Wait()
	Compute()
}

type meterKey struct{}

// WithMeter returns ctx carrying m for ReportHere; nil removes one.
func WithMeter(ctx context.Context, m Meter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

type noMeter struct{}

func (noMeter) Wait()    {}
func (noMeter) Compute() {}

func meterOf(ctx context.Context) Meter {
	if m, ok := ctx.Value(meterKey{}).(Meter); ok && m != nil {
		return m
	}
	return noMeter{}
}

// shared is the call that concurrent callers for one IP share. It must
// not die with the first caller's context: the others still want the
// answer. It keeps ctx's values, and is bounded by the per-attempt
// timeout, the attempt limit and Close instead.
func (c *Client) shared(ctx context.Context, key string) (*Report, error) {
	callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(c.closed, cancel)()
	return c.fetch(callCtx, key)
}

// fetch runs the attempts for one IP.
func (c *Client) fetch(ctx context.Context, ip string) (*Report, error) {
	var last *Error
	m := meterOf(ctx)
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if err := c.heldByBadKey(ip); err != nil {
			return nil, err
		}
		m.Wait()
		turnErr := c.waitTurn(ctx)
		m.Compute()
		if turnErr != nil {
			return nil, &Error{Class: ErrTransient, IP: ip, Message: "stopped while waiting for the rate limit", Attempts: attempt - 1, Err: turnErr}
		}
		rep, retryAfter, err := c.once(ctx, ip)
		if err == nil {
			return rep, nil
		}
		last = err
		last.Attempts = attempt
		if errors.Is(err, ErrBadKey) {
			c.holdBadKey(err)
			return nil, err
		}
		if !Retryable(err) || attempt == c.cfg.MaxAttempts {
			return nil, err
		}
		wait := c.backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
			c.pauseUntil(time.Now().Add(retryAfter))
		}
		m.Wait()
		slept := sleep(ctx, wait)
		m.Compute()
		if slept != nil {
			return nil, last
		}
	}
	return nil, last
}

// once makes one API call and classifies its result. retryAfter is the
// server's Retry-After, if any.
func (c *Client) once(ctx context.Context, ip string) (rep *Report, retryAfter time.Duration, _ *Error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	status := 0
	var failure *Error
	defer func() {
		if c.cfg.Observe != nil {
			err := errOrNil(failure)
			c.cfg.Observe(Attempt{Outcome: Kind(err), HTTPStatus: status, Duration: time.Since(start), Err: err})
		}
	}()
	fail := func(e *Error) (*Report, time.Duration, *Error) {
		e.IP = ip
		e.Message = c.redact(e.Message)
		failure = e
		return nil, retryAfter, e
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"?ip="+url.QueryEscape(ip)+"&full=true", nil)
	if err != nil {
		return fail(&Error{Class: ErrRejected, Message: "building request failed"})
	}
	req.Header.Set("x-api-key", string(c.cfg.APIKey))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "coredns-cip")
	m := meterOf(ctx)
	m.Wait()
	resp, err := c.http.Do(req)
	m.Compute()
	if err != nil {
		return fail(&Error{Class: ErrTransient, Message: transportMessage(err), Err: transportCause(ctx, err)})
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBodyBytes+1))
	if err != nil {
		return fail(&Error{Class: ErrTransient, HTTPStatus: status, Message: "reading body: " + transportMessage(err), Err: transportCause(ctx, err)})
	}
	if int64(len(body)) > c.cfg.MaxBodyBytes {
		return fail(&Error{Class: ErrBadResponse, HTTPStatus: status, Message: fmt.Sprintf("body larger than %d bytes", c.cfg.MaxBodyBytes)})
	}

	rep, decodeErr := Decode(body)
	// The body's own status is authoritative, even under HTTP 200.
	if decodeErr == nil && rep.HasStatusCode {
		if class := classifyStatus(rep.Status); class != nil {
			return fail(&Error{Class: class, HTTPStatus: status, APIStatus: rep.Status, Message: short(rep.Message)})
		}
	}
	if class := classifyStatus(status); class != nil {
		msg := http.StatusText(status)
		if decodeErr == nil && rep.Message != "" {
			msg = short(rep.Message)
		}
		return fail(&Error{Class: class, HTTPStatus: status, Message: msg})
	}
	if decodeErr != nil {
		return fail(&Error{Class: ErrBadResponse, HTTPStatus: status, Message: "malformed JSON: " + short(decodeErr.Error())})
	}
	return rep, 0, nil
}

func errOrNil(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// waitTurn waits for a pause ordered by a Retry-After, then for the limiter.
func (c *Client) waitTurn(ctx context.Context) error {
	c.mu.Lock()
	until := c.notBefore
	c.mu.Unlock()
	if d := time.Until(until); d > 0 {
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	return c.limiter.Wait(ctx)
}

func (c *Client) pauseUntil(t time.Time) {
	c.mu.Lock()
	if t.After(c.notBefore) {
		c.notBefore = t
	}
	c.mu.Unlock()
}

func (c *Client) holdBadKey(e *Error) {
	c.mu.Lock()
	c.badKeyTill = time.Now().Add(c.cfg.BadKeyHold)
	c.badKeyErr = e
	c.mu.Unlock()
}

// heldByBadKey returns an error while a refused key is on hold.
func (c *Client) heldByBadKey(ip string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badKeyErr == nil || time.Now().After(c.badKeyTill) {
		return nil
	}
	e := *c.badKeyErr
	e.IP, e.Attempts = ip, 0
	e.Message = "key refused recently, not calling the API again until " + c.badKeyTill.Format(time.RFC3339)
	return &e
}

// backoff returns the wait before attempt+1: exponential with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.BaseBackoff << (attempt - 1)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// redact removes the key from text that came from the server, in case it
// echoes the request.
func (c *Client) redact(s string) string {
	if k := string(c.cfg.APIKey); k != "" {
		s = strings.ReplaceAll(s, k, "[REDACTED]")
	}
	return s
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return min(time.Duration(secs)*time.Second, time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

// transportMessage describes a transport error without the URL (which
// carries the IP, already in Error.IP) and without anything else.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "timed out or canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return short(err.Error())
}

func transportCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func short(s string) string {
	const max = 200
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
