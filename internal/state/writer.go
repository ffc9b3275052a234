package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultFlushEvery is how often a Writer commits when not told.
const DefaultFlushEvery = 200 * time.Millisecond

const (
	// flushAt pending changes commit at once rather than at the next tick,
	// which keeps a transaction, and the memory waiting for it, small.
	flushAt = 1000
	// maxPending bounds the queue when commits fail or stall (a full or
	// hung disk): past it, changes to new keys are dropped rather than
	// letting memory grow or the DNS path wait.
	maxPending = 100 * flushAt
)

// ErrClosed is returned (wrapped) by Sync when the Writer closed before the
// changes it waits for could be committed.
var ErrClosed = errors.New("state: writer closed")

// Writer queues changes for a Store and commits them in batches, one
// transaction (and one fsync) each. Changes to the same kind and key
// coalesce: only the last one is written.
//
// A change is written in one of two ways:
//   - Put and Delete queue it and return at once, so that the DNS path
//     never waits for a disk. It commits with the next batch: every
//     flushEvery, or as soon as flushAt changes are pending. A crash before
//     then loses it.
//   - Sync waits until every change queued before it is durable, and asks
//     for a commit now rather than at the next tick. This is group commit:
//     while one batch commits, the changes queued meanwhile gather in the
//     next, and one commit serves every Sync waiting for them.
//
// A failed commit keeps its changes queued (unless newer ones for the same
// keys arrived) and the next commit retries them; Err reports the failure
// until a commit succeeds again.
//
// A Writer is safe for concurrent use. Close it before its Store.
type Writer struct {
	s     *Store
	every time.Duration
	apply func([]op) error // s.apply; tests fail or stall commits with it

	mu       sync.Mutex
	pending  map[opKey]op
	inflight int // changes taken by a commit still running, for the bound
	closed   bool
	finished bool // closed and the last commit made: nothing will commit again
	// Batches are numbered: pending changes join batch gen, and commits
	// take batches in order. committed is the last batch whose commit
	// succeeded; it and every batch before it are durable, since a failed
	// batch's changes join the batch after it. failed is the last batch
	// whose commit failed, with lastErr.
	gen, committed, failed uint64
	lastErr                error
	settled                chan struct{} // closed and replaced after every commit

	// commitMu serialises commits, so a batch taken later never lands
	// before one taken earlier and overwrites a newer value with an older.
	commitMu sync.Mutex
	failing  bool // guarded by commitMu: for logging the changes of state

	dropped  atomic.Uint64
	failures atomic.Uint64
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

type opKey struct {
	kind Kind
	key  string
}

// NewWriter starts a Writer that commits every flushEvery; zero or less
// means DefaultFlushEvery.
func (s *Store) NewWriter(flushEvery time.Duration) *Writer {
	return s.newWriter(flushEvery, s.apply)
}

// newWriter is NewWriter committing with apply.
func (s *Store) newWriter(flushEvery time.Duration, apply func([]op) error) *Writer {
	if flushEvery <= 0 {
		flushEvery = DefaultFlushEvery
	}
	w := &Writer{
		s:       s,
		every:   flushEvery,
		apply:   apply,
		pending: make(map[opKey]op),
		gen:     1,
		settled: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go w.run()
	return w
}

// Put queues rec to be stored under kind.
func (w *Writer) Put(kind Kind, rec Record) {
	w.enqueue(op{kind: kind, rec: rec})
}

// Delete queues the removal of key from kind.
func (w *Writer) Delete(kind Kind, key string) {
	w.enqueue(op{kind: kind, rec: Record{Key: key}, del: true})
}

// Dropped returns how many changes were discarded: invalid ones, those
// queued after Close, and those refused because the queue was full. A
// caller that must know its changes were all queued compares it before and
// after making them.
func (w *Writer) Dropped() uint64 {
	return w.dropped.Load()
}

// Failures returns how many commits have failed.
func (w *Writer) Failures() uint64 {
	return w.failures.Load()
}

// Err returns the error of the last commit if it failed, nil once one
// succeeds again: while it is not nil, changes are kept in memory only.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed > w.committed {
		return w.lastErr
	}
	return nil
}

