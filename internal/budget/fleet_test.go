package budget

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeShared is a fleet's count in memory that can be taken down.
type fakeShared struct {
	mu        sync.Mutex
	spent     int64
	exhausted bool
	down      bool
	nodes     int64
	firsts    map[string]bool
}

var errDown = errors.New("down")

func (f *fakeShared) Take(_, _ time.Time, threshold, pending, floor int64) (int64, bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, false, false, errDown
	}
	f.spent = max(f.spent+pending, floor)
	if f.exhausted || f.spent*100 >= threshold {
		return f.spent, false, f.exhausted, nil
	}
	f.spent++
	return f.spent, true, false, nil
}

func (f *fakeShared) Exhaust(_, _ time.Time) { f.mu.Lock(); f.exhausted = true; f.mu.Unlock() }

func (f *fakeShared) First(_, _ time.Time, level string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	first := !f.firsts[level]
	f.firsts[level] = true
	return first
}

func (f *fakeShared) Nodes() int64 { return f.nodes }

func (f *fakeShared) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

// Two nodes share 20 calls: together they spend 20, each alert is
// announced once; while the fleet's count is unreachable each spends at
// most half of what was left, and its calls count on the fleet's when it
// comes back, even across a restart.
func TestSharedBudget(t *testing.T) {
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	cfg := Config{Limit: 20, Period: Day, Loc: time.UTC}
	shared := &fakeShared{nodes: 2, firsts: map[string]bool{}}
	var mu sync.Mutex
	var alerts []string
	node := func() *Budget {
		b := New(cfg, Saved{}, now)
		b.Shared = shared
		b.OnAlert = func(a Alert) { mu.Lock(); alerts = append(alerts, a.Level); mu.Unlock() }
		return b
	}
	a, b := node(), node()
	for range 5 {
		a.Take(Event, now)
		b.Take(Event, now)
	}
	a.Refresh(now)
	if b.Refresh(now); b.Status(now).Spent != 10 {
		t.Fatalf("B's refreshed view %+v, want 10 spent", b.Status(now))
	}

	// Redis down with 10 left: each node spends 5 of them at most.
	shared.setDown(true)
	spentA, spentB := 0, 0
	for range 20 {
		if a.Take(Event, now) {
			spentA++
		}
		if b.Take(Event, now) {
			spentB++
		}
	}
	if spentA != 5 || spentB != 5 {
		t.Errorf("while down: A spent %d, B %d; want 5 each (half of the 10 left)", spentA, spentB)
	}
	// A reload or restart of A during the outage keeps what it owes.
	saved := a.Saved()
	a = New(cfg, saved, now)
	a.Shared, a.OnAlert = shared, b.OnAlert
	if saved.Pending != 5 || a.Take(Event, now) {
		t.Errorf("A restarted with %+v took a call, or lost its 5 pending calls", saved)
	}
	shared.setDown(false)
	a.Refresh(now) // Redis is back: each node adds its outage's calls
	b.Refresh(now)
	if a.Take(Event, now) || shared.spent != 20 || !a.Status(now).Exhausted || !b.Status(now).Exhausted {
		t.Errorf("back up: fleet count %d, A %+v, B %+v; want 20 spent and both exhausted", shared.spent, a.Status(now), b.Status(now))
	}
	// The fleet's count went from 10 to 20 at once: no warning first.
	if len(alerts) != 1 || alerts[0] != AlertExhausted {
		t.Errorf("alerts %v, want one exhaustion for the fleet", alerts)
	}

	// A quota error on one node exhausts the other's next call.
	now = now.Add(24 * time.Hour)
	shared.spent, shared.firsts = 0, map[string]bool{}
	a.Exhaust(now)
	if b.Take(Event, now) || !b.Status(now).Exhausted {
		t.Errorf("B took a call after A's quota error: %+v", b.Status(now))
	}
}
