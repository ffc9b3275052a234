package sink

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// recorder is a Sink that records the batches it was given. apply, if
// set, decides each call's outcome (n counts calls from 1).
type recorder struct {
	name  string
	apply func(ctx context.Context, n int, batch []Change) error

	mu      sync.Mutex
	calls   int
	applied [][]Change // successful batches only
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Apply(ctx context.Context, batch []Change) error {
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.mu.Unlock()
	if r.apply != nil {
		if err := r.apply(ctx, n, batch); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.applied = append(r.applied, slices.Clone(batch))
	r.mu.Unlock()
	return nil
}

func (r *recorder) batches() [][]Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied)
}

func (r *recorder) changes() []Change {
	var all []Change
	for _, b := range r.batches() {
		all = append(all, b...)
	}
	return all
}

// results collects what OnResult reports.
type results struct {
	mu  sync.Mutex
	all []Result
}

func (rs *results) add(r Result) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.all = append(rs.all, r)
}

func (rs *results) get() []Result {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.all)
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: the deadline only bounds a broken test, it asserts nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func stop(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func ip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
}

func block(i int, decision string) Change {
	return Change{Action: Block, IP: ip(i), TTL: time.Hour, Decision: decision}
}

func TestDispatcherCoalescesByKey(t *testing.T) {
	t.Run("a burst for one IP sends one change", func(t *testing.T) {
		r := &recorder{name: "r"}
		d := NewDispatcher(Config{Sinks: []Sink{r}, FlushEvery: time.Hour})
		d.Start()
		for i := range 1000 {
			if !d.Submit(block(1, fmt.Sprint("d-", i))) {
				t.Fatalf("Submit %d refused", i)
			}
		}
		stop(t, d)
		got := r.changes()
		if len(got) != 1 || got[0].Decision != "d-999" {
			t.Fatalf("applied %+v, want only the last block (d-999)", got)
		}
	})

	t.Run("block then unblock sends only the unblock", func(t *testing.T) {
		r := &recorder{name: "r"}
		d := NewDispatcher(Config{Sinks: []Sink{r}, FlushEvery: time.Hour})
		d.Submit(block(1, "d-1"))
		d.Submit(Change{Action: Unblock, IP: ip(1), Decision: "d-1", Actor: "ops"})
		stop(t, d) // without Start: Stop still flushes
		got := r.changes()
		if len(got) != 1 || got[0].Action != Unblock {
			t.Fatalf("applied %+v, want the unblock alone", got)
		}
	})

	t.Run("a scoped block is a key of its own", func(t *testing.T) {
		r := &recorder{name: "r"}
		d := NewDispatcher(Config{Sinks: []Sink{r}, FlushEvery: time.Hour})
		d.Submit(block(1, "d-1"))
		scoped := block(1, "d-2")
		scoped.Client = netip.MustParseAddr("10.0.0.1")
		d.Submit(scoped)
		stop(t, d)
		if got := r.changes(); len(got) != 2 {
			t.Fatalf("applied %+v, want both", got)
		}
	})

	t.Run("pairs on different ports are keys of their own", func(t *testing.T) {
		r := &recorder{name: "r"}
		d := NewDispatcher(Config{Sinks: []Sink{r}, FlushEvery: time.Hour})
		client := netip.MustParseAddr("10.0.0.1")
		for i, port := range []uint16{0, 443, 8443, 443} {
			c := block(1, fmt.Sprint("d-", i))
			c.Client, c.Scope, c.Port = client, ScopeTagged, port
			d.Submit(c)
		}
		stop(t, d)
		var got []string
		for _, c := range r.changes() {
			got = append(got, fmt.Sprint(c.Port, "=", c.Decision))
		}
		if want := []string{"0=d-0", "443=d-3", "8443=d-2"}; !slices.Equal(got, want) {
			t.Fatalf("applied %v, want %v: one per port, the later 443 replacing the earlier", got, want)
		}
	})
}

