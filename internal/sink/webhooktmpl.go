package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/template"
	"time"
)

// WebhookHeader is a request header a Webhook adds (a token for Splunk
// HEC, an API key). Its value is a secret: String, GoString and every
// error name the header, never the value.
type WebhookHeader struct {
	Name, Value string
}

// String returns the name only, so that printing a header cannot show a token.
func (h WebhookHeader) String() string { return h.Name + ": [redacted]" }

// GoString returns String, for %#v.
func (h WebhookHeader) GoString() string { return h.String() }

// reservedHeaders are headers a Webhook sets itself, or that the HTTP
// client owns: an operator's value would break the request or forge the
// signature.
var reservedHeaders = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Te", "Trailer",
	"Upgrade", "Keep-Alive", "X-Cip-Timestamp", "X-Cip-Signature",
}

// CheckWebhookHeader validates h: the name an HTTP token that the Webhook
// does not set itself, the value non-empty and free of control characters.
func CheckWebhookHeader(h WebhookHeader) error {
	if !isToken(h.Name) {
		return fmt.Errorf("header %q: not a valid header name", h.Name)
	}
	for _, r := range reservedHeaders {
		if strings.EqualFold(h.Name, r) {
			return fmt.Errorf("header %s: set by coredns-cip or the HTTP client, cannot be given", h.Name)
		}
	}
	if h.Value == "" {
		return fmt.Errorf("header %s: empty value", h.Name)
	}
	for _, c := range []byte(h.Value) {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("header %s: the value has a control character (a newline?)", h.Name)
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// LoadHeaderValue reads a header's value (a token) from the file at path,
// without its trailing newline. An empty value is an error; errors name
// the header and the file, never what the file holds.
func LoadHeaderValue(name, path string) (WebhookHeader, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return WebhookHeader{}, fmt.Errorf("header_file %s: %w", name, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return WebhookHeader{}, fmt.Errorf("header_file %s: %s: file is empty", name, path)
	}
	h := WebhookHeader{Name: name, Value: v}
	if err := CheckWebhookHeader(h); err != nil {
		return WebhookHeader{}, fmt.Errorf("header_file %s: %w", path, err)
	}
	return h, nil
}

// WebhookData is what a webhook template is executed with: the batch, when
// it is sent (UTC), and this server's host name. For a notice (a webhook
// whose on lists notice), Notice is set and Changes is empty; for a batch,
// Notice is nil.
type WebhookData struct {
	Changes []WebhookChange
	Notice  *Notice
	Time    time.Time
	Host    string
}

// WebhookChange is one change as a template sees it; see the webhook
// templates doc (docs/integrations/webhook-templates.md).
type WebhookChange struct {
	Decision    string    // the decision id
	Action      Action    // block or unblock
	Allowlisted bool      // an unblock an allowlist entry caused
	IP          string    // the IP, or the CIDR of a range block
	Scope       Scope     // everyone or tagged
	Client      string    // tagged: the client; everyone: ""
	Port        uint16    // tagged: the one port, or 0 for every port
	Clients     []string  // every client behind the decision
	TTL         int64     // seconds left on a block; 0 for an unblock
	Until       time.Time // when a block ends; zero for an unblock
	Reasons     []string
	Score       string // the Criminal IP score level, or ""
	Event       string // the event id, and its external reference
	Ref         string
	Qnames      []string
	Actor       string // unblock: who, and why
	Why         string
	Narrowed    string // why a block reaches less than its evidence would
	Summary     string // one line, as a chat hook titles it
}

// templateFuncs are the helpers a template may call. json is how a value
// goes into a JSON body: quoted and escaped (< > & too), so hostile names
// and reasons cannot break out of a string.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"unix": func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	},
}

// WebhookTemplate renders a batch as a webhook's body.
type WebhookTemplate struct {
	path string
	t    *template.Template
	host string
}

// LoadWebhookTemplate reads and parses the Go text/template at path and
// executes it against a sample change, so that a mistake fails setup, not
// the first block; errors name the file and the line. When the body is
// JSON (contentType says so), the sample's output must be JSON values.
func LoadWebhookTemplate(path, contentType string) (*WebhookTemplate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook template: %w", err)
	}
	t, err := template.New(path).Funcs(templateFuncs).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("webhook template: %w", err)
	}
	host, _ := os.Hostname()
	wt := &WebhookTemplate{path: path, t: t, host: host}
	out, err := wt.render(sampleBatch(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		return nil, fmt.Errorf("webhook template: a sample change: %w", err)
	}
	if strings.Contains(strings.ToLower(contentType), "json") {
		if err := jsonValues(out); err != nil {
			return nil, fmt.Errorf("webhook template: %s: the output for a sample change is not JSON (%w); use {{json .Field}} for every value", path, err)
		}
	}
	return wt, nil
}

