package sink

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultQueueSize  = 10000
	DefaultBatchSize  = 256
	DefaultAttempts   = 5
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultTimeout    = 10 * time.Second
)

// Config configures a Dispatcher. Zero values take the defaults.
type Config struct {
	Sinks []Sink
	// Ledgers, if set, holds one Ledger per sink, in the order of Sinks (a
	// nil entry: none for that sink). A sink's Ledger records what it
	// acknowledged, for Reconcile; it may outlive the Dispatcher.
	Ledgers []*Ledger
	// Journals, if set, holds one Journal per sink, in the order of Sinks
	// (a nil entry: none for that sink): what the sink has not
	// acknowledged, kept where it outlives the process.
	Journals  []Journal
	QueueSize int // per sink, distinct keys waiting; default 10000
	BatchSize int // changes per Apply; default 256
	// FlushEvery is how long a change that finds its sink idle waits for
	// others to share its Apply; default 0: it goes at once. Changes that
	// arrive while an Apply is under way go together right after it, so a
	// burst is batched all the same.
	FlushEvery time.Duration
	// Attempts is how many failed attempts in a row make a sink's failure
	// worth reporting (OnResult with Outcome Failing, once per run of
	// failures); default 5. Its changes stay queued whatever the count:
	// they are tried until they are applied, superseded, or their block
	// ends, or the Dispatcher stops.
	Attempts   int
	Backoff    time.Duration // after a failed attempt; doubled per failure in a row, with jitter; default 500ms
	MaxBackoff time.Duration // the longest backoff; default 30s
	Timeout    time.Duration // per Apply call (the whole batch); default 10s

	// OnResult, if set, is called after every Apply attempt, and for
	// blocks that ended while queued, for metrics, logs and the audit log.
	// It is called from the sinks' goroutines, so concurrently for
	// different sinks, and must not keep or modify Batch.
	OnResult func(r Result)

	// Now and After are the Dispatcher's clock, by which a queued block's
	// TTL runs down and backoffs end; nil: the time package's (tests give
	// a simulated one).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Outcome is what became of the changes of one Result.
type Outcome int

// The outcomes.
const (
	// Applied: the sink applied the batch.
	Applied Outcome = iota
	// Retrying: the attempt failed; the changes stay queued (unless newer
	// ones for their keys came meanwhile) and are tried again after a
	// backoff.
	Retrying
	// Failing: as Retrying, and this was the sink's Attempts-th failure in
	// a row: reported once per run of failures, so that a long outage
	// makes one report, not one per retry.
	Failing
	// GivenUp: the attempt failed while the Dispatcher stopped, or the
	// batch holds a change no retry can carry out (ErrInvalidChange): the
	// changes are dropped, counted in Failed.
	GivenUp
	// Expired: blocks whose TTL ran out while they were queued; nothing is
	// left to apply (Err is nil, Attempt 0).
	Expired
)

var outcomeNames = [...]string{"applied", "retrying", "failing", "given up", "expired"}

func (o Outcome) String() string { return outcomeNames[o] }

// ErrInvalidChange marks a change a sink cannot carry out as given (a
// block without a positive TTL, a change without an IP): the Dispatcher
// does not retry a batch whose error wraps it.
var ErrInvalidChange = errors.New("invalid change")

// Result reports one Apply attempt, or blocks that expired queued.
type Result struct {
	Sink    string
	Index   int // the sink's position in Config.Sinks
	Batch   []Change
	Attempt int // failed attempts of the sink in a row before this one, plus one
	Err     error
	Outcome Outcome
}

// SinkStats counts what a Dispatcher did for one sink. Counts are changes,
// not batches, except Retries.
type SinkStats struct {
	Queued  int    // now: waiting, plus the batch being applied
	Applied uint64 // applied successfully
	Failed  uint64 // given up: failed while stopping, or invalid
	Dropped uint64 // refused (queue full, or stopped), or left unflushed by Stop
	Expired uint64 // blocks whose TTL ran out while queued
	Retries uint64 // Apply calls after a failed one
}

// Journal keeps what one sink has not acknowledged where a restart finds
// it (a state directory), so that a change pending when the process
// stopped, or was killed, can be sent again by the next one (see
// Dispatcher.Resend). A Dispatcher tells it, under the sink's queue lock
// and so in the order the queue changed, of each change queued for the
// sink (Pending, superseding any earlier one of its key) and of each
// change that was the last of its key and is done with (Settled: applied,
// expired, or invalid). A change dropped by Stop, or given up while
// stopping, stays pending. Settled passes the change, not only its key,
// so that a journal shared by two Dispatchers (a reload, while the old
// one flushes) keeps a newer change the other one queued. Its methods
// must not wait (for a disk, say): Submit calls them.
type Journal interface {
	Pending(c Change, at time.Time)
	Settled(c Change)
}

// Dispatcher feeds every sink from its own goroutine and queue. The queue
// holds at most one change per Key: a newer change replaces a queued one,
// so a burst for one IP costs one Apply, and a block followed by an
// unblock before it went sends only the unblock.
//
// A change that finds its sink idle goes at once; what arrives while an
// Apply is under way goes in one batch after it. A failed batch goes back
// to the queue, where newer changes for its keys replace it, and the sink
// is tried again after a backoff that grows up to MaxBackoff: changes are
// never abandoned while the Dispatcher runs, only superseded, or dropped
// when their block has ended. A failing sink never holds back the others.
type Dispatcher struct {
	cfg     Config
	workers []*worker

	startOnce sync.Once
	stopOnce  sync.Once
	stopping  chan struct{} // closed by Stop: accept nothing, flush, exit
	done      chan struct{} // closed when every worker has returned
	wg        sync.WaitGroup

	// ctx bounds every Apply; cancelled once Stop's context ends, so that
	// a Stop never waits longer than its caller allowed.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewDispatcher returns a Dispatcher for cfg.Sinks. Changes may be
// submitted at once; they are delivered after Start.
func NewDispatcher(cfg Config) *Dispatcher {
	defaults := []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.Backoff, DefaultBackoff}, {&cfg.MaxBackoff, DefaultMaxBackoff}, {&cfg.Timeout, DefaultTimeout}}
	for _, d := range defaults {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	d := &Dispatcher{
		cfg:      cfg,
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for i, s := range cfg.Sinks {
		w := &worker{
			d:       d,
			index:   i,
			sink:    s,
			name:    s.Name(),
			pending: make(map[Key]queued),
			flying:  make(map[Key]queued),
			wake:    make(chan struct{}, 1),
		}
		w.notifier, _ = s.(Notifier)
		if i < len(cfg.Ledgers) {
			w.ledger = cfg.Ledgers[i]
		}
		if i < len(cfg.Journals) {
			w.journal = cfg.Journals[i]
		}
		d.workers = append(d.workers, w)
	}
	return d
}

// Start starts one goroutine per sink. Calling it again, or after Stop,
// does nothing.
func (d *Dispatcher) Start() {
	d.startOnce.Do(func() {
		d.launch()
	})
}

func (d *Dispatcher) launch() {
	d.wg.Add(len(d.workers))
	for _, w := range d.workers {
		go w.run()
	}
	go func() {
		d.wg.Wait()
		d.cancel()
		close(d.done)
	}()
}

// Submit queues c for every sink and never blocks. It reports false when
// at least one sink refused it, because that sink's queue is full of other
// keys or the Dispatcher is stopping; the refusal is counted in Dropped.
func (d *Dispatcher) Submit(c Change) (accepted bool) {
	accepted = true
	for _, w := range d.workers {
		if !w.takes(c) {
			continue
		}
		if !w.submit(c, nil) {
			accepted = false
		}
	}
	return accepted
}

// Takers returns the names of the sinks Submit would queue c for: every
// sink but the Notifiers that do not want it.
func (d *Dispatcher) Takers(c Change) []string {
	var out []string
	for _, w := range d.workers {
		if w.takes(c) {
			out = append(out, w.name)
		}
	}
	return out
}

// Resend queues changes for the sink at index alone (a Journal's pending
// changes, found at a start), each as current returns it, under the
// queue's lock, or not at all if current says it no longer stands or a
// change of its key is already queued. It returns how many were queued.
func (d *Dispatcher) Resend(index int, changes []Change, current func(Change) (Change, bool)) int {
	if index < 0 || index >= len(d.workers) || d.workers[index].notifier != nil {
		return 0
	}
	n := 0
	for _, c := range changes {
		if d.workers[index].submit(c, current) {
			n++
		}
	}
	return n
}

// Stop stops accepting changes and flushes what is queued, one attempt per
// batch and no backoff, until ctx ends; then the Apply under way is
// cancelled and what is left is counted in Dropped. It returns once every
// sink goroutine has exited: nil if the flush finished first, ctx's error
// if not. A Sink that ignores its context holds Stop until it returns.
// Stop is safe to call more than once, and without Start.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.stopOnce.Do(func() {
		started := true
		d.startOnce.Do(func() { started = false })
		close(d.stopping)
		if !started {
			d.launch() // flush what was submitted before Start
		}
	})
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		select {
		case <-d.done:
			return nil // finished just in time
		default:
		}
		d.cancel()
		<-d.done
		return ctx.Err()
	}
}

