package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// A range block is an operator's block of a CIDR (POST /v1/blocks with a
// "range"): a decision like a manual IP block, for everyone, kept by the
// blocks.Manager beside the IP blocks. DNS rewrites an answer with an
// address inside it as it would one with a suspicious IP (see
// Suspicious), the hooks get the CIDR, the EDL lists it, and the fleet
// shares it under the CIDR's key in the blocks hash.

// ManualRangeBlock blocks the range p for everyone for ttl, as actor says
// for reason, through the path of every block: DNS rewriting, the hooks,
// the audit log, the fleet and the EDL. Errors wrap adminapi.ErrConflict
// (the range overlaps the allowlist and force is not set, holds a control
// plane address, or overlaps a range blocked already) or are field errors.
func (e *Engine) ManualRangeBlock(p netip.Prefix, ttl time.Duration, reason, actor string, force bool) (blocks.Block, error) {
	p, err := blocks.CheckRange(p)
	if err != nil {
		return blocks.Block{}, adminapi.BadField("range", "%v", err)
	}
	if ttl <= 0 {
		return blocks.Block{}, adminapi.BadField("ttl", "must be positive")
	}
	if ip, what, ok := e.controlPlaneIn(p); ok {
		return blocks.Block{}, fmt.Errorf("%w: %s holds %s, the control plane (%s), which is never blocked", adminapi.ErrConflict, p, ip, what)
	}
	st, now := e.st, e.Now()
	v := blocks.Verdict{Decision: verdicts.NewDecisionID(), Reasons: []string{string(FactorManual) + ": " + reason},
		Scope: risk.ScopeEveryone, TTL: ttl, Origin: blocks.OriginManual, Actor: actor, Reason: reason, Force: force}
	var b blocks.Block
	m := e.markDurable()
	st.record(func() {
		cur, ok := st.blocks.GetRange(p, now)
		v.Version = e.stamp(cur.Version)
		if ok {
			err = fmt.Errorf("%w: %s is blocked already by decision %s", blocks.ErrRangeOverlap, p, cur.Decision)
			return
		}
		if b, err = st.blocks.DecideRange(p, v, now); err != nil {
			return
		}
		e.persistBlock(b)
		e.histRangeBlocked(b, "blocked by %s for %s: %s", actor, optval.Short(ttl), reason)
	})
	var allowed *blocks.AllowedError
	switch {
	case errors.As(err, &allowed):
		return blocks.Block{}, fmt.Errorf("%w: %s overlaps the allowlist entry %s; send \"force\": true to block it all the same (DNS answers keep following the allowlist)", adminapi.ErrConflict, p, allowed.Allow.Value)
	case err != nil:
		return blocks.Block{}, fmt.Errorf("%w: %v", adminapi.ErrConflict, err)
	}
	e.newRangeBlock(b, m, now)
	return b, nil
}

// controlPlaneIn returns a control plane address inside p, if any.
func (e *Engine) controlPlaneIn(p netip.Prefix) (netip.Addr, string, bool) {
	cp := e.control
	if cp == nil {
		return netip.Addr{}, "", false
	}
	cp.mu.RLock()
	defer cp.mu.RUnlock()
	for ip, what := range cp.ips {
		if p.Contains(ip) {
			return ip, what, true
		}
	}
	return netip.Addr{}, "", false
}

// newRangeBlock audits and pushes a new range block once it is on disk
// (see newBlock).
func (e *Engine) newRangeBlock(b blocks.Block, m durableMark, now time.Time) {
	e.obs.Block(b.Monitor)
	detail := "range; manual: " + b.Reason
	if err := m.wait(); err != nil {
		detail += "; not on disk: " + err.Error()
	}
	e.Audit(audit.Entry{Kind: audit.KindBlock, Decision: b.Decision, IP: b.Key(), Reasons: b.Reasons, TTL: int64(b.TTL.Seconds()), Actor: b.Actor, Detail: detail})
	e.log.Infof("block %s range=%s scope=%s ttl=%s monitor=%v actor=%q", b.Decision, b.Range, b.Scope, b.TTL, b.Monitor, b.Actor)
	if !b.Monitor {
		e.push(sink.Block, b, netip.Addr{}, now, b.Actor, b.Reason)
		e.shareBlock(b, nil)
	}
}

