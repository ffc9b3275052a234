package cipvalidate

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"

	"github.com/miekg/dns"
)

// webhookRecorder is a SOAR endpoint: it checks the HMAC signature of every
// POST, answers the first one 503, and keeps the changes of the others.
type webhookRecorder struct {
	secret []byte
	mu     sync.Mutex
	posts  int
	bad    int
	got    []map[string]any
}

func (wr *webhookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, wr.secret)
	mac.Write([]byte(r.Header.Get("X-CIP-Timestamp") + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	wr.mu.Lock()
	defer wr.mu.Unlock()
	wr.posts++
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-CIP-Signature"))) {
		wr.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if wr.posts == 1 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	var payload struct {
		Changes []map[string]any `json:"changes"`
	}
	json.Unmarshal(body, &payload)
	wr.got = append(wr.got, payload.Changes...)
}

func (wr *webhookRecorder) changes() []map[string]any {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return slices.Clone(wr.got)
}

// hooked is an e2e world with an exec hook, a signed webhook, a state
// directory and its audit log.
type hooked struct {
	*e2e
	execLog  string
	webhook  *webhookRecorder
	stateDir string
}

func startHooked(t *testing.T, extra string) *hooked {
	t.Helper()
	dir := t.TempDir()
	h := &hooked{execLog: filepath.Join(dir, "exec.log"), stateDir: filepath.Join(dir, "state"), webhook: &webhookRecorder{secret: []byte("s3cret-hmac")}}
	script := filepath.Join(dir, "fw.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+h.execLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "webhook.secret")
	os.WriteFile(secretFile, h.webhook.secret, 0o600)
	srv := httptest.NewServer(h.webhook)
	t.Cleanup(srv.Close)
	h.e2e = startE2E(t, fmt.Sprintf(`hook exec %s {action} {ip} {ttl} {decision} {scope} {clients}
        hook webhook %s secret_file %s
        state %s
%s`, script, srv.URL, secretFile, h.stateDir, extra))
	return h
}

// execLines waits until the exec hook has written n lines and returns them.
func (h *hooked) execLines(n int) []string {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(h.execLog)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(data) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("exec hook wrote %q, want %d lines", data, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *hooked) auditLines(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(h.stateDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

type blockAnswer struct {
	IP               string   `json:"ip"`
	Decision         string   `json:"decision"`
	Reasons          []string `json:"reasons"`
	Events           []string `json:"events"`
	TTLSeconds       int64    `json:"ttl_seconds"`
	RemainingSeconds int64    `json:"remaining_seconds"`
	Repeat           int      `json:"repeat"`
}

// A suspicious verdict becomes one block decision: pushed to the exec and
// webhook hooks (the webhook retried after a 503), listed by GET
// /v1/blocks and the EDL, audited, with the decision id the same in the
// EDE, the audit log, the webhook and the hook's arguments; an unblock
// undoes it everywhere and records who and why.
func TestE2EBlockLifecycle(t *testing.T) {
	h := startHooked(t, "block_ttl 2h escalate 2 8h")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	ev := h.postEvent("127.0.0.2", h.clock.Now(), "5m")
	v := h.waitVerdict("45.83.0.21")

	lines := h.execLines(1)
	if want := fmt.Sprintf("block 45.83.0.21 7200 %s everyone 127.0.0.2", v.Decision); lines[0] != want {
		t.Errorf("exec hook ran with %q, want %q", lines[0], want)
	}
	var list []blockAnswer
	if code := h.api("GET", "/v1/blocks", nil, &list); code != 200 || len(list) != 1 {
		t.Fatalf("GET /v1/blocks: %d %+v", code, list)
	}
	b := list[0]
	if b.IP != "45.83.0.21" || b.Decision != v.Decision || b.TTLSeconds != 7200 || !slices.Contains(b.Events, ev.ID) || len(b.Reasons) == 0 {
		t.Errorf("block %+v, want 2h for event %s with decision %s", b, ev.ID, v.Decision)
	}
	if edl := h.get(t, "/v1/blocklist.txt"); edl != "45.83.0.21\n" {
		t.Errorf("EDL %q", edl)
	}
	r := h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	if ede := edeOf(r); ede == nil || !strings.Contains(ede.ExtraText, v.Decision) {
		t.Errorf("EDE %v does not carry decision %s", ede, v.Decision)
	}

	// The webhook got the block on its second attempt, signed.
	deadline := time.Now().Add(15 * time.Second)
	for len(h.webhook.changes()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	wh := h.webhook.changes()
	if len(wh) != 1 || wh[0]["decision"] != v.Decision || wh[0]["action"] != "block" || wh[0]["ip"] != "45.83.0.21" || h.webhook.bad != 0 {
		t.Fatalf("webhook got %+v (%d bad signatures)", wh, h.webhook.bad)
	}

	// Unblock everywhere.
	if code := h.api("DELETE", "/v1/blocks/45.83.0.21?actor=alice&reason=false+positive", nil, nil); code != 200 {
		t.Fatalf("DELETE /v1/blocks: %d", code)
	}
	lines = h.execLines(2)
	if !strings.HasPrefix(lines[1], "unblock 45.83.0.21 0 "+v.Decision) {
		t.Errorf("exec unblock %q", lines[1])
	}
	if edl := h.get(t, "/v1/blocklist.txt"); edl != "" {
		t.Errorf("EDL after unblock %q", edl)
	}
	if r := h.query("127.0.0.2", "bad.example.org", dns.TypeA); edeOf(r) != nil {
		t.Errorf("still rewritten after unblock: %v", r)
	}

	// The audit log: one line per decision, all with the same id.
	kinds := map[string]bool{}
	for _, e := range h.auditLinesEventually(t, "unblock") {
		if e["decision"] == v.Decision {
			kinds[e["kind"].(string)] = true
		}
		if e["kind"] == "unblock" && (e["actor"] != "token_file (on behalf of alice)" || e["detail"] != "false positive") {
			t.Errorf("unblock audit %+v", e)
		}
	}
	for _, k := range []string{"verdict", "block", "rewrite", "hook_ok", "unblock"} {
		if !kinds[k] {
			t.Errorf("no %q audit line with decision %s (have %v)", k, v.Decision, kinds)
		}
	}
}

func (h *hooked) auditLinesEventually(t *testing.T, kind string) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := h.auditLines(t)
		for _, l := range lines {
			if l["kind"] == kind {
				return lines
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line in the audit log: %v", kind, lines)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *e2e) get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.apiBase+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Allowlisting wins over a verdict: it lifts the block, stops the rewrite,
// and keeps the IP from being blocked again.
func TestE2EAllowLiftsBlock(t *testing.T) {
	h := startHooked(t, "")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	h.postEvent("127.0.0.2", h.clock.Now(), "5m")
	h.waitVerdict("45.83.0.21")
	h.execLines(1)

	var ans struct {
		Value  string   `json:"value"`
		Lifted []string `json:"lifted"`
	}
	if code := h.api("POST", "/v1/allow", map[string]string{"value": "bad.example.org", "until": "1h", "reason": "vendor"}, &ans); code != 201 || len(ans.Lifted) != 1 {
		t.Fatalf("POST /v1/allow: %d %+v", code, ans)
	}
	if lines := h.execLines(2); !strings.HasPrefix(lines[1], "unblock 45.83.0.21") {
		t.Errorf("exec %q", lines[1])
	}
	if r := h.query("127.0.0.2", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.21"}) {
		t.Errorf("allowlisted name still rewritten: %v", r)
	}
	var list []blockAnswer
	if h.api("GET", "/v1/blocks", nil, &list); len(list) != 0 {
		t.Errorf("blocks after allow: %+v", list)
	}
}

// Escalation: blocked again after expiry, the IP gets TTL x factor.
func TestE2EEscalation(t *testing.T) {
	h := startHooked(t, "block_ttl 1h escalate 3 5h\n        cache 100 suspicious 1m")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	h.postEvent("127.0.0.2", h.clock.Now(), "5m")
	h.waitVerdict("45.83.0.21")
	h.execLines(1)

	// Two hours later the block and the verdict have expired; the sweeper
	// (run here by hand) lifts the block; the client asks again.
	later := h.clock.Now().Add(2 * time.Hour)
	h.clock.Set(later)
	h.owner().eng.ExpireBlocks(later)
	h.owner().eng.State().Cache().Sweep(later)
	if lines := h.execLines(2); !strings.HasPrefix(lines[1], "unblock 45.83.0.21") {
		t.Errorf("expiry not pushed to exec: %q", lines[1])
	}
	h.postEvent("127.0.0.2", later, "5m")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	lines := h.execLines(3)
	if f := strings.Fields(lines[2]); len(f) < 3 || f[0] != "block" || f[2] != "10800" {
		t.Errorf("second block %q, want a 3h (10800s) TTL", lines[2])
	}
}

// mode monitor records would-be blocks but pushes nothing.
func TestE2EMonitorRecordsWouldBeBlocks(t *testing.T) {
	h := startHooked(t, "mode monitor")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	h.postEvent("127.0.0.2", h.clock.Now(), "5m")
	h.waitVerdict("45.83.0.21")
	var list []struct {
		IP      string `json:"ip"`
		Monitor bool   `json:"monitor"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(list) == 0 && time.Now().Before(deadline) {
		h.api("GET", "/v1/blocks", nil, &list)
		time.Sleep(10 * time.Millisecond)
	}
	if len(list) != 1 || !list[0].Monitor {
		t.Fatalf("blocks %+v, want one monitor block", list)
	}
	if edl := h.get(t, "/v1/blocklist.txt"); edl != "" {
		t.Errorf("EDL lists a monitor-mode block: %q", edl)
	}
	h.owner().eng.StopHooks(t.Context())
	if data, _ := os.ReadFile(h.execLog); len(data) != 0 {
		t.Errorf("monitor mode ran the exec hook: %q", data)
	}
}

// A reload with the same Corefile pushes nothing to the hooks again: the
// exec hook ran once, and the webhook got one change, for the one block,
// however many reloads followed, and a reconcile after them finds nothing
// missing.
func TestE2EReloadDoesNotRepush(t *testing.T) {
	h := startHooked(t, "")
	h.query("127.0.0.2", "bad.example.org", dns.TypeA)
	h.postEvent("127.0.0.2", h.clock.Now(), "5m")
	h.waitVerdict("45.83.0.21")
	h.execLines(1)

	for range 50 {
		h.inst = coretest.Reload(t, h.inst, h.corefile)
	}
	h.owner().eng.Reconcile()
	// Each old engine flushed its hooks as it stopped; the serving one's
	// queue is flushed here, so whatever the reloads queued has run.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.owner().eng.StopHooks(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(h.execLog)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 1 {
		t.Errorf("after 50 reloads and a reconcile the exec hook ran %d times: %q, want once", len(lines), lines)
	}
	if got := h.webhook.changes(); len(got) != 1 {
		t.Errorf("after 50 reloads and a reconcile the webhook got %d changes, want 1: %v", len(got), got)
	}
}
