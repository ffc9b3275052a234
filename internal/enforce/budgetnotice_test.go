package enforce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// noticeReceiver keeps what each path was sent; /flaky answers its first
// request 503.
type noticeReceiver struct {
	mu    sync.Mutex
	got   map[string][]received
	flaky int
}

func (n *noticeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.URL.Path == "/flaky" {
		if n.flaky++; n.flaky == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	n.got[r.URL.Path] = append(n.got[r.URL.Path], received{r.Header.Clone(), b})
}

// received is a request's headers and body.
type received struct {
	header http.Header
	body   []byte
}

// bodies returns what path was sent, and the requests' headers.
func (n *noticeReceiver) bodies(path string) ([][]byte, []http.Header) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var bs [][]byte
	var hs []http.Header
	for _, r := range n.got[path] {
		bs, hs = append(bs, r.body), append(hs, r.header)
	}
	return bs, hs
}

// The 80% and exhaustion notices reach, once each, a generic webhook on
// notice (signed {"notice": ...} bodies), a templated one (the Splunk
// template's notice event), a chat hook on block (as before), and a
// webhook whose first answer is a 503 (tried again, the exhaustion held
// until the 80% notice is through); a webhook on block and an enforcing
// webhook get none.
func TestBudgetNoticesReachWebhooks(t *testing.T) {
	dir := t.TempDir()
	rcv := &noticeReceiver{got: map[string][]received{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	secretFile := filepath.Join(dir, "secret")
	slackFile := filepath.Join(dir, "slack-url")
	if os.WriteFile(secretFile, []byte("hmac-key\n"), 0o600) != nil || os.WriteFile(slackFile, []byte(srv.URL+"/slack"), 0o600) != nil {
		t.Fatal("cannot write the hook files")
	}
	var hooks []HookSpec
	for _, line := range []string{
		"webhook " + srv.URL + "/generic secret_file " + secretFile + " on notice",
		"webhook " + srv.URL + "/hec template ../../contrib/templates/splunk-hec.tmpl on block notice",
		"webhook " + srv.URL + "/flaky on notice",
		"webhook " + srv.URL + "/blocks on block allow",
		"webhook " + srv.URL + "/plain",
		"slack url_file " + slackFile + " on block",
	} {
		args := strings.Fields(line)
		parse := ParseWebhookHook
		if args[0] == "slack" {
			parse = func(a []string) (HookSpec, error) { return ParseChatHook(a, t.Logf) }
		}
		h, err := parse(args)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		h.Line = line
		hooks = append(hooks, h)
	}
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	e := New(t.Name(), Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour},
		StateDir:    dir, Now: clock.Now, Hooks: hooks,
		Budget: &budget.Config{Limit: 20, Period: budget.Day, Loc: time.UTC},
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	for e.budget.Take(budget.Event, clock.Now()) {
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range []string{"/generic", "/hec", "/flaky", "/slack"} {
		for b, _ := rcv.bodies(p); len(b) < 2; b, _ = rcv.bodies(p) {
			if time.Now().After(deadline) {
				t.Fatalf("%s got %d notices, want 2", p, len(b))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.Stop() // waits for the notices still being sent

	bodies, headers := rcv.bodies("/generic")
	var levels []string
	for i, b := range bodies {
		mac := hmac.New(sha256.New, []byte("hmac-key"))
		mac.Write([]byte(headers[i].Get("X-CIP-Timestamp") + "."))
		mac.Write(b)
		if headers[i].Get("X-CIP-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("notice %s: signature does not verify", b)
		}
		var doc struct {
			Notice struct {
				Kind, Level, Period     string
				ResetsAt                string `json:"resets_at"`
				Spent, Limit, Remaining int64
			}
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Notice.Kind != "api_budget" || doc.Notice.Limit != 20 || doc.Notice.ResetsAt != "2026-12-02T00:00:00Z" {
			t.Errorf("notice %s", b)
		}
		levels = append(levels, doc.Notice.Level)
	}
	if strings.Join(levels, " ") != "warning exhausted" {
		t.Errorf("generic webhook got levels %q, want warning then exhausted", levels)
	}
	for _, want := range [][2]string{{"/generic", `"spent":16`}, {"/hec", `"sourcetype": "coredns-cip:notice"`}, {"/flaky", `"level":"exhausted"`}, {"/slack", "API budget 80% spent: 16 of 20 per day"}} {
		bodies, _ := rcv.bodies(want[0])
		if all := string(bodies[0]) + string(bodies[1]); len(bodies) != 2 || !strings.Contains(all, want[1]) {
			t.Errorf("%s got %d posts, want 2 with %s:\n%s", want[0], len(bodies), want[1], all)
		}
	}
	// The 80% notice to /flaky waited a second for its second try; the
	// exhaustion waited for it.
	if flaky, _ := rcv.bodies("/flaky"); !strings.Contains(string(flaky[0]), `"level":"warning"`) {
		t.Errorf("/flaky got the exhaustion before the 80%% notice: %s", flaky[0])
	}
	for _, p := range []string{"/blocks", "/plain"} {
		if b, _ := rcv.bodies(p); len(b) != 0 {
			t.Errorf("%s (no notice in its on) got %q", p, b)
		}
	}
}
