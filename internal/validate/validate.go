// Package validate is the validation queue: public IPs that need a verdict
// wait in it, and a pool of workers asks the Criminal IP API about them,
// evaluates the reports and caches the verdicts.
//
// Submit is called on the DNS path, so it never blocks: a cached IP is not
// queued, an IP already queued or being validated is not queued twice, and a
// full queue drops the job (the IP is asked about again the next time it is
// seen). There are two priorities, each with its own bounded queue: event
// backtracks go first, live answers of tagged clients after.
package validate

import (
	"context"
	"errors"
	"net/http/httptrace"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Defaults for Config fields left zero.
const (
	DefaultWorkers   = 4
	DefaultQueueSize = 4096
)

// Priority orders jobs: workers take every High job before any Low one.
type Priority int

// The priorities. The zero value is Low.
const (
	Low  Priority = iota // live answers of tagged clients
	High                 // IPs backtracked from an event's window
)

// Reporter fetches a Criminal IP report; *criminalip.Client is one.
type Reporter interface {
	Report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error)
}

// Config configures a Queue. Zero fields take defaults; Client and Cache
// are required.
type Config struct {
	Client Reporter
	Cache  *verdicts.Cache
	// Policy evaluates reports. A zero Policy, which would call every IP
	// clean, means risk.DefaultPolicy().
	Policy    risk.Policy
	Workers   int // DefaultWorkers if <= 0
	QueueSize int // per priority; DefaultQueueSize if <= 0
	// OnVerdict, if set, is called by the worker once per fresh verdict
	// (never for a cache hit), after the verdict is cached and its waiters
	// are released. It runs on the worker, so it must not block for long,
	// and must not call Stop, which waits for the workers.
	OnVerdict func(v verdicts.Verdict, job Job)
	Now       func() time.Time // time.Now if nil
	// Remote, if set, is a cache shared with other nodes (a fleet on
	// Redis) consulted after a local miss, before calling the API.
	Remote Remote
	// OnRemote, if set, is called for a verdict another node reached,
	// after it is cached here (OnVerdict is not: the deciding node acts).
	OnRemote func(v verdicts.Verdict, job Job)
	// Budget, if set, is asked before every API call (by the job's Class);
	// a refused job ends with an error verdict of kind budget that is not
	// cached (the IP is not validated, and is asked about again when next
	// seen) but goes to OnVerdict like an API failure. A quota error
	// exhausts the budget.
	Budget *budget.Budget
	// Pace, if set, is the CPU budget of the workers: each waits on it
	// before taking a job and charges it the job's processing time (see
	// run). Submit never waits on it; a queue that fills while the
	// workers wait drops as it always does.
	Pace *pace.Pacer
}

// Remote is a verdict cache shared by several nodes.
type Remote interface {
	// Acquire returns the verdict another node reached for ip, or, when
	// there is none, lets this node validate it: release must be called
	// after Store (it ends a claim that keeps other nodes from calling the
	// API for the same IP meanwhile).
	Acquire(ctx context.Context, ip netip.Addr) (v verdicts.Verdict, found bool, release func())
	// Store shares a fresh verdict (errors are not shared).
	Store(ctx context.Context, v verdicts.Verdict)
}

// Job asks for a verdict on IP. Client, Name and Event say why, for
// OnVerdict; Hints go to the evaluator.
type Job struct {
	IP       netip.Addr
	Priority Priority
	Hints    risk.Hints
	Client   netip.Addr // the DNS client that resolved IP
	Name     string     // the name IP was an answer for
	Event    string     // the event that backtracked IP, if any
	// Recheck asks the API again although an error verdict is cached (a
	// retry after a failure): only a clean or suspicious verdict counts
	// as cached for it.
	Recheck bool
	// Class is what the call is worth to the API budget (zero: an event's
	// backtrack).
	Class budget.Class
}

// Result is what Submit did with a job.
type Result int

