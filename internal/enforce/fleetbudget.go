package enforce

import (
	"context"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fleet"
)

// msgBudget tells the other nodes that a quota error exhausted the fleet's
// budget, so that their status shows it at once (their next call would
// find it on Redis anyway).
const msgBudget = "budget"

// fleetBudget is the API budget's count on Redis (budget.Shared).
type fleetBudget struct {
	e *Engine
	f *fleet.Fleet

	mu      sync.Mutex
	nodes   int64     // the nodes last counted
	counted time.Time // when
}

// fleetBudgetNodes is how often the node count is refreshed: it sizes the
// share each node may spend while Redis is down.
const fleetBudgetNodes = 5 * time.Second

func (b *fleetBudget) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), fleetOp)
}

// Take implements budget.Shared.
func (b *fleetBudget) Take(start, end time.Time, threshold, pending, floor int64) (int64, bool, bool, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	spent, ok, exhausted, err := b.f.BudgetTake(ctx, start, end, threshold, pending, floor)
	if err == nil {
		b.count(ctx, threshold == 0) // a Refresh (a status, Redis back): rare, and worth an exact count
	}
	return spent, ok, exhausted, err
}

// count refreshes the node count, at most every fleetBudgetNodes unless
// now.
func (b *fleetBudget) count(ctx context.Context, now bool) {
	b.mu.Lock()
	due := now || time.Since(b.counted) >= fleetBudgetNodes
	if due {
		b.counted = time.Now()
	}
	b.mu.Unlock()
	if !due {
		return
	}
	if n, err := b.f.Nodes(ctx); err == nil && n > 0 {
		b.mu.Lock()
		b.nodes = int64(n)
		b.mu.Unlock()
	}
}

// Nodes implements budget.Shared.
func (b *fleetBudget) Nodes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.nodes, 1)
}

// Exhaust implements budget.Shared.
func (b *fleetBudget) Exhaust(start, end time.Time) {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.f.BudgetExhaust(ctx, start, end); err != nil {
		b.e.log.Warningf("fleet: api budget: %v", err)
		return
	}
	b.e.publish(ctx, msgBudget, start)
}

// First implements budget.Shared.
func (b *fleetBudget) First(start, end time.Time, level string) bool {
	ctx, cancel := b.ctx()
	defer cancel()
	first, err := b.f.BudgetOnce(ctx, start, end, level)
	return first || err != nil
}

// onFleetBudget applies another node's quota error to this node's budget
// if it is of the current period.
func (e *Engine) onFleetBudget(data []byte) {
	var start time.Time
	if b := e.budget; b != nil && start.UnmarshalJSON(data) == nil {
		if now := e.Now(); b.Config().PeriodStart(now).Equal(start) {
			b.FleetExhausted(now)
		}
	}
}
