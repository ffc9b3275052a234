package validate_test

import (
	"context"
	"net/http/httptrace"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// clockReporter stands for the API on a test clock: each report costs
// work of processing (the clock moves while it runs), and, when the call
// has an HTTP trace, think of the server's own time between the request
// written and the answer's first byte, as an HTTP call would.
type clockReporter struct {
	clk   *testclock.Clock
	work  time.Duration
	think time.Duration
	calls atomic.Int32
}

func (r *clockReporter) Report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	r.calls.Add(1)
	if tr := httptrace.ContextClientTrace(ctx); tr != nil && r.think > 0 {
		tr.GetConn("api:443")
		r.clk.Advance(r.work / 2)
		tr.WroteRequest(httptrace.WroteRequestInfo{})
		r.clk.Advance(r.think)
		tr.GotFirstResponseByte()
		r.clk.Advance(r.work / 2)
	} else {
		r.clk.Advance(r.work)
	}
	return &criminalip.Report{IP: ip.String()}, nil
}

// noThreadClock makes a Pacer charge what the worker's meter measures on
// the test clock: the fallback where the system has no thread CPU clock.
func noThreadClock() (time.Duration, bool) { return 0, false }

// pacedQueue is a queue of one worker paced at fraction of one CPU on clk,
// charged by the worker's meter (noThreadClock).
func pacedQueue(t *testing.T, clk *testclock.Clock, rep validate.Reporter, fraction float64, done chan<- netip.Addr) *validate.Queue {
	t.Helper()
	p := pace.New(pace.Config{Fraction: fraction, Procs: func() int { return 1 }, Now: clk.Now, After: clk.After, CPU: noThreadClock})
	return newQueue(t, validate.Config{Client: rep, Workers: 1, Now: clk.Now, Pace: p,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { done <- v.IP }})
}

func received(t *testing.T, done <-chan netip.Addr, want netip.Addr) {
	t.Helper()
	select {
	case got := <-done:
		if got != want {
			t.Fatalf("verdict for %s, want %s", got, want)
		}
	case <-time.After(conditionTimeout):
		t.Fatalf("no verdict for %s", want)
	}
}

// TestPacedWorkerWaitsForItsBudget: with 10% of one CPU (a 10 ms bucket,
// of which validations leave 5 ms for events) and validations of 10 ms
// each, the first goes at once and empties the bucket, and the second
// waits the 50 ms the budget takes to earn back 5 ms.
func TestPacedWorkerWaitsForItsBudget(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	rep := &clockReporter{clk: clk, work: 10 * time.Millisecond}
	done := make(chan netip.Addr, 8)
	q := pacedQueue(t, clk, rep, 0.1, done)
	for i := range 2 {
		if r := q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High}); r != validate.Queued {
			t.Fatalf("Submit = %v", r)
		}
	}
	received(t, done, unknownIP(0))
	waitFor(t, "the worker to wait on the budget", func() bool { return clk.Timers() == 1 })
	clk.Advance(49 * time.Millisecond)
	if clk.Timers() != 1 || rep.calls.Load() != 1 {
		t.Fatalf("the second validation started before its budget: %d calls", rep.calls.Load())
	}
	clk.Advance(2 * time.Millisecond)
	received(t, done, unknownIP(1))
}

// TestPacedWorkerIsNotChargedForTheAPI: a call that waits a second for the
// API's answer costs the budget its 2 ms of work only, so the next job
// does not wait.
func TestPacedWorkerIsNotChargedForTheAPI(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	rep := &clockReporter{clk: clk, work: 2 * time.Millisecond, think: time.Second}
	done := make(chan netip.Addr, 8)
	q := pacedQueue(t, clk, rep, 0.1, done) // a 10 ms bucket
	for i := range 3 {
		q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High})
	}
	for i := range 3 {
		received(t, done, unknownIP(i))
	}
	if clk.Timers() != 0 {
		t.Fatal("a worker waits on the budget: the API's think time was charged")
	}
}

// TestPacedQueueDropsWithoutBlocking: while the workers wait on a spent
// budget, Submit neither blocks nor queues past the queue's size; the
// queued jobs run once the budget allows.
func TestPacedQueueDropsWithoutBlocking(t *testing.T) {
	clk := testclock.New(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	rep := &clockReporter{clk: clk, work: time.Second} // 10 s of budget at 10%
	p := pace.New(pace.Config{Fraction: 0.1, Procs: func() int { return 1 }, Now: clk.Now, After: clk.After, CPU: noThreadClock})
	done := make(chan netip.Addr, 8)
	q := newQueue(t, validate.Config{Client: rep, Workers: 1, QueueSize: 2, Now: clk.Now, Pace: p,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { done <- v.IP }})
	q.Submit(validate.Job{IP: unknownIP(0), Priority: validate.High})
	received(t, done, unknownIP(0))
	q.Submit(validate.Job{IP: unknownIP(1), Priority: validate.High}) // taken by the worker, which waits
	waitFor(t, "the worker to wait on the budget", func() bool { return clk.Timers() == 1 })
	var results []validate.Result
	within(t, "Submit while the workers wait", func() {
		for i := 2; i <= 4; i++ {
			results = append(results, q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High}))
		}
	})
	if want := []validate.Result{validate.Queued, validate.Queued, validate.Dropped}; !equalResults(results, want) {
		t.Fatalf("Submit results %v, want %v", results, want)
	}
	if got := q.Stats().Submitted["dropped"]; got != 1 {
		t.Fatalf("dropped counter %d, want 1", got)
	}
	clk.Advance(10 * time.Second)
	received(t, done, unknownIP(1))
}

