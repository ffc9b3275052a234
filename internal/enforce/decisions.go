package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

var _ adminapi.DecisionBackend = API{}

// Decisions lists the decision history, newest first.
func (a API) Decisions(f adminapi.DecisionFilter, after adminapi.Cursor, limit int) ([]adminapi.Decision, adminapi.Cursor) {
	return a.e.st.hist.list(f, after, limit, a.e.Now())
}

// Decision returns one decision with its timeline.
func (a API) Decision(id string) (adminapi.DecisionDetail, bool) {
	return a.e.st.hist.detail(id, a.e.Now())
}

// EventDecisions lists the decisions an event led to.
func (a API) EventDecisions(eventID string) []string {
	h := a.e.st.hist
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.byEvent[eventID])
}

// LiftDecision lifts an active decision by its id, like an unblock of its
// IP: every hook, every fleet node, a clean verdict.
func (a API) LiftDecision(id, actor, why string) (adminapi.Decision, error) {
	if _, err := a.e.LiftDecision(id, actor, why); err != nil {
		return adminapi.Decision{}, err
	}
	d, _ := a.e.st.hist.detail(id, a.e.Now())
	return d.Decision, nil
}

// LiftDecision lifts the active decision id (or the decision it was
// widened into) everywhere, and returns the block lifted. Errors wrap
// adminapi.ErrUnknownDecision or adminapi.ErrConflict (it is not active).
func (e *Engine) LiftDecision(id, actor, why string) (blocks.Block, error) {
	now := e.Now()
	h := e.st.hist
	h.mu.RLock()
	en := h.byID[id]
	var ip netip.Addr
	var p netip.Prefix
	var ids []string
	var st string
	if en != nil {
		ip, p, ids, st = en.IP, en.Range, append([]string{en.ID}, en.Aliases...), adminapi.DecisionState(en.State, en.Expires, now)
	}
	h.mu.RUnlock()
	if en == nil {
		return blocks.Block{}, fmt.Errorf("%w %s", adminapi.ErrUnknownDecision, id)
	}
	b, ok := e.st.blocks.Get(ip, now)
	if p.IsValid() {
		b, ok = e.st.blocks.GetRange(p, now)
	}
	if st != adminapi.StateActive || !ok || !slices.Contains(ids, b.Decision) {
		return blocks.Block{}, fmt.Errorf("%w: decision %s is %s, not active", adminapi.ErrConflict, id, st)
	}
	if p.IsValid() {
		b, ok = e.UnblockRange(p, actor, why)
	} else {
		b, ok = e.Unblock(ip, actor, why)
	}
	if !ok {
		return blocks.Block{}, fmt.Errorf("%w: decision %s ended meanwhile", adminapi.ErrConflict, id)
	}
	return b, nil
}

// Block makes an operator's block (POST /v1/blocks).
func (a API) Block(req adminapi.BlockRequest) (adminapi.Decision, error) {
	block := func() (blocks.Block, error) {
		return a.e.ManualBlock(req.IP, req.TTL, req.Reason, req.Actor, req.Force)
	}
	if req.Range.IsValid() {
		block = func() (blocks.Block, error) {
			return a.e.ManualRangeBlock(req.Range, req.TTL, req.Reason, req.Actor, req.Force)
		}
	}
	b, err := block()
	if err != nil {
		return adminapi.Decision{}, err
	}
	d, _ := a.e.st.hist.detail(b.Decision, a.e.Now())
	return d.Decision, nil
}

// ManualBlock blocks ip for everyone for ttl, as actor says for reason,
// through the path of every block: DNS rewriting (a suspicious verdict
// that stands as long), the hooks, the audit log, the fleet and the EDL.
// Errors wrap adminapi.ErrConflict (the IP is allowlisted and force is
// not set, is the control plane, or is blocked already) or are field
// errors.
func (e *Engine) ManualBlock(ip netip.Addr, ttl time.Duration, reason, actor string, force bool) (blocks.Block, error) {
	ip = ip.Unmap()
	now := e.Now()
	switch {
	case !publicip.Is(ip):
		return blocks.Block{}, adminapi.BadField("ip", "%s is not a public address: answers with it are never inspected or rewritten", ip)
	case ttl <= 0:
		return blocks.Block{}, adminapi.BadField("ttl", "must be positive")
	}
	if what, ok := e.ControlPlane(ip, ""); ok {
		return blocks.Block{}, fmt.Errorf("%w: %s is the control plane (%s) and is never blocked", adminapi.ErrConflict, ip, what)
	}
	if cur, ok := e.st.blocks.Get(ip, now); ok {
		return blocks.Block{}, fmt.Errorf("%w: %s is blocked already by decision %s", adminapi.ErrConflict, ip, cur.Decision)
	}
	if al, ok := e.st.blocks.Allowed(ip, nil, now); ok && !force {
		return blocks.Block{}, fmt.Errorf("%w: %s is allowlisted by %s; send \"force\": true to block it all the same (DNS answers keep following the allowlist)", adminapi.ErrConflict, ip, al.Value)
	}
	st := e.st
	id := verdicts.NewDecisionID()
	v := verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious, Reasons: []risk.Reason{{Factor: FactorManual, Detail: reason}},
		Scope: risk.ScopeEveryone, Decision: id, Checked: now, Expires: now.Add(ttl), Note: "blocked by " + actor}
	m := e.markDurable()
	var b blocks.Block
	var out blocks.Outcome
	st.record(func() {
		b, out, _ = st.blocks.Decide(blocks.Verdict{IP: ip, Decision: id, Reasons: v.ReasonList(), Scope: risk.ScopeEveryone,
			Version: e.stamp(0), TTL: ttl, Origin: blocks.OriginManual, Actor: actor, Reason: reason, Force: force}, blocks.Cause{}, now)
		if out != blocks.Blocked {
			return
		}
		v = st.putVerdict(v, now)
		e.persist(kindVerdicts, ip.String(), v.Expires, v)
		e.persistBlock(b)
		e.histBlocked(b, v, validate.Job{}, now)
	})
	if out != blocks.Blocked {
		return blocks.Block{}, fmt.Errorf("%w: %s was blocked or allowlisted meanwhile", adminapi.ErrConflict, ip)
	}
	e.newBlock(b, m, v, validate.Job{}, "", actor, reason, now)
	return b, nil
}