// Stats returns the counts per sink name. Sinks sharing a name share an
// entry.
func (d *Dispatcher) Stats() map[string]SinkStats {
	m := make(map[string]SinkStats, len(d.workers))
	for _, w := range d.workers {
		s := w.stats()
		t := m[w.name]
		t.Queued += s.Queued
		t.Applied += s.Applied
		t.Failed += s.Failed
		t.Dropped += s.Dropped
		t.Expired += s.Expired
		t.Retries += s.Retries
		m[w.name] = t
	}
	return m
}

// worker is one sink's queue and the goroutine that empties it.
type worker struct {
	d        *Dispatcher
	index    int
	sink     Sink
	name     string
	ledger   *Ledger       // nil: acknowledgements are not recorded
	journal  Journal       // nil: what is pending is kept in memory only
	notifier Notifier      // the sink, if it is one
	wake     chan struct{} // capacity 1: the queue's state may have changed

	mu        sync.Mutex
	pending   map[Key]queued
	order     []Key          // the keys of pending, oldest first
	firstAt   time.Time      // when the oldest pending change arrived
	flying    map[Key]queued // the batch being applied, as it was queued
	fails     int            // failed attempts in a row
	holdUntil time.Time      // after a failure, no batch goes before this
	st        SinkStats      // Queued unused here; see stats
}

