// Package pace is a CPU budget for background work: a token bucket filled
// with processing time at a fraction of the CPUs the Go runtime may use
// (runtime.GOMAXPROCS), and emptied by the work it paces.
//
// A worker calls Wait before a unit of work and Charge after it with the
// processing time the unit took; the cost of a unit is unknown before it
// runs, so the bucket may go into debt, and Wait holds the next unit until
// the debt is paid off. After an idle spell the bucket holds Burst, so a
// lone unit never waits. Only the paced work waits: whatever feeds it
// (a bounded queue, an HTTP request) keeps its own limits.
//
// The point is DNS: an event storm with an API quota large enough to
// answer thousands of validations a second would otherwise take a quarter
// of the server's CPU for a second or two. The budget spreads that work so
// that it never takes more than its fraction of the CPU in any second.
package pace

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// DefaultFraction is the share of the CPUs the paced work may take when
// the configuration names none: 3% of runtime.GOMAXPROCS(0). A validation
// costs some 50-300 µs of processing, so this is a hundred or more
// validations a second per CPU, above any Criminal IP plan's rate, while a
// storm of thousands of backtracked IPs at once leaves DNS the CPU it
// needs: what the budget does not see (net/http's reading of the
// requests, the transport's reading of the API's answers) comes on top,
// and a tagged client's answers cost DNS a few percent of their own, so at
// 5% a storm's worst second fell to 0.74-0.85 of a server without the
// plugin, at 3% to 0.81-1.04, 0.92 at the median (BENCHMARKS.md).
const DefaultFraction = 0.03

// MinFraction is the smallest fraction accepted: below it, a storm's
// validations would take hours.
const MinFraction = 0.001

// DefaultBurstFill is how long the bucket takes to fill: after an idle
// spell it holds this much time's worth of the budget.
const DefaultBurstFill = 100 * time.Millisecond

// MaxDebtFill bounds the debt: at most this much time's worth of the
// budget is owed, so no wait after a burst lasts longer. Where no thread
// CPU clock measures a unit, it is charged its wall time, which
// overlapping units on a busy machine overstate many times over; an
// unbounded debt would then hold validations back for minutes after a
// storm of events.
const MaxDebtFill = time.Second

// Config configures a Pacer. Zero fields take defaults.
type Config struct {
	// Fraction is the share of the CPUs the paced work may take, in
	// [MinFraction, 1]; DefaultFraction if 0.
	Fraction float64
	// Procs returns the number of CPUs the fraction is of;
	// runtime.GOMAXPROCS(0) if nil. It is read at every refill, so a
	// GOMAXPROCS that the runtime changes (a container's CPU limit) counts.
	Procs func() int
	// Burst is the most processing time the bucket holds; the fill of
	// DefaultBurstFill at the budget's rate if 0.
	Burst time.Duration
	Now   func() time.Time                     // time.Now if nil
	After func(time.Duration) <-chan time.Time // time.After if nil
	// CPU reads the processing clock of the calling goroutine's OS thread
	// for Unit, and whether it could; the thread's CPU clock if nil (a
	// test's clock stands in for it).
	CPU func() (time.Duration, bool)
}

// Pacer is a CPU budget shared by the workers it paces. It is safe for
// concurrent use; a nil *Pacer paces nothing.
type Pacer struct {
	fraction float64
	procs    func() int
	burst    time.Duration
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	cpu      func() (time.Duration, bool)

	mu      sync.Mutex
	tokens  time.Duration // negative: debt
	last    time.Time
	waited  [len(works)]time.Duration
	charged [len(works)]time.Duration
}

// Work is what waits on the budget, for Waited and the metric.
type Work int

// The paced work.
const (
	Validation Work = iota // a validation worker: API call, decode, evaluation, verdict
	Event                  // an event's intake: decode, tag, backtrack, answer
)

var works = [...]string{Validation: "validation", Event: "event"}

// String returns the work's metrics label.
func (w Work) String() string { return works[w] }