func (w *Writer) enqueue(o op) {
	if err := o.validate(); err != nil {
		w.dropped.Add(1)
		w.s.logf("state: dropping change: %v", err)
		return
	}
	k := opKey{o.kind, o.rec.Key}
	w.mu.Lock()
	_, queued := w.pending[k]
	if w.closed || (!queued && len(w.pending)+w.inflight >= maxPending) {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	w.pending[k] = o
	n := len(w.pending)
	w.mu.Unlock()
	if n >= flushAt {
		w.requestCommit()
	}
}

func (w *Writer) requestCommit() {
	select {
	case w.kick <- struct{}{}:
	default: // a commit is already requested
	}
}

func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		_ = w.Flush() // a failure is logged by Flush and retried next time
	}
}

// Sync returns once every change queued before it was called is durable,
// or with an error: the commit that took them failed (they stay queued and
// are retried), ctx ended first, or the Writer closed without committing
// them. It does not wait for the tick: the commit starts at once, or right
// after the one under way.
func (w *Writer) Sync(ctx context.Context) error {
	w.mu.Lock()
	// The batch holding the caller's changes: the pending one, or, if
	// nothing is pending, the last one taken (committed or committing).
	target := w.gen - 1
	if len(w.pending) > 0 {
		target = w.gen
	}
	w.mu.Unlock()
	w.requestCommit()
	for {
		w.mu.Lock()
		switch {
		case w.committed >= target:
			w.mu.Unlock()
			return nil
		case w.failed >= target:
			err := w.lastErr
			w.mu.Unlock()
			return err
		case w.finished:
			w.mu.Unlock()
			return ErrClosed
		}
		settled := w.settled
		w.mu.Unlock()
		select {
		case <-settled:
		case <-ctx.Done():
			return fmt.Errorf("state: waiting for the commit: %w", ctx.Err())
		}
	}
}

// Flush commits every change queued before it was called and returns once
// they are durable. If the commit fails, the changes stay queued (unless
// newer ones for the same keys arrived) and the next flush retries them.
func (w *Writer) Flush() error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()

	w.mu.Lock()
	batch, gen := w.pending, w.gen
	if len(batch) == 0 {
		// batch is still w.pending: it must not be read unlocked.
		w.mu.Unlock()
		return nil
	}
	w.pending = make(map[opKey]op)
	w.gen++
	w.inflight = len(batch)
	w.mu.Unlock()

	ops := make([]op, 0, len(batch))
	for _, o := range batch {
		ops = append(ops, o)
	}
	// In key order, bbolt fills its pages one after the other instead of
	// splitting them at random places: a batch commits about twice as fast.
	slices.SortFunc(ops, func(a, b op) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.rec.Key, b.rec.Key))
	})
	err := w.apply(ops)
	// Logged on the change of state only (a full disk fails every tick),
	// and before the waiters are released, so that the line is there when
	// their Sync returns.
	switch {
	case err != nil && !w.failing:
		w.s.logf("state: writes failing, will retry: %v", err)
	case err == nil && w.failing:
		w.s.logf("state: writes succeeding again")
	}
	w.failing = err != nil
	if err != nil {
		w.failures.Add(1)
	}
	w.mu.Lock()
	w.inflight = 0
	if err != nil {
		for k, o := range batch {
			if _, newer := w.pending[k]; !newer {
				w.pending[k] = o
			}
		}
		w.failed, w.lastErr = gen, err
	} else {
		w.committed = gen
	}
	close(w.settled)
	w.settled = make(chan struct{})
	w.mu.Unlock()
	return err
}

// Close stops the background commits and flushes what is queued; changes
// queued afterwards are dropped, and a Sync still waiting gets ErrClosed
// if that last flush did not take its changes. Calling Close again only
// flushes.
func (w *Writer) Close() error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.stop)
		<-w.done
	}
	err := w.Flush()
	w.mu.Lock()
	if !w.finished {
		w.finished = true
		close(w.settled)
		w.settled = make(chan struct{})
	}
	w.mu.Unlock()
	return err
}
