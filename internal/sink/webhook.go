package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultWebhookTimeout bounds one POST.
const DefaultWebhookTimeout = 10 * time.Second

// ErrRejected is wrapped by a Webhook's error when the receiver answered
// with a 4xx other than 408 or 429: sending the same batch again is
// unlikely to help until the receiver or the configuration changes.
var ErrRejected = errors.New("rejected by the receiver")

// WebhookOptions tunes a Webhook sink.
type WebhookOptions struct {
	Timeout time.Duration // per POST; default 10s
	Client  *http.Client  // default: a client of its own on http.DefaultTransport
	// Headers are added to every request, after Content-Type (which one
	// may override); see CheckWebhookHeader.
	Headers []WebhookHeader
	// Template renders the body instead of {"changes": [...]}.
	Template *WebhookTemplate
}

// Webhook is a Sink that POSTs each batch as one JSON document:
//
//	{"changes": [{"decision": "d-1", "ip": "192.0.2.1", "action": "block",
//	  "ttl": 3600, "reasons": ["c2"], "client": "10.1.2.3", "scope": "tagged",
//	  "port": 443, "clients": ["10.1.2.3", "10.1.2.4"], "event": "e-1",
//	  "ref": "", "qnames": ["bad.example."], "actor": "", "why": "",
//	  "time": "2026-01-02T03:04:05Z"}]}
//
// Every field is always present: ttl is whole seconds left on the block
// (0 for unblock); scope is "everyone" (the IP for everyone; client is "")
// or "tagged" (only client -> ip, and only to port unless port is 0);
// ip is the CIDR of a range block (scope everyone);
// clients are every client that led to the decision, for context; time is
// when the batch was sent (RFC 3339, UTC). Headers: Content-Type: application/json
// and User-Agent: coredns-cip.
//
// With a secret, each request is signed. X-CIP-Timestamp holds the unix
// time in seconds, and X-CIP-Signature "sha256=" followed by the hex
// HMAC-SHA256, keyed with the secret, of the timestamp, a ".", and the body
// exactly as received. A receiver checks it like this, and should also
// refuse timestamps more than a few minutes away from its clock, so that a
// captured request cannot be replayed later:
//
//	ts := r.Header.Get("X-CIP-Timestamp")
//	mac := hmac.New(sha256.New, secret)
//	mac.Write([]byte(ts + "."))
//	mac.Write(body)
//	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
//	if !hmac.Equal([]byte(r.Header.Get("X-CIP-Signature")), []byte(want)) {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
//
// A 2xx answer is success. Anything else is an error naming the status:
// 408, 429, 5xx and transport errors are worth retrying; other 4xx wrap
// ErrRejected. The Dispatcher retries both, so the receiver must tolerate
// repeats (the decision id identifies a change). Errors never contain the
// secret, a header's value, nor the URL's path or query, which often carry
// a token.
//
// With a Template the body is what it renders (WebhookData), and Headers
// are added to each request (Splunk HEC's Authorization: Splunk TOKEN).
// A NotifyingWebhook whose on lists notice also POSTs notices (Notify):
// {"notice": {...}} rather than {"changes": [...]}, signed alike.
type Webhook struct {
	url      string
	host     string
	secret   []byte
	timeout  time.Duration
	client   *http.Client
	headers  []WebhookHeader
	template *WebhookTemplate
}

// NewWebhook returns a Webhook posting to rawURL, an http or https URL
// with a host. An empty secret means unsigned requests.
func NewWebhook(rawURL string, secret []byte, opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a token
		}
		return nil, fmt.Errorf("sink webhook: bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("sink webhook: %q: scheme must be http or https", redact(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("sink webhook: %q: no host", redact(u))
	}
	w := &Webhook{
		url:      u.String(),
		host:     u.Host,
		secret:   bytes.Clone(secret),
		timeout:  opts.Timeout,
		client:   opts.Client,
		headers:  slices.Clone(opts.Headers),
		template: opts.Template,
	}
	for _, h := range w.headers {
		if err := CheckWebhookHeader(h); err != nil {
			return nil, fmt.Errorf("sink webhook: %w", err)
		}
	}
	if w.timeout <= 0 {
		w.timeout = DefaultWebhookTimeout
	}
	if w.client == nil {
		w.client = &http.Client{}
	}
	return w, nil
}