// The results of Submit.
const (
	Queued   Result = iota // queued for a worker
	Cached                 // a verdict is cached; nothing queued
	InFlight               // the IP is already queued or being validated
	Dropped                // queue full, queue stopped, or IP not public
)

var resultNames = [...]string{Queued: "queued", Cached: "cached", InFlight: "in_flight", Dropped: "dropped"}

// String returns the result's metrics label.
func (r Result) String() string {
	if r < 0 || int(r) >= len(resultNames) {
		return "unknown"
	}
	return resultNames[r]
}

var outcomes = [...]verdicts.Outcome{verdicts.Clean, verdicts.Suspicious, verdicts.Error}

// Stats are cumulative counters since New. Every map holds every key,
// zeros included, so that metrics can be exported before anything happens.
type Stats struct {
	Submitted map[string]uint64               // Submit calls by Result.String()
	Verdicts  map[string]uint64               // fresh verdicts by Outcome
	APIErrors map[criminalip.ErrorKind]uint64 // failed reports by criminalip.Kind; each is also an error verdict
	// Discarded counts queued jobs that ended without a verdict: the queue
	// was stopped, or the Reporter refused the IP as not public.
	Discarded uint64
}

// pending is an IP that is queued or being validated. Its waiters wait for
// done to close; verdict and ok are set before that.
type pending struct {
	job      Job
	queuedIn Priority // the queue holding its live entry
	running  bool
	done     chan struct{}
	verdict  verdicts.Verdict
	ok       bool
}

// Queue is the validation queue. It is safe for concurrent use.
type Queue struct {
	client    Reporter
	cache     *verdicts.Cache
	policy    risk.Policy
	workers   int
	size      int
	onVerdict func(verdicts.Verdict, Job)
	onRemote  func(verdicts.Verdict, Job)
	remote    Remote
	budget    *budget.Budget
	pace      *pace.Pacer
	now       func() time.Time

	// ctx ends when the queue stops, cancelling API calls in flight.
	ctx    context.Context
	cancel context.CancelFunc
	start  sync.Once
	wg     sync.WaitGroup

	mu      sync.Mutex
	wake    *sync.Cond // signalled when a job is queued or the queue stops
	stopped bool
	pending map[netip.Addr]*pending
	high    []*pending
	low     []*pending
	// staleLow counts entries of low that were promoted to high; they stay
	// in low, to be skipped, because removing from the middle costs O(n).
	staleLow int

	submitted [len(resultNames)]atomic.Uint64
	verdicts  [len(outcomes)]atomic.Uint64
	discarded atomic.Uint64
	errMu     sync.Mutex
	apiErrors map[criminalip.ErrorKind]uint64
}

// New returns a stopped queue; Submit may queue jobs before Start. It
// panics if cfg.Client or cfg.Cache is nil.
func New(cfg Config) *Queue {
	if cfg.Client == nil || cfg.Cache == nil {
		panic("validate: Config.Client and Config.Cache are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if countsNothing(cfg.Policy) {
		cfg.Policy = risk.DefaultPolicy()
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		client:    cfg.Client,
		cache:     cfg.Cache,
		policy:    cfg.Policy,
		workers:   cfg.Workers,
		size:      cfg.QueueSize,
		onVerdict: cfg.OnVerdict,
		onRemote:  cfg.OnRemote,
		remote:    cfg.Remote,
		budget:    cfg.Budget,
		pace:      cfg.Pace,
		now:       cfg.Now,
		ctx:       ctx,
		cancel:    cancel,
		pending:   make(map[netip.Addr]*pending),
		apiErrors: make(map[criminalip.ErrorKind]uint64),
	}
	q.wake = sync.NewCond(&q.mu)
	return q
}

// countsNothing reports whether p counts no factor: only the zero Policy
// does, since risk refuses to build one with an empty factor list.
func countsNothing(p risk.Policy) bool {
	for _, group := range risk.Groups {
		for _, f := range group {
			if p.Counts(f) {
				return false
			}
		}
	}
	return true
}

// Start starts the workers. Calls after the first, or after Stop, do
// nothing: a stopped queue stays stopped.
func (q *Queue) Start() {
	q.start.Do(func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.stopped {
			return
		}
		for range q.workers {
			q.wg.Go(q.work)
		}
	})
}

