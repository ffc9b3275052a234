package pace

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// newPacer returns a pacer on a test clock with procs CPUs.
func newPacer(fraction float64, procs int) (*Pacer, *testclock.Clock) {
	clk := testclock.New(t0)
	return New(Config{Fraction: fraction, Procs: func() int { return procs }, Now: clk.Now, After: clk.After}), clk
}

// waitTimers waits (real time, bounded) until n goroutines wait on clk.
func waitTimers(t *testing.T, clk *testclock.Clock, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Timers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters on the clock after 5s, want %d", clk.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLoneUnitDoesNotWait(t *testing.T) {
	p, clk := newPacer(0.05, 1)
	// A full bucket holds 5 ms (100 ms at 5%): a 2 ms unit goes at once,
	// and so does the next one, which finds the 2.5 ms a validation leaves
	// for events still there.
	for range 2 {
		if err := p.Wait(context.Background(), Validation); err != nil {
			t.Fatal(err)
		}
		p.Charge(Validation, 2*time.Millisecond)
	}
	if clk.Timers() != 0 || p.Waited(Validation) != 0 {
		t.Fatalf("waited %v with %d timers; a unit after idle must not wait", p.Waited(Validation), clk.Timers())
	}
}

// TestDebtHoldsTheNextUnit: a unit that overspends holds the next until the
// debt is earned back at fraction × GOMAXPROCS.
func TestDebtHoldsTheNextUnit(t *testing.T) {
	for _, procs := range []int{1, 2} {
		p, clk := newPacer(0.1, procs)
		burst := time.Duration(0.1 * float64(procs) * float64(DefaultBurstFill))
		p.Charge(Validation, burst+10*time.Millisecond) // 10 ms in debt
		done := make(chan error, 1)
		go func() { done <- p.Wait(context.Background(), Event) }()
		waitTimers(t, clk, 1)
		// 10 ms of debt at 0.1 CPU per CPU: 100 ms on one CPU, 50 on two.
		want := 100 * time.Millisecond / time.Duration(procs)
		clk.Advance(want - time.Millisecond)
		if clk.Timers() != 1 { // its timer fired: it would go 1 ms early
			t.Fatalf("procs %d: the unit's wait ended before its debt was earned back", procs)
		}
		clk.Advance(2 * time.Millisecond)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("procs %d: the unit still waits once its debt is earned back", procs)
		}
		if got := p.Waited(Event); got < want-time.Millisecond || got > want+time.Millisecond {
			t.Fatalf("procs %d: waited %v, want about %v", procs, got, want)
		}
		if p.Waited(Validation) != 0 {
			t.Fatalf("the wait counted for validation too")
		}
	}
}

// TestDebtIsBounded: a burst of overcharged units (wall time on a busy
// machine) owes at most MaxDebtFill's worth of the budget, so the next
// unit waits about that long, not until the whole charge is earned back.
func TestDebtIsBounded(t *testing.T) {
	p, clk := newPacer(0.05, 1)
	for range 500 {
		p.Charge(Validation, 100*time.Millisecond) // 50 s in all: 1,000 s at 5%
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background(), Event) }()
	waitTimers(t, clk, 1)
	clk.Advance(MaxDebtFill + time.Millisecond)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a unit still waits %v after a burst; the debt must be bounded", MaxDebtFill)
	}
}