// LoadSecret reads a webhook secret from the file at path, trimmed of
// surrounding white space. An empty file is an error.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sink webhook secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("sink webhook secret: %s: file is empty", path)
	}
	return b, nil
}

// contentType is the Content-Type of w's requests.
func (w *Webhook) contentType() string { return ContentType(w.headers) }

// Host returns the URL's host (and port), for the control plane that is
// never blocked.
func (w *Webhook) Host() string { return w.host }

// Name returns "webhook:" and the URL's host.
func (w *Webhook) Name() string { return "webhook:" + w.host }

// String returns Name, so that printing a Webhook cannot show its secret.
func (w *Webhook) String() string { return w.Name() }

// GoString returns Name, as String does, for %#v.
func (w *Webhook) GoString() string { return w.Name() }

// webhookChange is a Change as the receiver sees it.
type webhookChange struct {
	Decision string   `json:"decision"`
	IP       string   `json:"ip"`
	Action   Action   `json:"action"`
	TTL      int64    `json:"ttl"`
	Reasons  []string `json:"reasons"`
	Client   string   `json:"client"`
	Scope    Scope    `json:"scope"`
	Port     uint16   `json:"port"`
	Clients  []string `json:"clients"`
	Event    string   `json:"event"`
	Ref      string   `json:"ref"`
	Qnames   []string `json:"qnames"`
	Actor    string   `json:"actor"`
	Why      string   `json:"why"`
	Narrowed string   `json:"narrowed,omitempty"`
	Time     string   `json:"time"`
}

// Apply POSTs the batch as one request.
func (w *Webhook) Apply(ctx context.Context, batch []Change) error {
	if len(batch) == 0 {
		return nil
	}
	now := time.Now()
	var body []byte
	var err error
	if w.template != nil {
		body, err = w.template.render(batch, now)
	} else {
		body, err = webhookBody(batch, now)
	}
	if err != nil {
		return fmt.Errorf("sink %s: %w", w.Name(), err)
	}
	return w.postBody(ctx, w.Name(), body, now)
}

// postBody POSTs body, signed if w has a secret; errors name the sink
// name and never the URL.
func (w *Webhook) postBody(ctx context.Context, name string, body []byte, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sink %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "coredns-cip")
	for _, h := range w.headers {
		req.Header.Set(h.Name, h.Value)
	}
	if len(w.secret) > 0 {
		ts := strconv.FormatInt(now.Unix(), 10)
		req.Header.Set("X-CIP-Timestamp", ts)
		req.Header.Set("X-CIP-Signature", sign(w.secret, ts, body))
	}

	resp, err := w.client.Do(req)
	if err != nil {
		// A *url.Error quotes the whole URL; keep only what failed.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("sink %s: POST: %w", name, err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, outputLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	answer := strings.TrimSpace(string(head))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode >= 500:
		return fmt.Errorf("sink %s: HTTP %s: %q", name, resp.Status, answer)
	default:
		return fmt.Errorf("sink %s: HTTP %s, %w: %q", name, resp.Status, ErrRejected, answer)
	}
}

func webhookBody(batch []Change, now time.Time) ([]byte, error) {
	t := now.UTC().Format(time.RFC3339)
	changes := make([]webhookChange, len(batch))
	for i, c := range batch {
		changes[i] = webhookChange{
			Decision: c.Decision,
			IP:       c.Target(),
			Action:   c.Action,
			TTL:      ttlSeconds(c),
			Reasons:  nonNil(c.Reasons),
			Client:   clientString(c),
			Scope:    c.EffectiveScope(),
			Port:     c.Port,
			Clients:  clientStrings(c),
			Event:    c.Event,
			Ref:      c.Ref,
			Qnames:   nonNil(c.Qnames),
			Actor:    c.Actor,
			Why:      c.Why,
			Narrowed: c.Narrowed,
			Time:     t,
		}
	}
	return json.Marshal(struct {
		Changes []webhookChange `json:"changes"`
	}{changes})
}

// sign returns the X-CIP-Signature value for body sent at timestamp ts.
func sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// nonNil makes an absent list encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// redact returns u without user info, path, query or fragment.
func redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}