// Stop stops the workers and waits for them to return. API calls in flight
// are cancelled and queued jobs discarded; neither leaves a verdict, and
// their waiters are released with none. Later Submits are dropped. Stop is
// safe to call more than once.
func (q *Queue) Stop() {
	q.mu.Lock()
	q.stopped = true
	q.wake.Broadcast()
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()

	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range q.pending {
		q.discardLocked(p)
	}
	q.high, q.low, q.staleLow = nil, nil, 0
}

// Submit asks for a verdict on j.IP without ever blocking. It returns
// Cached if a verdict is cached, InFlight if the IP is already queued or
// being validated, Dropped if the IP is not public, the queue for j's
// priority is full or the queue is stopped, and Queued otherwise.
//
// A High job for an IP queued as Low promotes it: it moves to the end of
// the High queue (if that has room), and OnVerdict gets the High job.
func (q *Queue) Submit(j Job) Result { return q.SubmitAt(j, q.now()) }

// SubmitAt is Submit for a caller that has read the clock already: now is
// the time the verdict cache is consulted at.
func (q *Queue) SubmitAt(j Job, now time.Time) Result {
	j.IP = j.IP.Unmap()
	if q.cached(j, now) {
		return q.count(Cached)
	}
	if !publicip.Is(j.IP) {
		return q.count(Dropped)
	}
	high := j.Priority >= High

	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return q.count(Dropped)
	}
	if p := q.pending[j.IP]; p != nil {
		if j.Recheck && !p.running {
			p.job.Recheck = true
		}
		if high && !p.running && p.queuedIn == Low && len(q.high) < q.size {
			p.job, p.queuedIn = j, High
			q.high = append(q.high, p)
			q.staleLow++
		}
		q.mu.Unlock()
		return q.count(InFlight)
	}
	depthHigh, depthLow := q.depthLocked()
	if (high && depthHigh >= q.size) || (!high && depthLow >= q.size) {
		q.mu.Unlock()
		return q.count(Dropped)
	}
	p := &pending{job: j, done: make(chan struct{})}
	if high {
		p.queuedIn = High
		q.high = append(q.high, p)
	} else {
		q.low = append(q.low, p)
	}
	q.pending[j.IP] = p
	q.mu.Unlock()
	q.wake.Signal()
	return q.count(Queued)
}

// cached reports whether a verdict that answers j is cached at now.
func (q *Queue) cached(j Job, now time.Time) bool {
	if !j.Recheck {
		return q.cache.Has(j.IP, now)
	}
	v, ok := q.cache.Get(j.IP, now)
	return ok && v.Outcome != verdicts.Error
}

// CountCached counts n submissions the caller answered from verdicts it
// found cached (verdicts.Cache.Probe), as SubmitAt counts one it answers
// Cached.
func (q *Queue) CountCached(n int) { q.submitted[Cached].Add(uint64(n)) }

func (q *Queue) count(r Result) Result {
	q.submitted[r].Add(1)
	return r
}

// Wait returns ip's verdict: the cached one at once, or, if ip is queued
// or being validated, the one it gets. It returns false if ctx ends first,
// if ip is neither cached nor pending, or if the job ends without a verdict
// (queue stopped). An error verdict is returned as such, with true: what an
// error means for the answer is the caller's policy.
func (q *Queue) Wait(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool) {
	ip = ip.Unmap()
	if v, ok := q.cache.Get(ip, q.now()); ok {
		return v, true
	}
	q.mu.Lock()
	p := q.pending[ip]
	q.mu.Unlock()
	if p == nil {
		// The verdict may have landed between the two looks.
		return q.cache.Get(ip, q.now())
	}
	select {
	case <-p.done:
		return p.verdict, p.ok
	case <-ctx.Done():
		return verdicts.Verdict{}, false
	}
}