func equalResults(a, b []validate.Result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitFor waits for cond, failing the test after conditionTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(conditionTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPacedWorkerOverHTTP: over real HTTP to the fake API, which holds
// each answer 500 ms, the worker is charged its processing only: had it
// been charged the API's 500 ms at 10% of one CPU, the second validation
// would wait about 5 s for the budget.
func TestPacedWorkerOverHTTP(t *testing.T) {
	fake, client := newFake(t)
	fake.SetDelay(500 * time.Millisecond)
	p := pace.New(pace.Config{Fraction: 0.1, Procs: func() int { return 1 }})
	q := newQueue(t, validate.Config{Client: client, Workers: 1, Pace: p})
	for i := range 2 {
		q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High})
	}
	for i := range 2 {
		if v := wait(t, q, unknownIP(i)); v.Outcome != verdicts.Clean {
			t.Fatalf("%s: %s, want clean", unknownIP(i), v.Outcome)
		}
	}
	if w := p.Waited(pace.Validation); w > 2*time.Second {
		t.Fatalf("the worker waited %v for the budget: the API's delay was charged", w)
	}
}

// TestPacedWorkerMeasuresOnTheBudgetsClock: the queue's own clock (an
// engine's, which tests set) moving an hour during a validation costs the
// budget nothing; only the budget's clock measures processing.
func TestPacedWorkerMeasuresOnTheBudgetsClock(t *testing.T) {
	queueClock := testclock.New(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	budgetClock := testclock.New(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	rep := &clockReporter{clk: queueClock, work: time.Hour}
	p := pace.New(pace.Config{Fraction: 0.1, Procs: func() int { return 1 }, Now: budgetClock.Now, After: budgetClock.After})
	done := make(chan netip.Addr, 8)
	q := newQueue(t, validate.Config{Client: rep, Workers: 1, Now: queueClock.Now, Pace: p,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { done <- v.IP }})
	for i := range 3 {
		q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High})
	}
	for i := range 3 {
		received(t, done, unknownIP(i))
	}
	if budgetClock.Timers() != 0 {
		t.Fatal("the worker waits on the budget for an hour of the queue's clock")
	}
}

// cpuReporter computes for each report on the goroutine that calls it, as
// criminalip.Client.ReportHere decodes the answer on the worker's
// goroutine; Report (a goroutine of its own) must not be used under a
// budget.
type cpuReporter struct {
	work, wait time.Duration // computing, then waiting (an answer's think time, without an HTTP trace)
	here, away atomic.Int32
}

func (r *cpuReporter) Report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	r.away.Add(1)
	return &criminalip.Report{IP: ip.String()}, nil
}

func (r *cpuReporter) ReportHere(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	r.here.Add(1)
	spin(r.work)
	time.Sleep(r.wait)
	return &criminalip.Report{IP: ip.String()}, nil
}

// spin computes for about d of wall time.
func spin(d time.Duration) {
	x := uint64(1)
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	spun.Add(x)
}

var spun atomic.Uint64

// TestPacedWorkerIsChargedTheCallsCPU: under a budget, the API call runs
// on the worker's goroutine and is charged as the worker's CPU time: 8
// calls that compute 10 ms and then wait 50 ms for an answer (with no HTTP
// trace to tell the wait apart, the wall-time meter would charge it) are
// charged at most their 80 ms of work, whatever else the CPUs run.
func TestPacedWorkerIsChargedTheCallsCPU(t *testing.T) {
	rep := &cpuReporter{work: 10 * time.Millisecond, wait: 50 * time.Millisecond}
	p := pace.New(pace.Config{Fraction: 1, Procs: func() int { return 1 }})
	if u := p.Begin(); u.End(-1) < 0 {
		t.Skip("no thread CPU clock on this system: validations are charged the meter's wall time")
	}
	q := newQueue(t, validate.Config{Client: rep, Workers: 4, Pace: p})
	for i := range 8 {
		q.Submit(validate.Job{IP: unknownIP(i), Priority: validate.High})
	}
	for i := range 8 {
		wait(t, q, unknownIP(i))
	}
	if rep.here.Load() != 8 || rep.away.Load() != 0 {
		t.Fatalf("%d calls on the worker's goroutine and %d on their own; want all 8 on the worker's", rep.here.Load(), rep.away.Load())
	}
	// The spin is 10 ms of wall time: on a busy machine the thread gets
	// less CPU than that, never more; a few ms for the rest of each job.
	if charged := p.Charged(pace.Validation); charged <= 0 || charged > 8*(10+5)*time.Millisecond {
		t.Fatalf("charged %v for 8 calls of 10 ms of work and 50 ms of waiting; want at most the work", charged)
	}
}