// queued is a change in a queue, with the time it was submitted: a
// block's TTL runs down from then.
type queued struct {
	c  Change
	at time.Time
}

// submit queues c, unless the queue is full or stopping. With current
// set (Reconcile), it queues what current(c) returns instead, unless a
// change for c's key is already queued or being applied, or current says
// c no longer stands. current runs under the queue's lock, so that no
// change submitted for the key after it answered can be overtaken.
func (w *worker) submit(c Change, current func(Change) (Change, bool)) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.d.stopping:
		w.st.Dropped++
		return false
	default:
	}
	k := c.Key()
	_, waiting := w.pending[k]
	if current != nil {
		if _, ok := w.flying[k]; ok || waiting {
			return false
		}
		var ok bool
		if c, ok = current(c); !ok {
			return false
		}
	}
	now := w.d.cfg.Now()
	if waiting {
		w.pending[k] = queued{c, now} // keeps its place in order: the key waits no longer than it did
		w.journalPending(c, now)
		return true
	}
	if len(w.order) >= w.d.cfg.QueueSize {
		w.st.Dropped++
		return false
	}
	w.pending[k] = queued{c, now}
	w.journalPending(c, now)
	w.order = append(w.order, k)
	// The worker cares about the first change (it may go at once, or
	// starts the FlushEvery clock) and a full batch; nothing in between.
	if n := len(w.order); n == 1 || n == w.d.cfg.BatchSize {
		if n == 1 {
			w.firstAt = now
		}
		w.signal()
	}
	return true
}

// takes reports whether c is for this worker's sink: a Notifier gets no
// replay and nothing it does not want.
func (w *worker) takes(c Change) bool {
	return w.notifier == nil || (!c.Replay && w.notifier.Wants(c))
}

func (w *worker) journalPending(c Change, at time.Time) {
	if w.journal != nil {
		w.journal.Pending(c, at)
	}
}

// settledLocked tells the journal that c is done with, unless a newer
// change of its key is queued.
func (w *worker) settledLocked(c Change) {
	if _, newer := w.pending[c.Key()]; !newer && w.journal != nil {
		w.journal.Settled(c)
	}
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) stats() SinkStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.Queued = len(w.order) + len(w.flying)
	return s
}

// take moves up to BatchSize of the oldest pending changes into a batch,
// each block's TTL run down by the time it waited, and returns the blocks
// whose TTL ran out apart.
func (w *worker) take() (batch, expired []Change) {
	now := w.d.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for n < len(w.order) && len(batch) < w.d.cfg.BatchSize {
		k := w.order[n]
		n++
		q := w.pending[k]
		delete(w.pending, k)
		c := q.c
		if c.Action == Block {
			if c.TTL -= now.Sub(q.at); c.TTL <= 0 {
				expired = append(expired, q.c)
				w.settledLocked(q.c)
				continue
			}
		}
		batch = append(batch, c)
		w.flying[k] = q
	}
	w.order = w.order[n:]
	w.st.Expired += uint64(len(expired))
	return batch, expired
}

func (w *worker) run() {
	defer w.d.wg.Done()
	for {
		batch := w.next()
		if batch == nil {
			break
		}
		w.deliver(batch)
	}
	w.drain()
}

