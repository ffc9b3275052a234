package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// TTLSlack is how much earlier than its block a sink's copy of it may run
// out and still count as held: a block extended by more is written again
// by Reconcile, with the time it has now.
const TTLSlack = time.Minute

// Checker is a Sink that can read back what it holds, such as an
// nftables set. Reconcile asks it, rather than its Ledger, which blocks it
// lacks, so that what was changed behind its back is repaired.
type Checker interface {
	Sink
	// Holds reports, for each change of blocks, all of Action Block,
	// whether the sink holds it as Apply would have written it: with its
	// decision, and running out no more than TTLSlack before its TTL.
	Holds(ctx context.Context, blocks []Change) ([]bool, error)
}

// Ledger remembers what one sink acknowledged: for each key, the block it
// last applied without error, until it applies an unblock of the key or
// the block's TTL runs out. Reconcile reads it to re-send a sink that
// cannot be read back only what it lacks, and to unblock what it holds
// and should not. A Ledger outlives a Dispatcher (a reload hands it to
// the next one). It is safe for concurrent use; the zero value is ready.
type Ledger struct {
	mu     sync.Mutex
	blocks map[Key]ackedBlock
}

// ackedBlock is a block as its sink acknowledged it.
type ackedBlock struct {
	c     Change
	until time.Time // when its TTL runs out
}

func (l *Ledger) record(batch []Change, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocks == nil {
		l.blocks = make(map[Key]ackedBlock)
	}
	for _, c := range batch {
		if c.Action == Block {
			l.blocks[c.Key()] = ackedBlock{c: c, until: now.Add(c.TTL)}
		} else {
			delete(l.blocks, c.Key())
		}
	}
}

// holds reports whether the sink acknowledged block c with its decision
// and (within TTLSlack) its time.
func (l *Ledger) holds(c Change, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.blocks[c.Key()]
	return ok && a.c.Decision == c.Decision && !a.until.Add(TTLSlack).Before(now.Add(c.TTL))
}

// stale forgets the blocks that ran out and returns, as unblocks, those
// the sink acknowledged whose keys live does not hold.
func (l *Ledger) stale(live map[Key]bool, now time.Time) []Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Change
	for k, a := range l.blocks {
		switch {
		case !a.until.After(now):
			delete(l.blocks, k)
		case !live[k]:
			u := a.c
			u.Action, u.TTL = Unblock, 0
			out = append(out, u)
		}
	}
	return out
}

// Reconcile checks every sink against live, the blocks in force now (one
// Block change per key, with the time left as TTL), and queues what
// differs. A block a sink lacks is queued again: a Checker reads its own
// state back; for another sink, a block its Ledger does not hold (with
// that decision and time) counts as lacking. A block a sink's Ledger holds
// whose key live lacks is unblocked. A sink that is no Checker and has no
// Ledger is left alone.
//
// Keys with a change queued or under way are skipped: it will tell. Each
// change is passed to current, under its queue's lock, which returns what
// to queue for it (the same key; with the actor and reason to show) or
// false if it no longer stands (a block lifted, an unblock of a key
// blocked again since live was read); so reconciling never undoes a
// decision made meanwhile. It returns how many changes were queued per
// sink name, and the read-back errors.
func (d *Dispatcher) Reconcile(ctx context.Context, live []Change, current func(Change) (Change, bool)) (map[string]int, error) {
	now := d.cfg.Now()
	keys := make(map[Key]bool, len(live))
	for _, c := range live {
		keys[c.Key()] = true
	}
	queued := make(map[string]int, len(d.workers))
	var errs []error
	for _, w := range d.workers {
		if w.notifier != nil {
			continue // told once, never reconciled
		}
		lacking, err := w.lacking(ctx, live, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.name, err))
		}
		if w.ledger != nil {
			lacking = append(lacking, w.ledger.stale(keys, now)...)
		}
		n := 0
		for _, c := range lacking {
			if w.submit(c, current) {
				n++
			}
		}
		queued[w.name] += n
	}
	return queued, errors.Join(errs...)
}

// lacking is the blocks of live the worker's sink does not hold.
func (w *worker) lacking(ctx context.Context, live []Change, now time.Time) ([]Change, error) {
	var held []bool
	if c, ok := w.sink.(Checker); ok && len(live) > 0 {
		var err error
		if held, err = c.Holds(ctx, live); err != nil {
			return nil, err
		}
	}
	var out []Change
	for i, c := range live {
		switch {
		case held != nil:
			if !held[i] {
				out = append(out, c)
			}
		case w.ledger != nil && !w.ledger.holds(c, now):
			out = append(out, c)
		}
	}
	return out, nil
}
