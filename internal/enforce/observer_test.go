package enforce_test

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// sweepRecorder keeps the Stats of every sweep.
type sweepRecorder struct {
	mu    sync.Mutex
	stats []enforce.Stats
}

func (*sweepRecorder) Submitted(enforce.Source, validate.Result, int) {}
func (*sweepRecorder) Verdict(verdicts.Verdict)                       {}
func (*sweepRecorder) Block(bool)                                     {}
func (*sweepRecorder) HookChanges(string, enforce.HookResult, int)    {}
func (*sweepRecorder) Event()                                         {}
func (*sweepRecorder) ConnlogLine(connlog.Format, bool)               {}
func (*sweepRecorder) APICall(criminalip.Attempt)                     {}
func (r *sweepRecorder) Swept(s enforce.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats = append(r.stats, s)
}

// A sweep reports what the window's total cap took from protected windows
// and what the event store forgot as increments since the previous sweep,
// and the event store's size: a counter never counts an eviction twice.
func TestSweepReportsProtectedAndEventEvictions(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	obs := &sweepRecorder{}
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		Retain: 15 * time.Minute, Window: 5 * time.Minute, Total: 10, PerClient: 100,
		TagNets:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, // every client tagged: every window protected
		PortsNot: []uint16{443},                                       // recorded, never sent to the API
		Now:      clock.Now, Observer: obs,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	// The sweeper sweeps once on start, then every 15s: after that first
	// sweep, the test's own sweeps are the only ones for a while.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		obs.mu.Lock()
		n := len(obs.stats)
		obs.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweeper did not sweep on start")
		}
	}

	for i := range 30 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(1 + i%250)})
		e.Connection(src, netip.MustParseAddr("45.83.0.21"), 443, clock.Now())
	}
	store := e.State().Events()
	for i := range 10_005 {
		store.Add(adminapi.Record{ID: fmt.Sprintf("ev-%d", i), Received: clock.Now()})
	}
	e.Sweep(clock.Now())
	e.Sweep(clock.Now())

	obs.mu.Lock()
	defer obs.mu.Unlock()
	first, second := obs.stats[len(obs.stats)-2], obs.stats[len(obs.stats)-1]
	if first.WindowEvictedProtected == 0 || first.WindowEvictedProtected > first.WindowEvicted {
		t.Errorf("first sweep: %d evicted from protected windows of %d evicted; want some, all of them at most",
			first.WindowEvictedProtected, first.WindowEvicted)
	}
	if first.EventsEvicted != store.Evicted() || first.EventsEvicted < 5 || first.EventsBytes != store.Bytes() || first.EventsBytes <= 0 {
		t.Errorf("first sweep: %d events evicted, %d bytes; the store says %d and %d", first.EventsEvicted, first.EventsBytes, store.Evicted(), store.Bytes())
	}
	if second.WindowEvictedProtected != 0 || second.EventsEvicted != 0 || second.EventsBytes != first.EventsBytes {
		t.Errorf("second sweep, nothing new: %+v; want no new evictions and the same size", second)
	}
	obs.mu.Unlock()

	// A reload: a new engine takes the same state; its sweeps do not count
	// the running totals again.
	reloaded := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		Retain: 15 * time.Minute, Window: 5 * time.Minute, Total: 10, PerClient: 100, Now: clock.Now, Observer: obs,
	})
	if err := reloaded.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reloaded.Stop)
	reloaded.Sweep(clock.Now())
	obs.mu.Lock()
	if last := obs.stats[len(obs.stats)-1]; last.WindowEvicted != 0 || last.WindowEvictedProtected != 0 || last.EventsEvicted != 0 {
		t.Errorf("first sweep after a reload: %+v; want no evictions counted again", last)
	}
}

// An audit log that cannot be written (here /dev/full: every write fails
// with ENOSPC, as on a full disk) is counted, once per lost entry.
func TestSweepReportsAuditErrors(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full to fail writes with: %v", err)
	}
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	obs := &sweepRecorder{}
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		AuditPath: "/dev/full", Now: clock.Now, Observer: obs,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	v := verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.21"), Outcome: verdicts.Suspicious, Decision: "cip-audit",
		Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical"}}, Checked: clock.Now(), Expires: clock.Now().Add(time.Hour)}
	e.Decide(v, validate.Job{IP: v.IP})
	e.Sweep(clock.Now())
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// The sweeper may have swept meanwhile: the increments add up, each
	// lost line counted once.
	var lost uint64
	for _, s := range obs.stats {
		if !s.Auditing {
			t.Errorf("sweep %+v: an audit log is open", s)
		}
		lost += s.AuditErrors
	}
	if lost != 2 { // the verdict line and the block line
		t.Errorf("%d lost audit lines counted over %d sweeps, want 2", lost, len(obs.stats))
	}
}