// Depth returns the number of jobs queued at each priority, not counting
// those being validated.
func (q *Queue) Depth() (high, low int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depthLocked()
}

func (q *Queue) depthLocked() (high, low int) {
	return len(q.high), len(q.low) - q.staleLow
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	s := Stats{
		Submitted: make(map[string]uint64, len(resultNames)),
		Verdicts:  make(map[string]uint64, len(outcomes)),
		APIErrors: make(map[criminalip.ErrorKind]uint64),
		Discarded: q.discarded.Load(),
	}
	for r, name := range resultNames {
		s.Submitted[name] = q.submitted[r].Load()
	}
	for i, o := range outcomes {
		s.Verdicts[string(o)] = q.verdicts[i].Load()
	}
	for _, err := range []error{criminalip.ErrBadKey, criminalip.ErrQuota, criminalip.ErrTransient,
		criminalip.ErrBadResponse, criminalip.ErrRejected} {
		s.APIErrors[criminalip.Kind(err)] = 0
	}
	q.errMu.Lock()
	for kind, n := range q.apiErrors {
		s.APIErrors[kind] = n
	}
	q.errMu.Unlock()
	return s
}

// work runs jobs until the queue stops, each once the CPU budget allows.
// A job waiting for the budget is out of its queue but still pending, so
// it is neither queued twice nor counted against the queue's size.
func (q *Queue) work() {
	for {
		p := q.next()
		if p == nil {
			return
		}
		if q.pace.Wait(q.ctx, pace.Validation) != nil { // stopped
			q.mu.Lock()
			q.discardLocked(p)
			q.mu.Unlock()
			return
		}
		q.run(p)
	}
}

// next waits for a job, High before Low, and marks it running; nil means
// the queue stopped.
func (q *Queue) next() *pending {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.stopped {
		if len(q.high) > 0 {
			p := q.high[0]
			q.high[0] = nil
			q.high = q.high[1:]
			p.running = true
			return p
		}
		if len(q.low) > 0 {
			p := q.low[0]
			q.low[0] = nil
			q.low = q.low[1:]
			if p.queuedIn != Low {
				q.staleLow-- // promoted: its High entry was or will be run
				continue
			}
			p.running = true
			return p
		}
		q.wake.Wait()
	}
	return nil
}

// run validates one job: the cache again (something else may have put a
// verdict since Submit), then the API, the policy and the cache. Its
// processing is charged to the CPU budget: the CPU time of the worker's
// thread (pace.Unit; the API call runs on it, see report), or where the
// system has no thread clock the meter's wall time less the waits.
func (q *Queue) run(p *pending) {
	if q.pace == nil {
		q.validate(q.ctx, p, nil)
		return
	}
	u := q.pace.Begin()
	m := newMeter(q.pace.Now, u)
	ctx := criminalip.WithMeter(httptrace.WithClientTrace(q.ctx, m.trace()), u)
	q.validate(ctx, p, m)
	q.pace.Charge(pace.Validation, u.End(m.busy()))
}

// hereReporter is a Reporter that can make a call on the calling
// goroutine (criminalip.Client.ReportHere).
type hereReporter interface {
	ReportHere(ctx context.Context, ip netip.Addr) (*criminalip.Report, error)
}

// report calls the API for ip: on the worker's own goroutine under a CPU
// budget, so that the answer's reading and decoding are on the thread
// whose CPU time is charged (the worker's Unit, in ctx, lets go of the
// thread while the call waits).
func (q *Queue) report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	if h, ok := q.client.(hereReporter); ok && q.pace != nil {
		return h.ReportHere(ctx, ip)
	}
	return q.client.Report(ctx, ip)
}

