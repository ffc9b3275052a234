package sink

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"
)

// journalMap is a Journal in memory: what a state directory would hold.
type journalMap struct {
	mu sync.Mutex
	m  map[Key]Change
}

func (j *journalMap) Pending(c Change, _ time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = map[Key]Change{}
	}
	j.m[c.Key()] = c
}

func (j *journalMap) Settled(c Change) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m, c.Key())
}

func (j *journalMap) get() map[Key]Change {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.m)
}

// What a down sink has not acknowledged when its Dispatcher stops stays in
// its journal, as the last change of each key; what it acknowledged
// leaves it; a new Dispatcher sent the journal's changes delivers them.
func TestJournalKeepsWhatTheSinkDidNotAcknowledge(t *testing.T) {
	down := errors.New("down")
	var failing sync.Mutex
	up := true
	r := &recorder{name: "r", apply: func(_ context.Context, _ int, _ []Change) error {
		failing.Lock()
		defer failing.Unlock()
		if !up {
			return down
		}
		return nil
	}}
	j := &journalMap{}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Journals: []Journal{j}, Backoff: time.Millisecond})
	d.Start()
	d.Submit(block(1, "d-1"))
	waitFor(t, "the block applied", func() bool { return len(r.changes()) == 1 })
	waitFor(t, "the applied block out of the journal", func() bool { return len(j.get()) == 0 })

	failing.Lock()
	up = false
	failing.Unlock()
	unblock := Change{Action: Unblock, IP: ip(1), Decision: "d-1", Actor: "alice"}
	d.Submit(unblock)
	d.Submit(block(2, "d-2"))
	stop(t, d)
	got := j.get()
	if len(got) != 2 || got[unblock.Key()].Action != Unblock || got[block(2, "").Key()].Decision != "d-2" {
		t.Fatalf("journal after stopping with the sink down = %+v, want the unblock of %s and the block of %s", got, ip(1), ip(2))
	}

	failing.Lock()
	up = true
	failing.Unlock()
	next := NewDispatcher(Config{Sinks: []Sink{r}, Journals: []Journal{j}})
	next.Start()
	pending := []Change{got[unblock.Key()], got[block(2, "").Key()]}
	if n := next.Resend(0, pending, func(c Change) (Change, bool) { return c, true }); n != 2 {
		t.Errorf("Resend queued %d changes, want 2", n)
	}
	stop(t, next)
	all := r.changes()
	if len(all) != 3 || all[1].Action != Unblock && all[2].Action != Unblock {
		t.Errorf("the sink got %+v, want the first block, then the unblock and the second block", all)
	}
	if left := j.get(); len(left) != 0 {
		t.Errorf("journal after the sink took everything = %+v, want empty", left)
	}
}

// A change applied while a newer one of its key waits does not take the
// newer one out of the journal: a block applied after its unblock was
// queued, the unblock then refused, leaves the unblock journaled.
func TestJournalKeepsANewerChangeQueuedDuringAnApply(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	r := &recorder{name: "r", apply: func(_ context.Context, n int, _ []Change) error {
		if n > 1 {
			return errors.New("down")
		}
		started <- struct{}{}
		<-release
		return nil
	}}
	j := &journalMap{}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Journals: []Journal{j}, Backoff: time.Millisecond})
	d.Start()
	d.Submit(block(1, "d-1"))
	<-started
	d.Submit(Change{Action: Unblock, IP: ip(1), Decision: "d-1"})
	close(release)
	waitFor(t, "the unblock tried", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.calls > 1
	})
	stop(t, d)
	if got := j.get()[block(1, "").Key()]; got.Action != Unblock {
		t.Errorf("journal after the block was applied and its unblock refused: %+v, want the unblock", j.get())
	}
}