// TestPacesWorkers: four workers whose units each cost 1 ms of processing
// run for 20 s of the test clock with a 5% budget on one CPU: in every
// second (after the first burst) they spend no more than the budget, and
// they do spend it.
func TestPacesWorkers(t *testing.T) {
	p, clk := newPacer(0.05, 1)
	ctx, cancel := context.WithCancel(context.Background())
	type unit struct{ at time.Time }
	units := make(chan unit, 4096)
	const workers = 4
	for range workers {
		go func() {
			for p.Wait(ctx, Validation) == nil {
				units <- unit{clk.Now()}
				p.Charge(Validation, time.Millisecond)
			}
		}()
	}
	end := t0.Add(20 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for clk.Now().Before(end) {
		if time.Now().After(deadline) {
			t.Fatal("the workers did not get through 20 s of the test clock in 30 s")
		}
		// Move the clock only once every worker waits on it, so that no
		// worker runs late and none is starved by the test.
		if clk.Timers() >= workers {
			clk.Advance(10 * time.Millisecond)
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
	cancel()
	clk.Advance(time.Hour) // wake the waiters to see ctx end
	perSecond := map[int]int{}
	for len(units) > 0 {
		u := <-units
		perSecond[int(u.at.Sub(t0)/time.Second)]++
	}
	// 5% of a second is 50 units of 1 ms; the first second also has the
	// 5 ms burst, and each second may start up to one unit per worker in
	// debt (the cost is charged after the unit).
	for s := 0; s < 20; s++ {
		n := perSecond[s]
		if n > 50+5+workers {
			t.Errorf("second %d: %d units of 1 ms, more than the 5%% budget allows", s, n)
		}
		if s > 0 && n < 45 {
			t.Errorf("second %d: only %d units of 1 ms; the budget allows 50", s, n)
		}
	}
	if p.Waited(Validation) == 0 {
		t.Error("no wait counted")
	}
}

// TestEventsGoFirst: when an event and a validation both wait, the event
// goes once the debt is paid, the validation once half the burst is back
// as well.
func TestEventsGoFirst(t *testing.T) {
	p, clk := newPacer(0.1, 1)                                 // a 10 ms bucket, 5 ms kept for events
	p.Charge(Validation, 10*time.Millisecond+time.Millisecond) // 1 ms in debt
	event, validation := make(chan error, 1), make(chan error, 1)
	go func() { event <- p.Wait(context.Background(), Event) }()
	go func() { validation <- p.Wait(context.Background(), Validation) }()
	waitTimers(t, clk, 2)
	clk.Advance(11 * time.Millisecond) // 1.1 ms earned: out of debt
	select {
	case <-event:
	case <-time.After(5 * time.Second):
		t.Fatal("the event still waits once the debt is paid")
	}
	if clk.Timers() != 1 { // the validation's wait, for 60 ms in all
		t.Fatal("the validation went with the event")
	}
	clk.Advance(50 * time.Millisecond)
	select {
	case <-validation:
	case <-time.After(5 * time.Second):
		t.Fatal("the validation still waits once half the burst is back")
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	p, clk := newPacer(0.01, 1)
	p.Charge(Validation, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, Validation) }()
	waitTimers(t, clk, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return when its context ended")
	}
}

func TestNilPacerPacesNothing(t *testing.T) {
	var p *Pacer
	p.Charge(Validation, time.Hour)
	if err := p.Wait(context.Background(), Validation); err != nil || p.Waited(Validation) != 0 {
		t.Fatalf("nil pacer: Wait = %v, Waited = %v", err, p.Waited(Validation))
	}
}

func TestParseFraction(t *testing.T) {
	for in, want := range map[string]float64{"0.05": 0.05, "5%": 0.05, "1": 1, "100%": 1, "0.001": 0.001, "0.5%": 0.005} {
		got, err := ParseFraction(in)
		if err != nil || got != want {
			t.Errorf("ParseFraction(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"fast": "is not a fraction", "": "is not a fraction", "%": "is not a fraction", "NaN": "is not a fraction",
		"0": "out of range", "1.5": "out of range", "150%": "out of range", "0.0001": "out of range", "-0.1": "out of range",
	} {
		if _, err := ParseFraction(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseFraction(%q) = %v, want an error saying %q", in, err, msg)
		}
	}
}

// burn spins for about d of the calling thread's CPU time (as far as the
// thread clock can tell; on a system without one, d of wall time).
func burn(d time.Duration) {
	start, ok := threadCPU()
	t0 := time.Now()
	spinUntil(func() bool {
		now, _ := threadCPU()
		return ok && now-start >= d || !ok && time.Since(t0) >= d
	})
}

// spinWall computes for d of wall time.
func spinWall(d time.Duration) {
	t0 := time.Now()
	spinUntil(func() bool { return time.Since(t0) >= d })
}

// spinUntil computes until done says so.
func spinUntil(done func() bool) {
	x := uint64(1)
	for !done() {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink.Add(x)
}

var sink atomic.Uint64 // keeps spinUntil's loop

// TestUnitIsChargedItsOwnWork: a unit that waits while other goroutines
// keep the CPU busy (DNS, on a loaded server) is charged what it computed,
// not the wall time it spanned, which wall-clock charging would be.
func TestUnitIsChargedItsOwnWork(t *testing.T) {
	if _, ok := threadCPU(); !ok {
		t.Skip("no thread CPU clock on this system: units fall back to the caller's wall time")
	}
	p := New(Config{})
	worked := make(chan struct{})
	release := make(chan struct{})
	result := make(chan [2]time.Duration, 1)
	go func() {
		start := time.Now()
		u := p.Begin()
		burn(5 * time.Millisecond) // its own work
		close(worked)
		<-release // meanwhile another goroutine burns 100 ms
		result <- [2]time.Duration{u.End(time.Hour), time.Since(start)}
	}()
	// The other goroutine starts only once the unit has begun, so the
	// unit's wall span covers all of its 100 ms (a thread's CPU time never
	// runs ahead of the wall clock).
	<-worked
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		burn(100 * time.Millisecond)
		close(done)
	}()
	<-done
	close(release)
	r := <-result
	charged, wall := r[0], r[1]
	if charged < 5*time.Millisecond || charged > 50*time.Millisecond {
		t.Fatalf("unit charged %v over %v of wall time; want its own 5 ms of work, not the other goroutine's 100 ms", charged, wall)
	}
	if wall < 100*time.Millisecond {
		t.Fatalf("the unit spanned only %v; the test did not make it wait", wall)
	}
}

// TestUnitFallsBack: without a thread clock, a unit is charged what the
// caller measured itself.
func TestUnitFallsBack(t *testing.T) {
	p := New(Config{CPU: func() (time.Duration, bool) { return 0, false }})
	u := p.Begin()
	if got := u.End(42 * time.Millisecond); got != 42*time.Millisecond {
		t.Fatalf("End = %v without a clock, want the fallback 42ms", got)
	}
	var nilPacer *Pacer
	if got := nilPacer.Begin().End(time.Second); got != time.Second {
		t.Fatalf("a nil Pacer's unit = %v, want the fallback", got)
	}
}

// TestMeterWrites: a metered connection's writes are charged to the budget
// as validation work; its reads are not.
func TestMeterWrites(t *testing.T) {
	if _, ok := threadCPU(); !ok {
		t.Skip("no thread CPU clock on this system")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{})
	c := p.MeterWrites(raw)
	buf := make([]byte, 64<<10)
	for range 256 { // 16 MiB
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if n := <-got; n != 256*int64(len(buf)) {
		t.Fatalf("the other end read %d bytes", n)
	}
	if p.Charged(Validation) <= 0 || p.Charged(Event) != 0 {
		t.Fatalf("charged validation %v, event %v for 16 MiB written; want validation > 0", p.Charged(Validation), p.Charged(Event))
	}
	if New(Config{}).MeterWrites(raw) == raw || (*Pacer)(nil).MeterWrites(raw) != raw {
		t.Fatal("a nil Pacer must leave the connection as it is, and only it")
	}
}

// TestUnitWaitIsNotCharged: what a unit's goroutine does between Wait and
// Compute is not charged: it has let go of its thread.
func TestUnitWaitIsNotCharged(t *testing.T) {
	if _, ok := threadCPU(); !ok {
		t.Skip("no thread CPU clock on this system")
	}
	p := New(Config{})
	u := p.Begin()
	burn(5 * time.Millisecond)
	u.Wait()
	spinWall(60 * time.Millisecond) // computing, but not the unit's: not charged
	u.Compute()
	burn(5 * time.Millisecond)
	if got := u.End(time.Hour); got < 10*time.Millisecond || got > 40*time.Millisecond {
		t.Fatalf("unit charged %v; want its 10 ms, not the 60 ms between Wait and Compute", got)
	}
	var nilUnit *Unit
	nilUnit.Wait()
	nilUnit.Compute()
}
