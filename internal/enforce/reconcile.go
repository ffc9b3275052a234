package enforce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// Bounds of Config.Reconcile, the `reconcile` option.
const (
	// DefaultReconcile is how often the hooks are checked against the
	// live blocks when Config.Reconcile is 0.
	DefaultReconcile = 5 * time.Minute
	// MinReconcile keeps a reconcile, which reads every nftables set
	// back, from running all the time.
	MinReconcile = 100 * time.Millisecond
	maxReconcile = 24 * time.Hour
)

// ParseReconcile reads the DURATION of `reconcile DURATION`.
func ParseReconcile(s string) (time.Duration, error) {
	d, err := optval.DurationUpTo(s, maxReconcile)
	if err == nil && d < MinReconcile {
		err = fmt.Errorf("%q is shorter than %s: every reconcile reads the nftables sets back", s, MinReconcile)
	}
	return d, err
}

// startReconciler checks the hooks every Config.Reconcile until
// stopReconciler.
func (e *Engine) startReconciler() {
	every := e.cfg.Reconcile
	if every <= 0 {
		every = DefaultReconcile
	}
	e.stopReconcile = make(chan struct{})
	e.reconcileDone.Add(1)
	go func() {
		defer e.reconcileDone.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-e.stopReconcile:
				return
			case <-t.C:
				e.Reconcile()
			}
		}
	}()
}

func (e *Engine) stopReconciler() {
	if e.stopReconcile != nil {
		close(e.stopReconcile)
		e.reconcileDone.Wait()
		e.stopReconcile = nil
	}
}

// Reconcile checks every hook against the live blocks and queues what it
// lacks: an nftables set is read back, so an element deleted by hand or
// lost comes back; an exec or webhook hook is sent only the blocks it has
// not acknowledged (see sink.Ledger), and the unblocks of blocks it holds
// that were lifted while their unblock could not reach it. The
// reconciler calls it every Config.Reconcile; tests call it.
func (e *Engine) Reconcile() {
	d := e.dispatcher.Load()
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	queued, err := d.Reconcile(ctx, e.liveChanges(e.Now()), e.stillCurrent)
	if err != nil {
		e.log.Warningf("reconcile: %v", err)
	}
	if n := e.resendPending(d); n > 0 {
		e.log.Infof("reconcile: %d change(s) hooks had not acknowledged queued again", n)
	}
	for name, n := range queued {
		if n > 0 {
			e.obs.HookChanges(name, HookResent, n)
			e.log.Infof("reconcile: hook %s lacked %d change(s); queued them again", name, n)
		}
	}
}

// liveChanges are the block changes the hooks should hold now: one per
// key, as pushAll would submit them.
func (e *Engine) liveChanges(now time.Time) []sink.Change {
	var out []sink.Change
	for _, b := range append(e.st.blocks.Active(now), e.st.blocks.ActiveRanges(now)...) {
		if b.Monitor {
			continue
		}
		clients := b.Clients
		if b.Everyone() {
			clients = []netip.Addr{{}}
		}
		for _, client := range clients {
			if ch, ok := hookChange(sink.Block, b, client, now, actorEngine, "reconcile"); ok {
				out = append(out, ch)
			}
		}
	}
	return out
}

// stillCurrent tells the hooks' queue whether a change reconciling would
// queue still stands, now that the queue is locked: a block must still
// be live with its decision (it is queued with the time it has now), an
// unblock must not have been blocked again.
func (e *Engine) stillCurrent(c sink.Change) (sink.Change, bool) {
	now := e.Now()
	b, ok := e.blockOf(c, now)
	live := ok && !b.Monitor && covers(b, c.Key())
	if c.Action == sink.Unblock {
		c.Actor, c.Why = actorEngine, "reconcile: no longer blocked"
		return c, !live
	}
	if !live || b.Decision != c.Decision {
		return c, false
	}
	return hookChange(sink.Block, b, c.Client, now, actorEngine, "reconcile")
}

// blockOf is the live block change c is about: its range's or its IP's.
func (e *Engine) blockOf(c sink.Change, now time.Time) (blocks.Block, bool) {
	if c.Range.IsValid() {
		return e.st.blocks.GetRange(c.Range, now)
	}
	return e.st.blocks.Get(c.IP, now)
}

// covers reports whether block b reaches key k: the IP for everyone, or
// one of its client pairs.
func covers(b blocks.Block, k sink.Key) bool {
	if b.Everyone() {
		return !k.Client.IsValid() && k.Port == 0
	}
	return k.Port == b.Port && slices.Contains(b.Clients, k.Client)
}