// validate is run's work; m, if set, is told which parts of it wait.
func (q *Queue) validate(ctx context.Context, p *pending, m *meter) {
	job := p.job
	if v, ok := q.cache.Get(job.IP, q.now()); ok && !(job.Recheck && v.Outcome == verdicts.Error) {
		q.finish(p, v, true)
		return
	}
	if q.remote != nil {
		m.waitFrom(m.clock())
		rv, found, release := q.remote.Acquire(q.ctx, job.IP)
		m.waitTo(m.clock())
		if found {
			rv = q.cache.Put(rv, q.now())
			q.finish(p, rv, true)
			if q.onRemote != nil {
				q.onRemote(rv, job)
			}
			return
		}
		defer release()
	}
	if q.budget != nil && !q.budget.Take(job.Class, q.now()) {
		v := verdicts.Verdict{IP: job.IP, Outcome: verdicts.Error, Error: criminalip.KindBudget}
		q.finish(p, v, true)
		if q.onVerdict != nil {
			q.onVerdict(v, job)
		}
		return
	}
	m.reportFrom(m.clock())
	rep, err := q.report(ctx, job.IP)
	m.reportTo(m.clock())
	if q.budget != nil && errors.Is(err, criminalip.ErrQuota) {
		q.budget.Exhaust(q.now())
	}
	var v verdicts.Verdict
	switch {
	case err == nil && rep != nil:
		// The verdict is what the report alone says: it is cached and shared
		// for every client, so the job's hints (a fact about one connection)
		// stay out of it; the engine adds them to the job's finding.
		ev := q.policy.Evaluate(rep, risk.Hints{})
		v = verdicts.Verdict{IP: job.IP, Outcome: verdicts.Clean, Reasons: ev.Reasons, Score: ev.Score, Domains: rep.Domains}
		if ev.Suspicious {
			v.Outcome = verdicts.Suspicious
			v.Decision = verdicts.NewDecisionID()
			v.Scope = q.policy.ScopeOf(ev.Reasons)
			v.Evidence = verdicts.EvidenceOf(rep)
		}
	case err == nil:
		// A Reporter that returns neither a report nor an error breaks its
		// contract; evaluating nothing would call the IP clean.
		v = q.failed(job.IP, criminalip.ErrBadResponse)
	case errors.Is(err, criminalip.ErrNotPublic), q.ctx.Err() != nil:
		// Not an answer about the IP: it is not to be asked about, or we
		// are shutting down. Caching an error would hold it for nothing.
		q.mu.Lock()
		q.discardLocked(p)
		q.mu.Unlock()
		return
	default:
		v = q.failed(job.IP, err)
	}
	v = q.cache.Put(v, q.now())
	if q.remote != nil && v.Outcome != verdicts.Error {
		m.waitFrom(m.clock())
		q.remote.Store(q.ctx, v)
		m.waitTo(m.clock())
	}
	// Counted before the waiters are released, so that they see it in Stats.
	for i, o := range outcomes {
		if o == v.Outcome {
			q.verdicts[i].Add(1)
		}
	}
	q.finish(p, v, true)
	if q.onVerdict != nil {
		q.onVerdict(v, job)
	}
}

// failed returns the error verdict for err and counts it.
func (q *Queue) failed(ip netip.Addr, err error) verdicts.Verdict {
	kind := criminalip.Kind(err)
	q.errMu.Lock()
	q.apiErrors[kind]++
	q.errMu.Unlock()
	return verdicts.Verdict{IP: ip, Outcome: verdicts.Error, Error: kind}
}

// finish ends p with verdict v (ok false: none) and releases its waiters.
// v is already cached, so no Submit in between sees neither.
func (q *Queue) finish(p *pending, v verdicts.Verdict, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p.verdict, p.ok = v, ok
	q.endLocked(p)
}

// discardLocked ends p without a verdict.
func (q *Queue) discardLocked(p *pending) {
	q.discarded.Add(1)
	q.endLocked(p)
}

func (q *Queue) endLocked(p *pending) {
	if q.pending[p.job.IP] == p {
		delete(q.pending, p.job.IP)
	}
	close(p.done)
}