// New returns a full Pacer. It panics on a Fraction out of range: parse
// it with ParseFraction first.
func New(cfg Config) *Pacer {
	if cfg.Fraction == 0 {
		cfg.Fraction = DefaultFraction
	}
	if cfg.Fraction < MinFraction || cfg.Fraction > 1 {
		panic(fmt.Sprintf("pace: fraction %v out of [%v, 1]", cfg.Fraction, MinFraction))
	}
	if cfg.Procs == nil {
		cfg.Procs = func() int { return runtime.GOMAXPROCS(0) }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.CPU == nil {
		cfg.CPU = threadCPU
	}
	p := &Pacer{fraction: cfg.Fraction, procs: cfg.Procs, burst: cfg.Burst, now: cfg.Now, after: cfg.After, cpu: cfg.CPU}
	resolveMetrics()
	p.last = p.now()
	p.tokens = p.burstLocked(p.rateLocked())
	return p
}

// ParseFraction reads a Corefile's fraction: a number such as 0.05, or a
// percentage such as 5%, from MinFraction to 1 (100%).
func ParseFraction(s string) (float64, error) {
	num, scale := s, 1.0
	if len(s) > 1 && s[len(s)-1] == '%' {
		num, scale = s[:len(s)-1], 100
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f != f { // f != f: NaN
		return 0, fmt.Errorf("%q is not a fraction of the CPUs (such as 0.05 or 5%%)", s)
	}
	f /= scale
	if f < MinFraction || f > 1 {
		return 0, fmt.Errorf("%q is out of range: from %v (%v%%) to 1 (100%%) of the CPUs", s, MinFraction, MinFraction*100)
	}
	return f, nil
}

// Now reads the budget's clock: the one to measure the processing that
// Charge is told, which a settable clock of the caller's (a test's, an
// engine's) must not replace.
func (p *Pacer) Now() time.Time { return p.now() }

// Fraction returns the share of the CPUs the budget allows.
func (p *Pacer) Fraction() float64 { return p.fraction }

// rateLocked is the budget in seconds of processing per second.
func (p *Pacer) rateLocked() float64 {
	return p.fraction * float64(max(1, p.procs()))
}

func (p *Pacer) burstLocked(rate float64) time.Duration {
	if p.burst > 0 {
		return p.burst
	}
	return time.Duration(rate * float64(DefaultBurstFill))
}

// reserveLocked is what w leaves in the bucket for the work before it.
func (p *Pacer) reserveLocked(w Work, rate float64) time.Duration {
	if w == Event {
		return 0
	}
	return p.burstLocked(rate) / 2
}

// refillLocked adds the budget earned since the last refill, up to the
// burst, and returns the rate it used.
func (p *Pacer) refillLocked(now time.Time) float64 {
	rate := p.rateLocked()
	if elapsed := now.Sub(p.last); elapsed > 0 {
		p.tokens += time.Duration(rate * float64(elapsed))
		p.last = now
	}
	p.tokens = min(p.tokens, p.burstLocked(rate))
	return rate
}

// Wait returns once the budget is out of debt, at once if it is, or with
// ctx's error when ctx ends first. It takes nothing: the work w that
// follows is paid for by Charge. The time it held the caller counts
// towards Waited(w) and the wait metric.
//
// Events go first: a validation also waits for half the burst to be left,
// so that while events and validations both wait, the events take what
// the budget earns and the validations (most of them the events'
// backtracks, useless before the events' tags) resume once the events
// are through.
func (p *Pacer) Wait(ctx context.Context, w Work) error {
	if p == nil {
		return nil
	}
	var start time.Time
	for {
		p.mu.Lock()
		now := p.now()
		rate := p.refillLocked(now)
		debt := p.reserveLocked(w, rate) - p.tokens
		if debt <= 0 {
			if !start.IsZero() {
				p.addWaitedLocked(w, now.Sub(start))
			}
			p.mu.Unlock()
			return nil
		}
		if start.IsZero() {
			start = now
		}
		p.mu.Unlock()
		// Rounded up, so that the wake-up finds the debt paid.
		d := time.Duration(float64(debt)/rate) + 1
		select {
		case <-p.after(d):
		case <-ctx.Done():
			p.mu.Lock()
			p.addWaitedLocked(w, p.now().Sub(start))
			p.mu.Unlock()
			return ctx.Err()
		}
	}
}

// Charge pays for d of w's processing.
func (p *Pacer) Charge(w Work, d time.Duration) {
	if p == nil || d <= 0 {
		return
	}
	p.mu.Lock()
	rate := p.refillLocked(p.now())
	p.tokens = max(p.tokens-d, -time.Duration(rate*float64(MaxDebtFill)))
	p.charged[w] += d
	p.mu.Unlock()
	chargedSeconds[w].Add(d.Seconds())
}

// Charged returns the processing charged for w so far.
func (p *Pacer) Charged(w Work) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charged[w]
}

func (p *Pacer) addWaitedLocked(w Work, d time.Duration) {
	p.waited[w] += d
	waitSeconds[w].Add(d.Seconds())
}

// Waited returns the total time Wait has held w's callers so far.
func (p *Pacer) Waited(w Work) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waited[w]
}
