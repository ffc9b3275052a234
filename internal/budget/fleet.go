package budget

import "time"

// Shared is the budget of a fleet, counted on Redis (internal/fleet), so
// that the whole fleet spends at most the limit. Its methods are bounded
// by short timeouts: the budget is asked by validation workers, never on
// the DNS path.
type Shared interface {
	// Take spends one call of the period [start, end) if spent*100 <
	// threshold, first adding pending calls taken while it was
	// unreachable and raising the count to floor (this node's view, so
	// that a Redis that lost its data grants no fresh budget); it returns the fleet's count, whether the call may be
	// made, and whether a quota error exhausted the period. An error
	// means it is unreachable.
	Take(start, end time.Time, threshold, pending, floor int64) (spent int64, allowed, exhausted bool, err error)
	// Exhaust marks the period exhausted for the fleet, and tells the
	// other nodes.
	Exhaust(start, end time.Time)
	// First reports whether this node is the first to announce level in
	// the period (true when it cannot tell: better twice than never).
	First(start, end time.Time, level string) bool
	// Nodes is the number of nodes the fleet last counted (at least 1).
	Nodes() int64
}

// takeShared is Take with a fleet. While Shared is unreachable, the node
// spends on its own view: the fleet's count when Shared last answered
// plus its own calls since, each counted Nodes times, so that each of n
// nodes spends at most 1/n of what was left and the fleet as a whole
// stays within the limit (unless nodes join during the outage). The
// calls are added to the fleet's count when Shared answers again.
func (b *Budget) takeShared(c Class, now time.Time) bool {
	b.mu.Lock()
	b.rollLocked(now)
	start, threshold := b.saved.Start, b.cfg.Limit*Shares[c]
	if b.saved.Exhausted {
		b.mu.Unlock()
		refused[c].Inc()
		return false
	}
	pending := b.claimPendingLocked()
	floor := b.seen + pending
	b.mu.Unlock()
	spent, ok, exhausted, err := b.Shared.Take(start, b.cfg.next(start), threshold, pending, floor)
	b.mu.Lock()
	b.inFlight -= pending
	switch {
	case !b.saved.Start.Equal(start): // the period ended meanwhile: the call counted in the last one
		ok = err == nil && ok
	case err != nil:
		b.saved.Pending += pending // still owed
		ok = (b.seen+(b.saved.Pending+b.inFlight+1)*b.Shared.Nodes())*100 <= threshold
		if ok {
			b.saved.Pending++
			b.saved.Spent++
		}
	default:
		b.seen = max(b.seen, spent) // answers may come back out of order
		b.saved.Spent = b.seen + b.saved.Pending + b.inFlight
		b.saved.Exhausted = b.saved.Exhausted || exhausted
	}
	if !ok {
		if err == nil {
			b.changedLocked() // the fleet's count or exhaustion, seen here
		}
		b.mu.Unlock()
		refused[c].Inc()
		return false
	}
	alert := b.alertLocked(false)
	b.changedLocked()
	return b.unlockAlerting(alert)
}

// Refresh brings the budget up to the fleet's count, adding the calls
// this node made while the count was unreachable: for a status (other
// nodes' calls are otherwise seen at this node's next Take) and when Redis
// comes back. A threshold it finds crossed is announced unless another
// node did (Shared.First).
func (b *Budget) Refresh(now time.Time) {
	if b.Shared == nil {
		return
	}
	b.mu.Lock()
	b.rollLocked(now)
	start, pending := b.saved.Start, b.claimPendingLocked()
	floor := b.seen + pending
	b.mu.Unlock()
	spent, _, exhausted, err := b.Shared.Take(start, b.cfg.next(start), 0, pending, floor) // a threshold of 0 takes nothing
	b.mu.Lock()
	b.inFlight -= pending
	if err != nil || !b.saved.Start.Equal(start) {
		if err != nil && b.saved.Start.Equal(start) {
			b.saved.Pending += pending // still owed
		}
		b.mu.Unlock()
		return
	}
	b.seen = max(b.seen, spent) // answers may come back out of order
	b.saved.Spent = b.seen + b.saved.Pending + b.inFlight
	b.saved.Exhausted = b.saved.Exhausted || exhausted
	alert := b.alertLocked(false)
	b.changedLocked()
	b.unlockAlerting(alert)
}

// claimPendingLocked takes the calls owed to the fleet's count for one
// request, so that two requests at once do not both add them; a failed
// request gives them back.
func (b *Budget) claimPendingLocked() int64 {
	p := b.saved.Pending
	b.saved.Pending, b.inFlight = 0, b.inFlight+p
	return p
}
