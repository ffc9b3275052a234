package sink

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// reconcile runs d.Reconcile with a current that lets every change stand,
// marked as the reconciler's.
func reconcile(t *testing.T, d *Dispatcher, live ...Change) map[string]int {
	t.Helper()
	n, err := d.Reconcile(context.Background(), live, func(c Change) (Change, bool) {
		c.Why = "reconcile"
		return c, true
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func applied(r *recorder) []string {
	var out []string
	for _, c := range r.changes() {
		out = append(out, fmt.Sprint(c.Action, " ", c.IP, " ", c.Why))
	}
	return out
}

// A sink that cannot be read back is sent again only what it did not
// acknowledge: here a block its full queue refused, and the unblock of a
// block lifted while that unblock was refused too.
func TestReconcileResendsOnlyWhatWasNotAcknowledged(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	inApply := make(chan struct{})
	r := &recorder{name: "r", apply: func(context.Context, int, []Change) error {
		once.Do(func() { close(inApply); <-release })
		return nil
	}}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Ledgers: []*Ledger{{}}, QueueSize: 2})
	d.Start()
	defer stop(t, d)
	live := []Change{block(1, "d-1"), block(2, "d-2"), block(3, "d-3"), block(4, "d-4")}
	d.Submit(live[0])
	<-inApply
	for i, c := range live[1:] {
		if accepted := d.Submit(c); accepted != (i < 2) {
			t.Fatalf("Submit(%s) = %v", c.IP, accepted)
		}
	}
	close(release)
	waitFor(t, "the accepted blocks applied", func() bool { return len(r.changes()) == 3 })

	if n := reconcile(t, d, live...); n["r"] != 1 {
		t.Fatalf("reconcile queued %v, want the one block refused", n)
	}
	waitFor(t, "the refused block applied", func() bool { return len(r.changes()) == 4 })
	if got := applied(r)[3]; got != "block 192.0.2.4 reconcile" {
		t.Errorf("reconcile sent %q", got)
	}
	if n := reconcile(t, d, live...); n["r"] != 0 {
		t.Errorf("a second reconcile queued %v, want nothing: every block is acknowledged", n)
	}

	// The block of .2 is lifted; its unblock never reached the sink.
	if n := reconcile(t, d, live[0], live[2], live[3]); n["r"] != 1 {
		t.Fatalf("reconcile queued %v, want the unblock of .2", n)
	}
	waitFor(t, "the unblock", func() bool { return len(r.changes()) == 5 })
	if got := applied(r)[4]; got != "unblock 192.0.2.2 reconcile" {
		t.Errorf("reconcile sent %q, want the unblock of .2", got)
	}
	if n := reconcile(t, d, live[0], live[2], live[3]); n["r"] != 0 {
		t.Errorf("reconcile after the unblock queued %v, want nothing", n)
	}
}

// What Reconcile would queue is checked under the queue's lock, and keys
// with a change queued are left to it.
func TestReconcileLeavesWhatChangedMeanwhile(t *testing.T) {
	r := &recorder{name: "r"}
	d := NewDispatcher(Config{Sinks: []Sink{r}, Ledgers: []*Ledger{{}}, FlushEvery: time.Hour})
	d.Submit(block(1, "d-1"))
	n, err := d.Reconcile(context.Background(), []Change{block(1, "d-1"), block(2, "d-2")}, func(c Change) (Change, bool) {
		return c, c.IP != ip(2) // lifted since live was read
	})
	if err != nil || n["r"] != 0 {
		t.Errorf("Reconcile = %v, %v; want nothing queued: .1 is queued already, .2 no longer stands", n, err)
	}
	stop(t, d)
	if got := applied(r); !slices.Equal(got, []string{"block 192.0.2.1 "}) {
		t.Errorf("applied %q, want the one block submitted", got)
	}
}

// checker is a sink that can be read back: it holds what it applied, and
// what the test takes away behind its back.
type checker struct {
	recorder
	mu   sync.Mutex
	held map[Key]string // decision
}

func (c *checker) Apply(ctx context.Context, batch []Change) error {
	c.mu.Lock()
	for _, ch := range batch {
		if ch.Action == Block {
			c.held[ch.Key()] = ch.Decision
		} else {
			delete(c.held, ch.Key())
		}
	}
	c.mu.Unlock()
	return c.recorder.Apply(ctx, batch)
}

func (c *checker) Holds(_ context.Context, blocks []Change) ([]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]bool, len(blocks))
	for i, b := range blocks {
		out[i] = c.held[b.Key()] == b.Decision
	}
	return out, nil
}

// A sink that can be read back is repaired from what it holds, whatever
// it acknowledged.
func TestReconcileRepairsWhatACheckerLost(t *testing.T) {
	c := &checker{recorder: recorder{name: "set"}, held: map[Key]string{}}
	d := NewDispatcher(Config{Sinks: []Sink{c}, Ledgers: []*Ledger{{}}})
	d.Start()
	defer stop(t, d)
	live := []Change{block(1, "d-1"), block(2, "d-2")}
	for _, ch := range live {
		d.Submit(ch)
	}
	waitFor(t, "both blocks", func() bool { return len(c.changes()) == 2 })
	if n := reconcile(t, d, live...); n["set"] != 0 {
		t.Errorf("reconcile queued %v with nothing lost", n)
	}
	c.mu.Lock()
	delete(c.held, live[1].Key()) // deleted by hand
	c.mu.Unlock()
	if n := reconcile(t, d, live...); n["set"] != 1 {
		t.Fatalf("reconcile queued %v, want the lost block", n)
	}
	waitFor(t, "the block back", func() bool { return len(c.changes()) == 3 })
	if got := applied(&c.recorder)[2]; got != "block 192.0.2.2 reconcile" {
		t.Errorf("reconcile sent %q", got)
	}
}
