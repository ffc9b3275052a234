package fleet

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two nodes taking calls of a budget of 20 at once, 16 goroutines each,
// get exactly 20 between them; a share of 80% stops at 16; pending calls
// count; a quota error marks the period exhausted for both; each
// threshold is announced by one node.
func TestBudget(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()
	start := time.Now().Truncate(24 * time.Hour) // the key expires an hour after the period
	end := start.Add(24 * time.Hour)

	var granted atomic.Int64
	var wg sync.WaitGroup
	for _, f := range []*Fleet{a, b} {
		for range 16 {
			wg.Go(func() {
				for range 4 {
					if _, ok, _, err := f.BudgetTake(ctx, start, end, 80*20, 0, 0); err != nil {
						t.Error(err)
					} else if ok {
						granted.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if granted.Load() != 16 {
		t.Errorf("an 80%% share of 20 granted %d calls, want 16", granted.Load())
	}
	spent, ok, _, err := b.BudgetTake(ctx, start, end, 100*20, 3, 0) // 3 calls made while Redis was down
	if err != nil || !ok || spent != 20 {
		t.Errorf("with 3 pending: spent %d, allowed %v (%v); want the 20th call", spent, ok, err)
	}
	if spent, ok, _, _ := a.BudgetTake(ctx, start, end, 100*20, 0, 0); ok || spent != 20 {
		t.Errorf("past the budget: spent %d, allowed %v; want 20, refused", spent, ok)
	}

	// The next day, a quota error on A exhausts B's next call.
	start, end = end, end.Add(24*time.Hour)
	if err := a.BudgetExhaust(ctx, start, end); err != nil {
		t.Fatal(err)
	}
	if spent, ok, exhausted, err := b.BudgetTake(ctx, start, end, 100*20, 0, 0); ok || !exhausted || spent != 0 || err != nil {
		t.Errorf("after A's quota error B got spent %d, allowed %v, exhausted %v (%v)", spent, ok, exhausted, err)
	}
	// A Redis that lost the count takes the node's view as its floor.
	day3, end3 := end, end.Add(24*time.Hour)
	if spent, ok, _, _ := a.BudgetTake(ctx, day3, end3, 100*20, 2, 15); !ok || spent != 16 {
		t.Errorf("a lost count with a node's view of 15 (2 of them pending): spent %d, allowed %v; want 16", spent, ok)
	}
	firstA, _ := a.BudgetOnce(ctx, start, end, "exhausted")
	firstB, _ := b.BudgetOnce(ctx, start, end, "exhausted")
	if !firstA || firstB {
		t.Errorf("announcing: A first %v, B first %v; want A only", firstA, firstB)
	}
	if ttl := a.rdb.PTTL(ctx, a.budgetKey(start)).Val(); ttl <= 0 {
		t.Errorf("the period's key has TTL %v, want an expiry", ttl)
	}
}