// next waits for a batch to be due and returns it, or nil once the
// Dispatcher is stopping. A batch is due when its sink is idle and not
// backing off, and it is full or FlushEvery has passed.
func (w *worker) next() []Change {
	cfg := &w.d.cfg
	var due <-chan time.Time
	var dueAt time.Time
	for !w.isStopping() {
		w.mu.Lock()
		n, first, hold := len(w.order), w.firstAt, w.holdUntil
		w.mu.Unlock()
		if n == 0 {
			due = nil
		} else {
			now := cfg.Now()
			at := hold
			if n < cfg.BatchSize && first.Add(cfg.FlushEvery).After(at) {
				at = first.Add(cfg.FlushEvery)
			}
			if !at.After(now) {
				batch, expired := w.take()
				w.report(expired, 0, nil, Expired)
				if len(batch) > 0 {
					return batch
				}
				continue
			}
			if due == nil || !at.Equal(dueAt) {
				due, dueAt = cfg.After(at.Sub(now)), at
			}
		}
		select {
		case <-due:
			due = nil
		case <-w.wake:
		case <-w.d.stopping:
		}
	}
	return nil
}

// deliver makes one attempt at batch. A failure puts it back in the queue
// behind a backoff; see requeue.
func (w *worker) deliver(batch []Change) {
	err := w.apply(batch)
	if err == nil || errors.Is(err, ErrInvalidChange) {
		w.done(batch, err)
		return
	}
	cfg := &w.d.cfg
	w.mu.Lock()
	w.fails++
	attempt := w.fails
	w.requeueLocked(batch)
	w.holdUntil = cfg.Now().Add(backoff(cfg.Backoff, cfg.MaxBackoff, attempt))
	w.mu.Unlock()
	outcome := Retrying
	if attempt == cfg.Attempts {
		outcome = Failing
	}
	w.report(batch, attempt, err, outcome)
}

// requeueLocked puts the changes of a failed batch back at the front of
// the queue, as they were first queued (a block's TTL keeps running down
// from its submission), except those a newer change for the same key
// has replaced meanwhile.
func (w *worker) requeueLocked(batch []Change) {
	back := make([]Key, 0, len(batch))
	for _, c := range batch {
		k := c.Key()
		q, ok := w.flying[k]
		if !ok {
			continue
		}
		delete(w.flying, k)
		if _, newer := w.pending[k]; newer {
			continue
		}
		w.pending[k] = q
		back = append(back, k)
	}
	w.order = append(back, w.order...)
	if len(w.order) > 0 {
		w.firstAt = time.Time{} // they have waited long enough
	}
}

// done ends batch's attempts: applied (err nil), or given up.
func (w *worker) done(batch []Change, err error) {
	if err == nil && w.ledger != nil {
		// Before the keys leave flying, so that Reconcile never sees them
		// neither under way nor acknowledged.
		w.ledger.record(batch, w.d.cfg.Now())
	}
	w.mu.Lock()
	attempt := w.fails + 1
	if err == nil {
		w.st.Applied += uint64(len(batch))
		w.fails, w.holdUntil = 0, time.Time{}
	} else {
		w.st.Failed += uint64(len(batch))
	}
	// A change given up while stopping is still owed to the sink: the
	// journal keeps it for the next start. An invalid one never will be.
	if err == nil || errors.Is(err, ErrInvalidChange) {
		for _, q := range w.flying {
			w.settledLocked(q.c)
		}
	}
	clear(w.flying)
	w.mu.Unlock()
	outcome := Applied
	if err != nil {
		outcome = GivenUp
	}
	w.report(batch, attempt, err, outcome)
}

// drain flushes the queue once stopping: every batch gets one attempt
// until Stop's context ends; what remains then is dropped.
func (w *worker) drain() {
	for {
		if w.d.ctx.Err() != nil {
			w.mu.Lock()
			if n := len(w.order); n > 0 {
				w.st.Dropped += uint64(n)
				clear(w.pending)
				w.order = nil
			}
			w.mu.Unlock()
			return
		}
		batch, expired := w.take()
		w.report(expired, 0, nil, Expired)
		if len(batch) == 0 {
			if len(expired) == 0 {
				return
			}
			continue
		}
		w.done(batch, w.apply(batch))
	}
}

func (w *worker) apply(batch []Change) error {
	w.mu.Lock()
	if w.fails > 0 {
		w.st.Retries++
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(w.d.ctx, w.d.cfg.Timeout)
	defer cancel()
	return w.sink.Apply(ctx, batch)
}

func (w *worker) report(batch []Change, attempt int, err error, outcome Outcome) {
	if f := w.d.cfg.OnResult; f != nil && len(batch) > 0 {
		f(Result{Sink: w.name, Index: w.index, Batch: batch, Attempt: attempt, Err: err, Outcome: outcome})
	}
}

func (w *worker) isStopping() bool {
	select {
	case <-w.d.stopping:
		return true
	default:
		return false
	}
}

// backoff is the wait after the n-th failure in a row (1-based): base
// doubled per failure, capped at limit, then jittered into its upper half
// so that sinks failing together do not retry in step.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}