// histRangeBlocked records a new range block b in the history.
func (e *Engine) histRangeBlocked(b blocks.Block, format string, args ...any) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	origin, actor := adminapi.OriginManual, b.Actor
	if b.Origin != blocks.OriginManual {
		origin, actor = adminapi.OriginFleet, actorFleet
	}
	en := newEntry(b, verdicts.Verdict{}, origin, actor, e.Now())
	en.step(en.Created, "block", format, args...)
	h.insert(en)
	e.histSave(en)
}

// UnblockRange lifts the block of the range p everywhere (this node, its
// hooks, the fleet) and records who and why.
func (e *Engine) UnblockRange(p netip.Prefix, actor, why string) (blocks.Block, bool) {
	b, ok := e.unblockRangeLocal(p, actor, why)
	if ok {
		if l, lifted := e.newLift(b, actor, why); lifted {
			e.shareLift(l)
		}
	}
	return b, ok
}

func (e *Engine) unblockRangeLocal(p netip.Prefix, actor, why string) (blocks.Block, bool) {
	st, now := e.st, e.Now()
	var b blocks.Block
	var err error
	st.record(func() {
		if b, err = st.blocks.UnblockRange(p); err == nil {
			e.deleteState(kindBlocks, b.Key())
			e.histLifted(b, actor, why, now)
		}
	})
	if err != nil {
		return b, false
	}
	// DNS remembers the names it rewrote for the range: forget them, so
	// that they answer their real addresses at once.
	e.st.names.Forget(func(v verdicts.Verdict) bool { return v.Decision == b.Decision })
	e.lifted(b, now, actor, why, why)
	return b, true
}

// rangeVerdict is the verdict DNS enforces for an address inside the
// range block h: suspicious, for everyone, under the range's decision.
func rangeVerdict(ip netip.Addr, h blocks.RangeHit, now time.Time) verdicts.Verdict {
	return verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious, Scope: risk.ScopeEveryone, Decision: h.Decision,
		Reasons: []risk.Reason{{Factor: FactorManual, Detail: "range " + h.Range.String() + ": " + h.Reason}},
		Checked: now, Expires: h.Expires, Note: "range blocked by " + h.Actor}
}

// BlockedRanges lists the ranges blocked for everyone now, for the EDL.
func (a API) BlockedRanges() []netip.Prefix {
	var out []netip.Prefix
	for _, b := range a.e.st.blocks.ActiveRanges(a.e.Now()) {
		if !b.Monitor {
			out = append(out, b.Range)
		}
	}
	return out
}

// adoptRange takes a range block another node decided, unless this node
// has a later change to the range.
func (e *Engine) adoptRange(b blocks.Block, now time.Time) {
	e.observe(fleet.Version(b.Version))
	var adopted bool
	e.st.record(func() {
		if adopted = e.st.blocks.AdoptRange(b, now); adopted {
			e.persistBlock(b)
			e.histRangeAdopted(b, now)
		}
	})
	if adopted && !b.Monitor {
		e.pushAll(sink.Block, b, now, actorFleet, "decided by another node")
	}
}

// histRangeAdopted records a range block another node decided, or its
// renewal under the same decision.
func (e *Engine) histRangeAdopted(b blocks.Block, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	if en, ok := h.byID[b.Decision]; ok {
		en.State, en.Ended, en.Lifted, en.Expires = adminapi.StateActive, time.Time{}, nil, b.Expires.Round(0).UTC()
		e.histSave(en)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	e.histRangeBlocked(b, "decided by another node of the fleet; blocked here until %s", b.Expires.UTC().Format(time.RFC3339))
}

// adoptRangeLift takes a lift of a range block another node made, unless
// this node's block of the range is a later change.
func (e *Engine) adoptRangeLift(l lift, now time.Time) {
	e.observe(l.Version)
	if b, ok := e.st.blocks.GetRange(l.Range, now); !ok || fleet.Version(b.Version) > l.Version {
		return
	}
	e.unblockRangeLocal(l.Range, l.Actor, l.Why)
}

// repushInside pushes again the live IP blocks inside the range block b,
// which ended: a firewall set that cannot hold overlapping elements (an
// nftables interval set) dropped them while the range covered them.
func (e *Engine) repushInside(b blocks.Block, now time.Time) {
	if !b.Range.IsValid() {
		return
	}
	for _, ib := range e.st.blocks.Active(now) {
		if !ib.Monitor && b.Range.Contains(ib.IP) {
			e.pushAll(sink.Block, ib, now, actorEngine, "range "+b.Range.String()+" ended")
		}
	}
}
