package sink

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

var testSecret = []byte("s3cr3t-0f-the-hook")

// received is one request as a receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// hookServer answers with status(n) for the n-th request (from 1) and
// hands every request to the test.
func hookServer(t *testing.T, status func(n int) int) (*httptest.Server, <-chan received) {
	t.Helper()
	reqs := make(chan received, 100)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/hook/T0K3N" {
			http.Error(w, "wrong method or path", http.StatusNotFound)
			return
		}
		reqs <- received{r.Header.Clone(), body}
		code := status(int(n.Add(1)))
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func always(code int) func(int) int { return func(int) int { return code } }

// verify checks a request's signature as the Webhook doc tells receivers to.
func verify(secret []byte, h http.Header, body []byte) bool {
	ts := h.Get("X-CIP-Timestamp")
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(h.Get("X-CIP-Signature")), []byte(want))
}

func TestWebhookSignsAndSendsTheChanges(t *testing.T) {
	srv, reqs := hookServer(t, always(http.StatusNoContent))
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	batch := []Change{
		{
			Action: Block, IP: netip.MustParseAddr("192.0.2.1"), TTL: time.Hour, Decision: "d-1",
			Reasons: []string{"c2"}, Event: "e-1", Ref: "CASE-7", Qnames: []string{"bad.example."},
		},
		{
			Action: Unblock, IP: netip.MustParseAddr("2001:db8::1"), Client: netip.MustParseAddr("10.0.0.9"),
			Decision: "d-2", Actor: "ops", Why: "false positive",
		},
		{
			Action: Block, IP: netip.MustParseAddr("192.0.2.3"), Client: netip.MustParseAddr("10.0.0.9"),
			Scope: ScopeTagged, Port: 8443, TTL: time.Hour, Decision: "d-3",
			Clients: []netip.Addr{netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.10")},
		},
	}
	if err := w.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	r := <-reqs

	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.header.Get("User-Agent"); got != "coredns-cip" {
		t.Errorf("User-Agent %q", got)
	}
	if !strings.HasPrefix(r.header.Get("X-CIP-Signature"), "sha256=") || !verify(testSecret, r.header, r.body) {
		t.Errorf("signature %q does not verify", r.header.Get("X-CIP-Signature"))
	}
	if verify([]byte("another secret"), r.header, r.body) {
		t.Error("signature verifies with the wrong secret")
	}

	var doc struct {
		Changes []map[string]any `json:"changes"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if len(doc.Changes) != 3 {
		t.Fatalf("got %d changes, want the whole batch in one request", len(doc.Changes))
	}
	fields := []string{"decision", "ip", "action", "ttl", "reasons", "client", "scope", "port", "clients", "event", "ref", "qnames", "actor", "why", "time"}
	for i, c := range doc.Changes {
		if len(c) != len(fields) {
			t.Errorf("change %d has fields %v, want exactly %v", i, c, fields)
		}
		for _, f := range fields {
			if _, ok := c[f]; !ok {
				t.Errorf("change %d lacks %q", i, f)
			}
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(c["time"])); err != nil {
			t.Errorf("change %d time: %v", i, err)
		}
	}
	b, u, p := doc.Changes[0], doc.Changes[1], doc.Changes[2]
	for _, tc := range []struct {
		got, want any
	}{
		{b["decision"], "d-1"}, {b["ip"], "192.0.2.1"}, {b["action"], "block"}, {b["ttl"], 3600.0},
		{fmt.Sprint(b["reasons"]), "[c2]"}, {b["client"], ""}, {b["event"], "e-1"}, {b["ref"], "CASE-7"},
		{fmt.Sprint(b["qnames"]), "[bad.example.]"},
		{u["ip"], "2001:db8::1"}, {u["action"], "unblock"}, {u["ttl"], 0.0}, {u["client"], "10.0.0.9"},
		{fmt.Sprint(u["reasons"]), "[]"}, {u["actor"], "ops"}, {u["why"], "false positive"},
		// A change without a scope reads as before scopes: for everyone
		// without a client, a pair with one.
		{b["scope"], "everyone"}, {b["port"], 0.0}, {fmt.Sprint(b["clients"]), "[]"},
		{u["scope"], "tagged"}, {u["port"], 0.0},
		{p["scope"], "tagged"}, {p["client"], "10.0.0.9"}, {p["port"], 8443.0},
		{fmt.Sprint(p["clients"]), "[10.0.0.9 10.0.0.10]"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v, in %s", tc.got, tc.want, r.body)
		}
	}
}

func TestWebhookWithoutSecretDoesNotSign(t *testing.T) {
	srv, reqs := hookServer(t, always(http.StatusOK))
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Apply(context.Background(), []Change{block(1, "d-1")}); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.header.Get("X-CIP-Signature") != "" || r.header.Get("X-CIP-Timestamp") != "" {
		t.Errorf("unsigned webhook sent %v", r.header)
	}
}

func TestWebhookRetriedByDispatcher(t *testing.T) {
	srv, reqs := hookServer(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	d := NewDispatcher(Config{Sinks: []Sink{w}, FlushEvery: time.Millisecond, Backoff: time.Millisecond, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "the change applied", func() bool { got := rs.get(); return len(got) > 0 && got[len(got)-1].Outcome == Applied })

	got := rs.get()
	if len(got) != 2 || got[0].Err == nil || got[0].Outcome != Retrying || got[1].Err != nil || got[1].Attempt != 2 {
		t.Fatalf("results %+v, want a failed attempt then a final success", got)
	}
	if msg := got[0].Err.Error(); !strings.Contains(msg, "503") || errors.Is(got[0].Err, ErrRejected) {
		t.Errorf("first error %q should name 503 and not be a rejection", msg)
	}
	for range 2 {
		if r := <-reqs; !verify(testSecret, r.header, r.body) {
			t.Error("a retry is not signed afresh")
		}
	}
	if s := d.Stats()[w.Name()]; s.Applied != 1 || s.Retries != 1 {
		t.Errorf("stats %+v, want Applied 1, Retries 1", s)
	}
}

func TestWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		code     int
		rejected bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusBadGateway, false},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			srv, _ := hookServer(t, always(tc.code))
			w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Apply(context.Background(), []Change{block(1, "d-1")})
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tc.code)) || errors.Is(err, ErrRejected) != tc.rejected {
				t.Errorf("error %q: want status %d named, rejected %v", err, tc.code, tc.rejected)
			}
			noSecrets(t, err.Error())
		})
	}

	t.Run("transport", func(t *testing.T) {
		srv, _ := hookServer(t, always(http.StatusOK))
		w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
		err = w.Apply(context.Background(), []Change{block(1, "d-1")})
		if err == nil {
			t.Fatal("Apply to a closed server succeeded")
		}
		noSecrets(t, err.Error())
		noSecrets(t, fmt.Sprintf("%v %+v %#v %s", w, w, w, w))
	})

	t.Run("timeout", func(t *testing.T) {
		unblock := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-unblock
		}))
		defer srv.Close()
		defer close(unblock)
		w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{Timeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Apply(context.Background(), []Change{block(1, "d-1")}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Apply = %v, want a deadline error", err)
		}
	})
}

// noSecrets fails the test if s shows the secret or the URL's token.
func noSecrets(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, string(testSecret)) || strings.Contains(s, "T0K3N") {
		t.Errorf("%q shows a secret", s)
	}
}

func TestNewWebhookValidatesTheURL(t *testing.T) {
	for _, u := range []string{"", "example.com/hook", "ftp://example.com/hook", "http://", "https:///hook", "http://exa mple.com/T0K3N", "mailto:ops@example.com"} {
		w, err := NewWebhook(u, testSecret, WebhookOptions{})
		if err == nil {
			t.Errorf("NewWebhook(%q) = %v, want an error", u, w)
			continue
		}
		noSecrets(t, err.Error())
	}
	w, err := NewWebhook("https://soar.example.com:8443/hook/T0K3N?x=1", testSecret, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Name(); got != "webhook:soar.example.com:8443" {
		t.Errorf("Name() = %q", got)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadSecret(write("good", "  "+string(testSecret)+"\n"))
	if err != nil || string(got) != string(testSecret) {
		t.Errorf("LoadSecret = %q, %v", got, err)
	}
	for _, path := range []string{write("empty", " \n\t"), filepath.Join(dir, "missing")} {
		if _, err := LoadSecret(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadSecret(%s) = %v, want an error naming the file", path, err)
		}
	}
}

// A webhook receiver down for two minutes (of a simulated clock) gets
// every change once it is back: the latest of each IP, in the order they
// were made, however many retries it took. The Dispatcher neither gives up
// nor hammers it meanwhile.
func TestWebhookDownTwoMinutesGetsEveryChange(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := testclock.New(start)
	up := start.Add(2 * time.Minute)
	var mu sync.Mutex
	var refused int
	got := map[string][]string{} // ip -> "action decision" as received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if clock.Now().Before(up) {
			refused++
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var body struct{ Changes []webhookChange }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, c := range body.Changes {
			got[c.IP] = append(got[c.IP], string(c.Action)+" "+c.Decision)
		}
	}))
	defer srv.Close()
	w, err := NewWebhook(srv.URL, testSecret, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(Config{Sinks: []Sink{w}, Now: clock.Now, After: clock.After})
	d.Start()
	defer stop(t, d)

	// Every 5s while it is down, a block; every third IP is unblocked 10s
	// after its block.
	made := map[string][]string{}
	submit := func(c Change) {
		d.Submit(c)
		made[c.IP.String()] = append(made[c.IP.String()], string(c.Action)+" "+c.Decision)
	}
	for i := 1; clock.Now().Before(up); i++ {
		submit(block(i, fmt.Sprint("d-", i)))
		if i > 2 && (i-2)%3 == 0 {
			submit(Change{Action: Unblock, IP: ip(i - 2), Decision: fmt.Sprint("d-", i-2)})
		}
		waitFor(t, "the dispatcher to back off", func() bool { return clock.Timers() > 0 })
		clock.Advance(5 * time.Second)
	}
	received := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(got)
	}
	waitFor(t, "the receiver to have the last change of every IP", func() bool {
		clock.Advance(time.Second)
		if d.Stats()[w.Name()].Queued > 0 {
			return false
		}
		r := received()
		for ip, changes := range made {
			if n := len(r[ip]); n == 0 || r[ip][n-1] != changes[len(changes)-1] {
				return false
			}
		}
		return true
	})
	for ip, changes := range received() {
		if !inOrder(changes, made[ip]) {
			t.Errorf("%s: received %q, made %q: out of order, or a change never made", ip, changes, made[ip])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d attempts refused in the two minutes down", refused)
	if refused <= DefaultAttempts || refused > 30 {
		t.Errorf("%d attempts in two minutes down: want more than %d (the old give-up point), and few enough to spare the receiver (backoff up to %v)",
			refused, DefaultAttempts, DefaultMaxBackoff)
	}
	if s := d.Stats()[w.Name()]; s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v: want nothing failed or dropped", s)
	}
}

// inOrder reports whether sub is a subsequence of all.
func inOrder(sub, all []string) bool {
	i := 0
	for _, a := range all {
		if i < len(sub) && sub[i] == a {
			i++
		}
	}
	return i == len(sub)
}

// A range block reaches the receiver with the CIDR as ip.
func TestWebhookRangeBlock(t *testing.T) {
	body, err := webhookBody([]Change{{Action: Block, Range: netip.MustParsePrefix("2a0c:9a40::/32"), Scope: ScopeEveryone, TTL: time.Hour, Decision: "d-1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"ip":"2a0c:9a40::/32"`) || !strings.Contains(string(body), `"scope":"everyone"`) {
		t.Errorf("body %s, want ip 2a0c:9a40::/32 for everyone", body)
	}
}