func TestDispatcherBatches(t *testing.T) {
	r := &recorder{name: "r"}
	d := NewDispatcher(Config{Sinks: []Sink{r}, BatchSize: 10, FlushEvery: time.Hour})
	d.Start()
	for i := range 25 {
		d.Submit(block(i, fmt.Sprint("d-", i)))
	}
	// Full batches go at once; the rest waits for FlushEvery, or Stop.
	waitFor(t, "two full batches", func() bool { return len(r.batches()) == 2 })
	stop(t, d)

	var sizes []int
	var order []string
	for _, b := range r.batches() {
		sizes = append(sizes, len(b))
		for _, c := range b {
			order = append(order, c.Decision)
		}
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("batch sizes %v, want [10 10 5]", sizes)
	}
	for i, dec := range order {
		if want := fmt.Sprint("d-", i); dec != want {
			t.Fatalf("change %d is %s, want %s: submission order lost", i, dec, want)
		}
	}
}

func TestDispatcherFlushesAfterFlushEvery(t *testing.T) {
	r := &recorder{name: "r"}
	d := NewDispatcher(Config{Sinks: []Sink{r}, FlushEvery: time.Millisecond})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "the lone change to be applied", func() bool { return len(r.changes()) == 1 })
}

func TestDispatcherIsolatesSinks(t *testing.T) {
	release := make(chan struct{})
	stuck := &recorder{name: "stuck", apply: func(ctx context.Context, _ int, _ []Change) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	failing := &recorder{name: "failing", apply: func(context.Context, int, []Change) error {
		return errors.New("down")
	}}
	healthy := &recorder{name: "healthy"}
	d := NewDispatcher(Config{
		Sinks:      []Sink{stuck, failing, healthy},
		FlushEvery: time.Millisecond,
		Backoff:    time.Millisecond,
		Attempts:   1000,
		Timeout:    time.Hour,
	})
	d.Start()
	for i := range 3 {
		d.Submit(block(i, fmt.Sprint("d-", i)))
		waitFor(t, "the healthy sink to get every change", func() bool { return len(healthy.changes()) == i+1 })
	}
	if n := len(stuck.changes()); n != 0 {
		t.Fatalf("stuck sink applied %d changes before release", n)
	}
	if s := d.Stats()["stuck"]; s.Queued != 3 {
		t.Errorf("stuck sink Queued = %d, want 3 (one in flight, two waiting)", s.Queued)
	}
	close(release)
	waitFor(t, "the stuck sink to catch up", func() bool { return len(stuck.changes()) == 3 })
	stop(t, d)
}

func TestDispatcherRetriesThenSucceeds(t *testing.T) {
	var rs results
	r := &recorder{name: "r", apply: func(_ context.Context, n int, _ []Change) error {
		if n <= 2 {
			return fmt.Errorf("attempt %d fails", n)
		}
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Backoff: time.Millisecond, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "the change applied", func() bool { got := rs.get(); return len(got) > 0 && got[len(got)-1].Outcome == Applied })

	got := rs.get()
	if len(got) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(got), got)
	}
	for i, res := range got {
		want := []Outcome{Retrying, Retrying, Applied}[i]
		if res.Sink != "r" || res.Attempt != i+1 || (res.Err != nil) != (i < 2) || res.Outcome != want || len(res.Batch) != 1 {
			t.Errorf("result %d = %+v, want attempt %d, %v", i, res, i+1, want)
		}
	}
	s := d.Stats()["r"]
	if s.Applied != 1 || s.Retries != 2 || s.Failed != 0 || s.Queued != 0 {
		t.Errorf("stats %+v, want Applied 1, Retries 2, Failed 0, Queued 0", s)
	}
}

// A newer change for a key replaces a failed one that waits for its
// retry: a block that failed, then an unblock, sends only the unblock.
func TestDispatcherNewerChangeReplacesFailedOne(t *testing.T) {
	inApply, fail := make(chan struct{}), make(chan struct{})
	r := &recorder{name: "r", apply: func(_ context.Context, n int, _ []Change) error {
		if n == 1 {
			close(inApply)
			<-fail
			return errors.New("first attempt fails")
		}
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Backoff: time.Millisecond})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	d.Submit(block(2, "d-2"))
	<-inApply
	d.Submit(Change{Action: Unblock, IP: ip(1), Decision: "d-1"})
	close(fail)
	waitFor(t, "the retry", func() bool { return len(r.changes()) == 2 })

	var got []string
	for _, c := range r.changes() {
		got = append(got, string(c.Action)+" "+c.IP.String())
	}
	if want := []string{"block 192.0.2.2", "unblock 192.0.2.1"}; !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q: the failed block of .2 retried, the one of .1 replaced by its unblock", got, want)
	}
}

