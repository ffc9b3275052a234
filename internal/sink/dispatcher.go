package sink

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultQueueSize  = 10000
	DefaultBatchSize  = 256
	DefaultFlushEvery = 100 * time.Millisecond
	DefaultAttempts   = 5
	DefaultBackoff    = 500 * time.Millisecond
	DefaultTimeout    = 10 * time.Second

	maxBackoff = 30 * time.Second
)

// Config configures a Dispatcher. Zero values take the defaults.
type Config struct {
	Sinks      []Sink
	QueueSize  int           // per sink, pending distinct keys; default 10000
	BatchSize  int           // changes per Apply; default 256
	FlushEvery time.Duration // a batch goes when full or this long after its first change; default 100ms
	Attempts   int           // per batch, the first included; default 5
	Backoff    time.Duration // before the second attempt, then doubled with jitter, capped at 30s; default 500ms
	Timeout    time.Duration // per Apply call (the whole batch); default 10s

	// OnResult, if set, is called after every Apply attempt, for metrics,
	// logs and the audit log. It is called from the sinks' goroutines, so
	// concurrently for different sinks, and must not keep or modify Batch.
	OnResult func(r Result)
}

// Result reports one Apply attempt.
type Result struct {
	Sink    string
	Batch   []Change
	Attempt int // 1 for the first
	Err     error
	Final   bool // no more attempts for this batch: it succeeded or was given up
}

// SinkStats counts what a Dispatcher did for one sink. Counts are changes,
// not batches, except Retries.
type SinkStats struct {
	Queued  int    // now: waiting, plus the batch being applied or retried
	Applied uint64 // applied successfully
	Failed  uint64 // given up after the last attempt
	Dropped uint64 // refused by Submit (queue full, or stopped), or left unflushed by Stop
	Retries uint64 // Apply calls after a batch's first
}

// Dispatcher feeds every sink from its own goroutine and queue. The queue
// holds at most one change per Key: a newer change replaces a queued one,
// so a burst for one IP costs one Apply, and a block followed by an
// unblock before the flush sends only the unblock. A failing sink retries
// its batch with backoff while the others carry on; changes submitted
// meanwhile keep coalescing and are applied after the batch.
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
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	d := &Dispatcher{
		cfg:      cfg,
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, s := range cfg.Sinks {
		d.workers = append(d.workers, &worker{
			d:       d,
			sink:    s,
			name:    s.Name(),
			pending: make(map[Key]Change),
			wake:    make(chan struct{}, 1),
		})
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
		if !w.submit(c) {
			accepted = false
		}
	}
	return accepted
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
		t.Retries += s.Retries
		m[w.name] = t
	}
	return m
}

// worker is one sink's queue and the goroutine that empties it.
type worker struct {
	d    *Dispatcher
	sink Sink
	name string
	wake chan struct{} // capacity 1: the queue's state may have changed

	mu       sync.Mutex
	pending  map[Key]Change
	order    []Key     // the keys of pending, oldest first
	firstAt  time.Time // when the oldest pending change arrived
	inflight int       // changes taken out of pending, not yet done with
	st       SinkStats // Queued unused here; see stats
}

func (w *worker) submit(c Change) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.d.stopping:
		w.st.Dropped++
		return false
	default:
	}
	k := c.Key()
	if _, ok := w.pending[k]; ok {
		w.pending[k] = c // keeps its place in order: the key waits no longer than it did
		return true
	}
	if len(w.order) >= w.d.cfg.QueueSize {
		w.st.Dropped++
		return false
	}
	w.pending[k] = c
	w.order = append(w.order, k)
	// The worker cares about the first change (starts the flush clock) and
	// a full batch (flush now); nothing in between.
	if n := len(w.order); n == 1 || n == w.d.cfg.BatchSize {
		if n == 1 {
			w.firstAt = time.Now()
		}
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return true
}

func (w *worker) stats() SinkStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.Queued = len(w.order) + w.inflight
	return s
}

// take moves up to BatchSize of the oldest pending changes into a batch.
func (w *worker) take() []Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.order), w.d.cfg.BatchSize)
	batch := make([]Change, n)
	for i, k := range w.order[:n] {
		batch[i] = w.pending[k]
		delete(w.pending, k)
	}
	w.order = slices.Delete(w.order, 0, n)
	if len(w.order) > 0 {
		// The rest have waited since firstAt already: they go next round
		// without a fresh wait.
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.inflight = n
	return batch
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
// Dispatcher is stopping.
func (w *worker) next() []Change {
	cfg := &w.d.cfg
	for !w.isStopping() {
		w.mu.Lock()
		n, first := len(w.order), w.firstAt
		w.mu.Unlock()
		var due <-chan time.Time
		if n > 0 {
			wait := cfg.FlushEvery - time.Since(first)
			if n >= cfg.BatchSize || wait <= 0 {
				return w.take()
			}
			due = time.After(wait) // garbage once unreferenced, since Go 1.23
		}
		select {
		case <-due:
		case <-w.wake:
		case <-w.d.stopping:
		}
	}
	return nil
}

// deliver applies batch, retrying with backoff up to Attempts. Once the
// Dispatcher is stopping, the attempt under way or the next one is the
// last.
func (w *worker) deliver(batch []Change) {
	cfg := &w.d.cfg
	for attempt := 1; ; attempt++ {
		err := w.apply(batch, attempt)
		if err == nil {
			w.finish(batch, attempt, nil)
			return
		}
		if attempt >= cfg.Attempts || w.isStopping() {
			w.finish(batch, attempt, err)
			return
		}
		w.report(batch, attempt, err, false)
		t := time.NewTimer(backoff(cfg.Backoff, attempt))
		select {
		case <-t.C:
		case <-w.d.stopping:
			t.Stop()
			w.finish(batch, attempt+1, w.apply(batch, attempt+1))
			return
		}
	}
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
		batch := w.take()
		if len(batch) == 0 {
			return
		}
		w.finish(batch, 1, w.apply(batch, 1))
	}
}

func (w *worker) apply(batch []Change, attempt int) error {
	if attempt > 1 {
		w.mu.Lock()
		w.st.Retries++
		w.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(w.d.ctx, w.d.cfg.Timeout)
	defer cancel()
	return w.sink.Apply(ctx, batch)
}

// finish counts batch as applied (err nil) or failed and reports the final
// attempt.
func (w *worker) finish(batch []Change, attempt int, err error) {
	w.mu.Lock()
	if err == nil {
		w.st.Applied += uint64(len(batch))
	} else {
		w.st.Failed += uint64(len(batch))
	}
	w.inflight = 0
	w.mu.Unlock()
	w.report(batch, attempt, err, true)
}

func (w *worker) report(batch []Change, attempt int, err error, final bool) {
	if f := w.d.cfg.OnResult; f != nil {
		f(Result{Sink: w.name, Batch: batch, Attempt: attempt, Err: err, Final: final})
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

// backoff is the wait after failed attempt n (1-based): base doubled per
// attempt, capped, then jittered into its upper half so that sinks failing
// together do not retry in step.
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}
