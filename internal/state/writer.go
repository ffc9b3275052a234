package state

import (
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

// Writer queues changes for a Store and commits them in the background, so
// that the DNS path never waits for a disk. Changes to the same kind and key
// coalesce: only the last one is written. Pending changes commit in one
// transaction every flushEvery, or as soon as flushAt of them are pending.
//
// Durability window: a crash loses at most the changes of the last
// flushEvery (plus the time one commit takes). A caller that must know a
// decision is on disk before acting on it calls Flush.
//
// A Writer is safe for concurrent use. Close it before its Store.
type Writer struct {
	s     *Store
	every time.Duration

	mu       sync.Mutex
	pending  map[opKey]op
	inflight int // changes taken by a commit still running, for the bound
	closed   bool

	// commitMu serialises commits, so a batch taken later never lands
	// before one taken earlier and overwrites a newer value with an older.
	commitMu sync.Mutex
	failing  bool // guarded by commitMu

	dropped atomic.Uint64
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

type opKey struct {
	kind Kind
	key  string
}

// NewWriter starts a Writer that commits every flushEvery; zero or less
// means DefaultFlushEvery.
func (s *Store) NewWriter(flushEvery time.Duration) *Writer {
	if flushEvery <= 0 {
		flushEvery = DefaultFlushEvery
	}
	w := &Writer{
		s:       s,
		every:   flushEvery,
		pending: make(map[opKey]op),
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
// queued after Close, and those refused because the queue was full.
func (w *Writer) Dropped() uint64 {
	return w.dropped.Load()
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
		select {
		case w.kick <- struct{}{}:
		default: // a commit is already requested
		}
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

// Flush commits every change queued before it was called and returns once
// they are durable. If the commit fails, the changes stay queued (unless
// newer ones for the same keys arrived) and the next flush retries them.
func (w *Writer) Flush() error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()

	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		// batch is still w.pending: it must not be read unlocked.
		w.mu.Unlock()
		return nil
	}
	w.pending = make(map[opKey]op)
	w.inflight = len(batch)
	w.mu.Unlock()

	ops := make([]op, 0, len(batch))
	for _, o := range batch {
		ops = append(ops, o)
	}
	err := w.s.apply(ops)
	w.mu.Lock()
	w.inflight = 0
	if err != nil {
		for k, o := range batch {
			if _, newer := w.pending[k]; !newer {
				w.pending[k] = o
			}
		}
	}
	w.mu.Unlock()
	if err != nil {
		// Logged on the change of state only: a full disk fails every tick.
		if !w.failing {
			w.s.logf("state: writes failing, will retry: %v", err)
		}
		w.failing = true
		return err
	}
	if w.failing {
		w.s.logf("state: writes succeeding again")
		w.failing = false
	}
	return nil
}

// Close stops the background commits and flushes what is queued; changes
// queued afterwards are dropped. Calling Close again only flushes.
func (w *Writer) Close() error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.stop)
		<-w.done
	}
	return w.Flush()
}
