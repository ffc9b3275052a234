package enforce_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

// flush delivers whatever e's hooks have queued, and closes them.
func flush(t *testing.T, e *enforce.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.StopHooks(ctx); err != nil {
		t.Fatal(err)
	}
}

// Fifty reloads with the same hooks push nothing again, and neither does
// a reconcile after them: what the hook acknowledged survives the reloads.
func TestFiftyReloadsPushNothing(t *testing.T) {
	f := newFixture(t)
	client := netip.MustParseAddr("10.1.2.3")
	e := f.start(t.Name())
	for _, ip := range []string{"45.83.0.21", "45.83.0.22", "45.83.0.23"} {
		e.Decide(f.suspicious(ip), validate.Job{IP: netip.MustParseAddr(ip), Client: client})
	}
	f.hook.waitFor(t, "block 45.83.0.21", "block 45.83.0.22", "block 45.83.0.23")
	before := f.hook.count()

	for range 50 {
		next := f.start(t.Name())
		e.Stop()
		e = next
	}
	defer e.Stop()
	e.Reconcile()
	flush(t, e)
	if got := f.hook.count(); got != before {
		t.Errorf("50 reloads and a reconcile sent %d changes again, want none", got-before)
	}
}

// A webhook that missed changes (made while its queue was closed, between
// two configurations) is sent those, and only those, by the next
// reconcile: the block it lacks, and the unblock of a block it still
// holds.
func TestReconcileSendsAWebhookOnlyWhatItLacks(t *testing.T) {
	f := newFixture(t)
	client := netip.MustParseAddr("10.1.2.3")
	e := f.start(t.Name())
	for _, ip := range []string{"45.83.0.21", "45.83.0.22", "45.83.0.23"} {
		e.Decide(f.suspicious(ip), validate.Job{IP: netip.MustParseAddr(ip), Client: client})
	}
	f.hook.waitFor(t, "block 45.83.0.21", "block 45.83.0.22", "block 45.83.0.23")
	flush(t, e)
	if _, ok := e.Unblock(netip.MustParseAddr("45.83.0.22"), "alice", "false positive"); !ok {
		t.Fatal("Unblock failed")
	}
	e.Decide(f.suspicious("45.83.0.24"), validate.Job{IP: netip.MustParseAddr("45.83.0.24"), Client: client})
	before := f.hook.count()

	next := f.start(t.Name()) // a reload: the same hook, nothing pushed at start
	e.Stop()
	defer next.Stop()
	next.Reconcile()
	f.hook.waitFor(t, "unblock 45.83.0.22 cipvalidate")
	f.hook.waitFor(t, "block 45.83.0.24 cipvalidate")
	next.Reconcile() // acknowledged by now: nothing more
	flush(t, next)
	f.hook.mu.Lock()
	got := slices.Clone(f.hook.changes[before:])
	f.hook.mu.Unlock()
	slices.Sort(got)
	if want := []string{"block 45.83.0.24 cipvalidate", "unblock 45.83.0.22 cipvalidate"}; !slices.Equal(got, want) {
		t.Errorf("reconcile sent %q, want only %q", got, want)
	}
}

// While a hook is down its change stays pending, and the sweep reports it
// per hook; once the hook is back the change reaches it and nothing is
// pending.
func TestSweepReportsPendingHookChanges(t *testing.T) {
	var up atomic.Bool
	var refused atomic.Int32
	got := &hookRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			refused.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		got.ServeHTTP(w, r)
	}))
	defer srv.Close()
	f := newFixture(t)
	hook := f.webhook(srv.URL, "webhook down")
	obs := &sweepRecorder{}
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 1, Max: time.Hour},
		Hooks:       []enforce.HookSpec{hook}, Now: f.clock.Now, Observer: obs,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	pending := func() int {
		e.Sweep(f.clock.Now())
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.stats[len(obs.stats)-1].HookPending[hook.Webhook.Name()]
	}
	e.Decide(f.suspicious("45.83.0.21"), validate.Job{IP: netip.MustParseAddr("45.83.0.21")})
	for deadline := time.Now().Add(10 * time.Second); refused.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the hook was never tried")
		}
	}
	if n := pending(); n != 1 {
		t.Errorf("pending after the hook refused it: %d, want 1", n)
	}
	up.Store(true)
	got.waitFor(t, "block 45.83.0.21")
	for deadline := time.Now().Add(10 * time.Second); pending() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a change is still pending after the hook took it")
		}
	}
}
