package enforce_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/testlog"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// hookRecorder is a webhook receiver that keeps "action ip actor" of every
// change.
type hookRecorder struct {
	mu      sync.Mutex
	changes []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Changes []struct {
			Action string `json:"action"`
			IP     string `json:"ip"`
			Actor  string `json:"actor"`
		} `json:"changes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	for _, c := range body.Changes {
		h.changes = append(h.changes, strings.TrimSpace(c.Action+" "+c.IP+" "+c.Actor))
	}
	h.mu.Unlock()
}

// waitFor waits until the hook has received want (in order, among others).
func (h *hookRecorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.changes)
		h.mu.Unlock()
		if containsInOrder(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook received %q, want %q among them", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

type engineFixture struct {
	t     *testing.T
	dir   string
	hook  *hookRecorder
	url   string
	clock *testclock.Clock
	// history is the engines' `history` retention; 0: the default.
	history time.Duration
}

func newFixture(t *testing.T) *engineFixture {
	h := &hookRecorder{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &engineFixture{t: t, dir: t.TempDir(), hook: h, url: srv.URL, clock: testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))}
}

// start starts an engine on the fixture's state directory and hook.
func (f *engineFixture) start(key string) *enforce.Engine {
	f.t.Helper()
	return f.startHooked(key, f.webhook(f.url, "webhook test"))
}

// webhook is a hook line posting to url.
func (f *engineFixture) webhook(url, line string) enforce.HookSpec {
	f.t.Helper()
	wh, err := sink.NewWebhook(url, nil, sink.WebhookOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return enforce.HookSpec{Kind: enforce.HookWebhook, Webhook: wh, Line: line}
}

// startHooked starts an engine on the fixture's state directory with hooks.
func (f *engineFixture) startHooked(key string, hooks ...enforce.HookSpec) *enforce.Engine {
	f.t.Helper()
	e := enforce.New(key, enforce.Config{
		APIKey:      "unit",
		APIURL:      "http://127.0.0.1:9", // never called: verdicts are handed to Decide
		Policy:      risk.DefaultPolicy(),
		Retain:      15 * time.Minute,
		Window:      5 * time.Minute,
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour},
		Hooks:       hooks,
		StateDir:    f.dir,
		AuditPath:   filepath.Join(f.dir, "audit.log"),
		Now:         f.clock.Now,
		History:     f.history,
	})
	if err := e.Start(); err != nil {
		f.t.Fatal(err)
	}
	return e
}

// count is how many changes the hook has received.
func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.changes)
}

// TestReloadRepushesOnlyForNewHooks: a reload (a new engine on the same
// State before the old one stops) with the same hook lines pushes nothing
// again; one with another hook line pushes every live block to the new
// set.
func TestReloadRepushesOnlyForNewHooks(t *testing.T) {
	f := newFixture(t)
	client := netip.MustParseAddr("10.1.2.3")
	ips := []string{"45.83.0.21", "45.83.0.22", "45.83.0.23"}
	first := f.start(t.Name())
	for _, ip := range ips {
		first.Decide(f.suspicious(ip), validate.Job{IP: netip.MustParseAddr(ip), Client: client})
	}
	f.hook.waitFor(t, "block 45.83.0.21", "block 45.83.0.22", "block 45.83.0.23")
	before := f.hook.count()

	second := f.start(t.Name())
	first.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Whatever the second engine queued at its start is delivered by now.
	if err := second.StopHooks(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.hook.count(); got != before {
		t.Errorf("a reload with the same hooks sent %d changes again, want none", got-before)
	}

	added := &hookRecorder{}
	srv := httptest.NewServer(added)
	defer srv.Close()
	third := f.startHooked(t.Name(), f.webhook(f.url, "webhook test"), f.webhook(srv.URL, "webhook added"))
	defer third.Stop()
	second.Stop()
	for _, ip := range ips {
		added.waitFor(t, "block "+ip+" cipvalidate")
		f.hook.waitFor(t, "block "+ip+" cipvalidate")
	}
}

func (f *engineFixture) suspicious(ip string) verdicts.Verdict {
	now := f.clock.Now()
	return verdicts.Verdict{IP: netip.MustParseAddr(ip), Outcome: verdicts.Suspicious, Decision: verdicts.NewDecisionID(),
		Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical"}}, Score: "Critical",
		Checked: now, Expires: now.Add(24 * time.Hour)}
}

// auditKinds returns "kind ip" of every audit line.
func (f *engineFixture) auditKinds() []string {
	f.t.Helper()
	file, err := os.Open(filepath.Join(f.dir, "audit.log"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var out []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var e struct{ Kind, IP string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			f.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if !strings.HasPrefix(e.Kind, "hook_") {
			out = append(out, e.Kind+" "+e.IP)
		}
	}
	return out
}

// TestLifecycle follows one IP through decide, the hook, unblock, a second
// decision, a restart that restores and re-pushes it, and an allowlist
// entry that lifts it.
func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	e := f.start(t.Name())
	api := e.API()
	client := netip.MustParseAddr("10.1.2.3")

	e.Decide(f.suspicious("45.83.0.21"), validate.Job{IP: netip.MustParseAddr("45.83.0.21"), Client: client})
	f.hook.waitFor(t, "block 45.83.0.21")
	if got := api.Blocks(); len(got) != 1 || got[0].IP.String() != "45.83.0.21" || got[0].TTLSeconds != 3600 {
		t.Fatalf("blocks after Decide = %+v", got)
	}
	if ips := api.Blocklist(); len(ips) != 1 {
		t.Errorf("EDL = %v", ips)
	}

	un, ok := api.Unblock(netip.MustParseAddr("45.83.0.21"), "alice", "false positive")
	if !ok || !un.Unblocked || un.Actor != "alice" {
		t.Fatalf("Unblock = %+v, %v", un, ok)
	}
	f.hook.waitFor(t, "block 45.83.0.21", "unblock 45.83.0.21 alice")
	if v, ok := api.Verdict(netip.MustParseAddr("45.83.0.21")); !ok || v.Outcome != verdicts.Clean || !strings.Contains(v.Note, "alice") {
		t.Errorf("verdict after unblock = %+v, %v; want clean, noting alice", v, ok)
	}
	if _, ok := api.Unblock(netip.MustParseAddr("45.83.0.21"), "alice", "again"); ok {
		t.Error("a second unblock of the same IP succeeded")
	}

	e.Decide(f.suspicious("45.83.0.30"), validate.Job{IP: netip.MustParseAddr("45.83.0.30"), Client: client})
	f.hook.waitFor(t, "block 45.83.0.30")
	e.Stop()

	// A restart restores the block from the state directory and pushes it
	// again, so a flushed firewall gets it back.
	e = f.start(t.Name())
	defer e.Stop()
	f.hook.waitFor(t, "block 45.83.0.30", "block 45.83.0.30 cipvalidate")
	if got := e.API().Blocks(); len(got) != 1 || got[0].IP.String() != "45.83.0.30" {
		t.Fatalf("blocks after restart = %+v", got)
	}

	allowed, err := e.API().Allow(adminapi.AllowRequest{Value: "45.83.0.0/24", Reason: "vendor range", Actor: "bob"})
	if err != nil || len(allowed.Lifted) != 1 || allowed.Created.IsZero() {
		t.Fatalf("Allow = %+v, %v; want 45.83.0.30 lifted and a created time", allowed, err)
	}
	f.hook.waitFor(t, "unblock 45.83.0.30 bob")
	e.Decide(f.suspicious("45.83.0.31"), validate.Job{IP: netip.MustParseAddr("45.83.0.31"), Client: client})
	if got := e.API().Blocks(); len(got) != 0 {
		t.Errorf("an allowlisted IP was blocked: %+v", got)
	}
	if !e.API().RemoveAllow("45.83.0.0/24", "bob") || e.API().RemoveAllow("45.83.0.0/24", "bob") {
		t.Error("RemoveAllow: want true once, then false")
	}

	want := []string{"verdict 45.83.0.21", "block 45.83.0.21", "unblock 45.83.0.21", "verdict 45.83.0.30", "block 45.83.0.30",
		"allow 45.83.0.0/24", "unblock 45.83.0.30", "verdict 45.83.0.31", "allow_removed 45.83.0.0/24"}
	if got := f.auditKinds(); !slices.Equal(got, want) {
		t.Errorf("audit:\n got %q\nwant %q", got, want)
	}
}

// TestEscalation: a repeat offender's block grows by the factor, up to the
// maximum, and expiry lifts it in the hooks.
func TestEscalation(t *testing.T) {
	f := newFixture(t)
	e := f.start(t.Name())
	defer e.Stop()
	ip := netip.MustParseAddr("45.83.0.40")
	var ttls []int64
	var seen []string
	for range 5 {
		e.Decide(f.suspicious("45.83.0.40"), validate.Job{IP: ip})
		b := e.API().Blocks()
		if len(b) != 1 {
			t.Fatalf("blocks = %+v", b)
		}
		ttls = append(ttls, b[0].TTLSeconds)
		seen = append(seen, "block 45.83.0.40")
		f.hook.waitFor(t, seen...)
		e.ExpireBlocks(f.clock.Advance(time.Duration(b[0].TTLSeconds)*time.Second + time.Second))
		seen = append(seen, "unblock 45.83.0.40 cipvalidate")
		f.hook.waitFor(t, seen...)
	}
	if want := []int64{3600, 7200, 14400, 28800, 28800}; !slices.Equal(ttls, want) {
		t.Errorf("block TTLs = %v, want %v", ttls, want)
	}
}

// TestDecideBy: the command line's decisions reach the hooks under its
// own name.
func TestDecideBy(t *testing.T) {
	f := newFixture(t)
	e := f.start(t.Name())
	e.DecideBy(f.suspicious("45.83.0.50"), validate.Job{IP: netip.MustParseAddr("45.83.0.50")}, "coredns-cip backtrack", "offline backtrack")
	if err := e.StopHooks(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	f.hook.waitFor(t, "block 45.83.0.50 coredns-cip backtrack")
	if n := enforce.Held(); n != 0 {
		t.Errorf("%d states held after the last Stop", n)
	}
}

// TestStaticAllowCreated: the Corefile's allowlist entries carry the time
// they were loaded, and keep it across a reload.
func TestStaticAllowCreated(t *testing.T) {
	a, err := blocks.ParseAllow("cdn.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg := enforce.Config{APIKey: "unit", APIURL: "http://127.0.0.1:9", StaticAllow: []blocks.Allow{a}}
	first := enforce.New(t.Name(), cfg)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	list := first.API().Allowlist()
	if len(list) != 1 || !list[0].Static || list[0].Created.IsZero() {
		t.Fatalf("allowlist = %+v, want the static entry with a created time", list)
	}
	// A reload: a second engine takes the same state with the same line.
	second := enforce.New(t.Name(), cfg)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	if again := second.API().Allowlist(); len(again) != 1 || !again[0].Created.Equal(list[0].Created) {
		t.Errorf("after a reload, allowlist = %+v, want created %s kept", again, list[0].Created)
	}
	if strings.Contains(list[0].Created.String(), "m=") {
		t.Errorf("created %s carries a monotonic clock reading", list[0].Created)
	}
}

// TestControlPlaneNeverBlocked: a suspicious verdict for an upstream
// resolver (or the API, a webhook, Redis) is declined with a log line and
// an audit line, and blocks nothing.
func TestControlPlaneNeverBlocked(t *testing.T) {
	f := newFixture(t)
	wh, err := sink.NewWebhook(f.url, nil, sink.WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Recorder{}
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://198.51.100.7:9", Policy: risk.DefaultPolicy(),
		BlockPolicy:  blocks.Policy{TTL: time.Hour, Factor: 1, Max: time.Hour},
		Hooks:        []enforce.HookSpec{{Kind: enforce.HookWebhook, Webhook: wh, Line: "webhook test"}},
		ControlPlane: []string{"45.83.0.21:53", "[2a0c:9a40:1::21]:853"},
		AuditPath:    filepath.Join(f.dir, "audit.log"),
		Log:          logger{logs},
		Now:          f.clock.Now,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for _, ip := range []string{"45.83.0.21", "2a0c:9a40:1::21", "198.51.100.7"} {
		e.Decide(f.suspicious(ip), validate.Job{IP: netip.MustParseAddr(ip), Client: netip.MustParseAddr("10.1.2.3")})
	}
	if got := e.API().Blocks(); len(got) != 0 {
		t.Errorf("the control plane was blocked: %+v", got)
	}
	for _, want := range []string{"declined: it is the control plane (upstream 45.83.0.21:53)", "(upstream [2a0c:9a40:1::21]:853)", "(Criminal IP API 198.51.100.7)"} {
		if !logs.Contains(want) {
			t.Errorf("no log line saying %q:\n%s", want, logs.String())
		}
	}
	if what, ok := e.ControlPlane(netip.MustParseAddr("45.83.0.22"), "www.example.org."); ok {
		t.Errorf("45.83.0.22 is control plane (%s)", what)
	}
}

// logger adapts a testlog.Recorder to enforce.Logger.
type logger struct{ r *testlog.Recorder }

func (l logger) Debugf(f string, a ...any)   { l.r.Logf(f, a...) }
func (l logger) Infof(f string, a ...any)    { l.r.Logf(f, a...) }
func (l logger) Warningf(f string, a ...any) { l.r.Logf(f, a...) }
func (l logger) Errorf(f string, a ...any)   { l.r.Logf(f, a...) }

// TestSeenDomainsMakeShared: a Critical IP whose report lists no domains,
// but that this resolver saw 25 registrable domains resolve to, is a shared
// front: its block is narrowed to tagged pairs.
func TestSeenDomainsMakeShared(t *testing.T) {
	_, url := fakeapitest.Start(t)
	clock := testclock.New(time.Now())
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: fakeapitest.Key, APIURL: url, Policy: risk.DefaultPolicy(), Shared: 20, Retain: 15 * time.Minute,
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 1, Max: time.Hour}, Now: clock.Now,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	ip, victim := netip.MustParseAddr("45.83.0.21"), netip.MustParseAddr("10.1.2.3")
	w := e.State().Window()
	for i := range 25 {
		// Two names of each site: they count once.
		for _, n := range []string{"www.site%d.co.uk.", "cdn.site%d.co.uk."} {
			w.Record(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), fmt.Sprintf(n, i), []netip.Addr{ip}, 0, clock.Now())
		}
	}
	w.Record(victim, "www.site0.co.uk.", []netip.Addr{ip}, 0, clock.Now())
	e.API().Submit(adminapi.Event{Client: victim, Type: "edr.malware", At: clock.Now(), Window: 5 * time.Minute, Watch: time.Hour}, "ev-1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b := e.API().Blocks(); len(b) == 1 {
			if b[0].Scope != risk.ScopeTagged || b[0].Everyone() {
				t.Errorf("block %+v, want tagged pairs: the IP is shared", b[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no block after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, ok := e.API().Verdict(ip); !ok || v.SeenDomains != 25 || !e.Shared(v) {
		t.Errorf("verdict %+v, want 25 registrable domains seen and shared", v)
	}
	if ips := e.API().Blocklist(); len(ips) != 0 {
		t.Errorf("a shared IP is in the EDL: %v", ips)
	}
}