// ContentType is the Content-Type a webhook with headers sends.
func ContentType(headers []WebhookHeader) string {
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Content-Type") {
			return h.Value
		}
	}
	return "application/json"
}

// tryNotice renders a sample notice, so that a template that cannot
// fails setup: it must render something (a template made for changes only
// renders nothing: leave notice out of on), and JSON if the body is JSON.
func (wt *WebhookTemplate) tryNotice(contentType string) error {
	out, err := wt.renderNotice(sampleNotice(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		return fmt.Errorf("webhook template: a sample notice: %w", err)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return fmt.Errorf("webhook template: %s renders nothing for a notice; leave notice out of on, or render .Notice", wt.path)
	}
	if strings.Contains(strings.ToLower(contentType), "json") {
		if err := jsonValues(out); err != nil {
			return fmt.Errorf("webhook template: %s: the output for a sample notice is not JSON (%w); use {{json .Notice.Field}} for every value", wt.path, err)
		}
	}
	return nil
}

// renderNotice executes the template for n sent at now: .Notice set,
// .Changes empty.
func (wt *WebhookTemplate) renderNotice(n Notice, now time.Time) ([]byte, error) {
	n.Title = clean(n.Title)
	data := WebhookData{Time: now.UTC(), Host: wt.host, Changes: []WebhookChange{}, Notice: &n}
	var buf bytes.Buffer
	if err := wt.t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonValues checks that b is one or more JSON values (Splunk HEC takes
// events one after another).
func jsonValues(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	n := 0
	for ; ; n++ {
		var v any
		err := d.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if n == 0 {
		return errors.New("empty")
	}
	return nil
}

// render executes the template for batch sent at now.
func (wt *WebhookTemplate) render(batch []Change, now time.Time) ([]byte, error) {
	data := WebhookData{Time: now.UTC(), Host: wt.host, Changes: make([]WebhookChange, len(batch))}
	for i, c := range batch {
		wc := WebhookChange{
			Decision: c.Decision, Action: c.Action, Allowlisted: c.Allowlisted(),
			IP: c.Target(), Scope: c.EffectiveScope(), Client: clientString(c), Port: c.Port,
			Clients: clientStrings(c), TTL: ttlSeconds(c), Reasons: nonNil(c.Reasons),
			Score: c.Score, Event: c.Event, Ref: c.Ref, Qnames: nonNil(c.Qnames),
			Actor: c.Actor, Why: c.Why, Narrowed: c.Narrowed, Summary: headline(c),
		}
		if wc.TTL > 0 {
			wc.Until = data.Time.Add(time.Duration(wc.TTL) * time.Second)
		}
		data.Changes[i] = wc
	}
	var buf bytes.Buffer
	if err := wt.t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sampleBatch is what a template is tried on at setup: every field set.
func sampleBatch() []Change {
	return []Change{{
		Action: Block, IP: netip.MustParseAddr("192.0.2.1"), Scope: ScopeTagged,
		Client: netip.MustParseAddr("10.1.2.3"), Port: 443,
		Clients: []netip.Addr{netip.MustParseAddr("10.1.2.3")}, TTL: time.Hour,
		Decision: "d-sample", Reasons: []string{"c2 \"quoted\"\n</script>"}, Event: "e-1",
		Ref: "ref-1", Qnames: []string{"bad.example."}, Score: "critical",
	}, {
		Action: Unblock, Range: netip.MustParsePrefix("198.51.100.0/24"), Scope: ScopeEveryone,
		Decision: "d-sample-2", Actor: "alice", Why: "false positive",
	}}
}