// A sink that fails far more often than Attempts keeps its changes: it is
// reported failing once, and the change is applied when it recovers.
func TestDispatcherNeverGivesUp(t *testing.T) {
	var rs results
	r := &recorder{name: "r", apply: func(_ context.Context, n int, _ []Change) error {
		if n <= 20 {
			return errors.New("down")
		}
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Backoff: time.Microsecond, MaxBackoff: time.Millisecond, Attempts: 3, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "the change applied", func() bool { return len(r.changes()) == 1 })

	var outcomes []Outcome
	for _, res := range rs.get() {
		outcomes = append(outcomes, res.Outcome)
	}
	want := slices.Repeat([]Outcome{Retrying}, 20)
	want[2] = Failing
	want = append(want, Applied)
	if !slices.Equal(outcomes, want) {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
	if s := d.Stats()["r"]; s.Failed != 0 || s.Applied != 1 || s.Retries != 20 || s.Queued != 0 {
		t.Errorf("stats %+v, want Applied 1, Retries 20, nothing failed or queued", s)
	}
}

// A block whose TTL runs out while its sink is down is dropped, not pushed
// late; its unblock, a change without a TTL, waits as long as it takes.
func TestDispatcherDropsBlocksThatEnded(t *testing.T) {
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	var up atomic.Bool
	var rs results
	r := &recorder{name: "r", apply: func(context.Context, int, []Change) error {
		if !up.Load() {
			return errors.New("down")
		}
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Now: clock.Now, After: clock.After, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	short, long := block(1, "d-1"), block(2, "d-2")
	short.TTL = 10 * time.Second
	d.Submit(short)
	d.Submit(long)
	d.Submit(Change{Action: Unblock, IP: ip(3), Decision: "d-3"})
	for range 10 {
		waitFor(t, "a backoff", func() bool { return clock.Timers() > 0 })
		clock.Advance(2 * time.Second)
	}
	up.Store(true)
	waitFor(t, "the rest applied", func() bool {
		clock.Advance(time.Second)
		return len(r.changes()) == 2
	})
	got := r.changes()
	if got[0].Decision != "d-2" || got[0].TTL > time.Hour-20*time.Second || got[1].Action != Unblock {
		t.Errorf("applied %+v, want the block of .2 with the time it waited taken off its TTL, and the unblock of .3", got)
	}
	if s := d.Stats()["r"]; s.Expired != 1 || s.Applied != 2 {
		t.Errorf("stats %+v, want Expired 1 (the block of .1), Applied 2", s)
	}
	if !slices.ContainsFunc(rs.get(), func(r Result) bool { return r.Outcome == Expired && r.Batch[0].Decision == "d-1" }) {
		t.Error("no Expired result for the block of .1")
	}
}

// A change no retry can carry out is given up at once.
func TestDispatcherGivesUpInvalidChanges(t *testing.T) {
	var rs results
	r := &recorder{name: "r", apply: func(context.Context, int, []Change) error {
		return fmt.Errorf("sink r: %w: block without a TTL", ErrInvalidChange)
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Backoff: time.Millisecond, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "a result", func() bool { return len(rs.get()) > 0 })
	if got := rs.get()[0]; got.Outcome != GivenUp {
		t.Errorf("result %+v, want GivenUp", got)
	}
	if s := d.Stats()["r"]; s.Failed != 1 || s.Retries != 0 || s.Queued != 0 {
		t.Errorf("stats %+v, want Failed 1, no retry", s)
	}
}

func TestDispatcherSubmitNeverBlocks(t *testing.T) {
	inApply, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := &recorder{name: "r", apply: func(context.Context, int, []Change) error {
		once.Do(func() { close(inApply) })
		<-release
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, QueueSize: 2, BatchSize: 1, FlushEvery: time.Millisecond, Timeout: time.Hour})
	d.Start()
	d.Submit(block(1, "d-1"))
	<-inApply // the sink now holds the worker

	accepted := make(chan []bool)
	go func() {
		accepted <- []bool{
			d.Submit(block(2, "d-2")),
			d.Submit(block(3, "d-3")),
			d.Submit(block(4, "d-4")),  // a third distinct key: queue full
			d.Submit(block(2, "d-2b")), // coalesces: no room needed
			d.Submit(block(5, "d-5")),  // still full
		}
	}()
	var got []bool
	select {
	case got = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit blocked behind a stuck sink")
	}
	if want := []bool{true, true, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("Submit returned %v, want %v", got, want)
	}
	if s := d.Stats()["r"]; s.Dropped != 2 || s.Queued != 3 {
		t.Errorf("stats %+v, want Dropped 2, Queued 3", s)
	}

	close(release)
	stop(t, d)
	var decisions []string
	for _, c := range r.changes() {
		decisions = append(decisions, c.Decision)
	}
	if want := []string{"d-1", "d-2b", "d-3"}; !slices.Equal(decisions, want) {
		t.Errorf("applied %v, want %v", decisions, want)
	}
	if d.Submit(block(6, "d-6")) {
		t.Error("Submit after Stop accepted a change")
	}
}

func TestDispatcherStopFlushesAndLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	var rs results
	sinks := []*recorder{{name: "a"}, {name: "b"}, {name: "c", apply: func(context.Context, int, []Change) error {
		return errors.New("down")
	}}}
	d := NewDispatcher(Config{
		Sinks:      []Sink{sinks[0], sinks[1], sinks[2]},
		FlushEvery: time.Hour,
		Backoff:    time.Hour, // a retry would wait; Stop must not
		OnResult:   rs.add,
	})
	d.Start()
	for i := range 5 {
		d.Submit(block(i, fmt.Sprint("d-", i)))
	}
	stop(t, d)
	stop(t, d) // twice is fine

	for _, r := range sinks[:2] {
		if n := len(r.changes()); n != 5 {
			t.Errorf("sink %s got %d changes on Stop, want 5", r.name, n)
		}
	}
	if got := rs.get(); !slices.ContainsFunc(got, func(r Result) bool { return r.Sink == "c" && r.Outcome == GivenUp && r.Attempt == 1 }) {
		t.Errorf("the failing sink's flush was not a single final attempt: %+v", got)
	}
	if s := d.Stats()["c"]; s.Failed != 5 {
		t.Errorf("failing sink stats %+v, want Failed 5", s)
	}
	waitFor(t, "the dispatcher's goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestDispatcherStopGivesUpWhenContextEnds(t *testing.T) {
	before := runtime.NumGoroutine()
	inApply := make(chan struct{})
	r := &recorder{name: "r", apply: func(ctx context.Context, _ int, _ []Change) error {
		close(inApply)
		<-ctx.Done()
		return ctx.Err()
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, BatchSize: 1, FlushEvery: time.Hour, Timeout: time.Hour})
	d.Submit(block(1, "d-1"))
	d.Submit(block(2, "d-2"))
	d.Submit(block(3, "d-3"))

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- d.Stop(ctx) }()
	<-inApply // flushing the first; the others wait
	cancel()
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("Stop = %v, want context.Canceled", err)
	}
	if s := d.Stats()["r"]; s.Failed != 1 || s.Dropped != 2 || s.Queued != 0 {
		t.Errorf("stats %+v, want Failed 1 (cancelled), Dropped 2 (never tried)", s)
	}
	waitFor(t, "the dispatcher's goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestBackoff(t *testing.T) {
	base, limit := 500*time.Millisecond, 30*time.Second
	for n, want := range map[int]time.Duration{1: base, 2: 2 * base, 3: 4 * base, 10: limit, 100: limit} {
		for range 100 {
			if got := backoff(base, limit, n); got < want/2 || got > want {
				t.Fatalf("backoff(%v, %d) = %v, want within [%v, %v]", base, n, got, want/2, want)
			}
		}
	}
}
