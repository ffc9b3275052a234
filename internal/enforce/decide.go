package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"golang.org/x/net/publicsuffix"
)

// Actors of the engine's own changes, as audit lines and hooks name them.
const (
	actorEngine = "cipvalidate"
	actorFleet  = "fleet"
)

// onVerdict runs in a worker for every fresh verdict.
func (e *Engine) onVerdict(v verdicts.Verdict, job validate.Job) {
	if v.Outcome == verdicts.Error {
		e.retryOnVerdict(v)
	} else {
		// An event's report shows the IP validating until its finding and
		// block are decided, so that what it says is final is final.
		defer e.forgetRetry(v.IP)
	}
	switch {
	case v.Outcome != verdicts.Error:
		e.apiFailure.Store(criminalip.ErrorKind(""))
	case v.Error.Unavailable():
		e.apiFailure.Store(v.Error)
	}
	if v.Error != criminalip.KindBudget { // no call was made: the budget's metrics count it
		e.obs.Verdict(v)
	}
	if !v.Suspicious() {
		if v.Outcome == verdicts.Clean && len(e.cfg.Policy.HintReasons(job.Hints)) > 0 {
			e.Decide(withDecision(v), job) // the connection's hints alone make a finding
		}
		return
	}
	v = e.countSeenDomains(v)
	if job.Name != "" && !e.AllowedName(job.Name) {
		e.st.names.Put(job.Name, v)
	}
	e.log.Infof("verdict %s ip=%s suspicious scope=%s reasons=%q score=%s client=%s name=%s event=%s",
		v.Decision, v.IP, v.Scope, v.ReasonText(), v.Score, AddrString(job.Client), job.Name, job.Event)
	e.Decide(v, job)
	e.spread(v, job.Client)
}

// APIFailure returns the kind of the last API failure if it said the API
// is unavailable (down, out of quota, refusing the key, or a call the
// budget refused) and no call has succeeded since, or budget while the
// API budget is exhausted.
func (e *Engine) APIFailure() (criminalip.ErrorKind, bool) {
	k, _ := e.apiFailure.Load().(criminalip.ErrorKind)
	if k == "" && e.budgetExhausted() {
		k = criminalip.KindBudget // nothing is validated until the reset
	}
	return k, k != ""
}

// Decide turns a suspicious verdict, seen in job's context, into a
// finding and, as far as its scope reaches, a block: recorded, persisted,
// audited, pushed to the hooks and announced to the fleet (unless the
// policy is monitor-only). job says what led to it: its hints (a port, a
// product) join the finding, never the verdict.
func (e *Engine) Decide(v verdicts.Verdict, job validate.Job) {
	e.decide(v, job, "", "", e.st.tags.Tagged(job.Client, e.Now()))
}

// DecideBy is Decide for the command line: job's client is the host an
// event is about (so tagged-scope findings reach it), and actor and why
// say who pushed the decision.
func (e *Engine) DecideBy(v verdicts.Verdict, job validate.Job, actor, why string) {
	e.decide(v, job, actor, why, job.Client.IsValid())
}

// Finding is a verdict in one context: the verdict's reasons plus those of
// the connection's hints, and the scope they reach together.
type Finding struct {
	Reasons []risk.Reason
	Scope   risk.Scope
	Port    uint16 // the destination port of a port finding
}

// Finding builds the finding of verdict v for job.
func (e *Engine) Finding(v verdicts.Verdict, job validate.Job) Finding {
	f := Finding{Reasons: slices.Clone(v.Reasons)}
	hints := e.cfg.Policy.HintReasons(job.Hints)
	f.Reasons = append(f.Reasons, hints...)
	f.Scope = e.cfg.Policy.ScopeOf(f.Reasons)
	if len(hints) > 0 && job.Hints.Port > 0 {
		f.Port = uint16(job.Hints.Port)
	}
	return f
}

func (e *Engine) decide(v verdicts.Verdict, job validate.Job, actor, why string, tagged bool) {
	st, now := e.st, e.Now()
	ref := ""
	if t, ok := st.tags.Lookup(job.Client, now); ok {
		ref = t.Ref
	}
	if what, ok := e.ControlPlane(v.IP, job.Name); ok {
		e.log.Warningf("decision %s for %s declined: it is the control plane (%s)", v.Decision, v.IP, what)
		e.Audit(audit.Entry{Kind: audit.KindVerdict, Decision: v.Decision, IP: v.IP.String(), Client: AddrString(job.Client),
			Event: job.Event, Qname: job.Name, Reasons: v.ReasonList(), Detail: "declined: control plane (" + what + ")"})
		return
	}
	f := e.Finding(v, job)
	reasons := verdicts.Verdict{Reasons: f.Reasons}.ReasonList()
	reach, narrowed := f.Scope, ""
	if reach == risk.ScopeEveryone && e.Shared(v) {
		reach, narrowed = risk.ScopeTagged, fmt.Sprintf("shared: %d domains in its report, %d seen here", v.Domains, v.SeenDomains)
	}
	if reach == risk.ScopeTagged && !tagged {
		reach = risk.ScopeMonitor // untagged clients are only ever blocked by everyone evidence
	}
	e.Audit(audit.Entry{Kind: audit.KindVerdict, Decision: v.Decision, IP: v.IP.String(), Client: AddrString(job.Client),
		Event: job.Event, Ref: ref, Qname: job.Name, Reasons: reasons, TTL: int64(v.Expires.Sub(now).Seconds()),
		Detail: fmt.Sprintf("score %s; scope %s", v.Score, scopeText(f.Scope, reach, narrowed))})
	e.persist(kindVerdicts, v.IP.String(), v.Expires, v)
	if reach == risk.ScopeMonitor {
		e.obs.Block(true)
		e.log.Infof("finding %s ip=%s scope=%s client=%s: not enforced", v.Decision, v.IP, scopeText(f.Scope, reach, narrowed), AddrString(job.Client))
		return
	}
	cause := blocks.Cause{Client: job.Client, Event: job.Event, Ref: ref, Qname: job.Name, Port: f.Port}
	m := e.markDurable()
	var b blocks.Block
	var out blocks.Outcome
	var newClient bool
	st.record(func() {
		b, out, newClient = st.blocks.Decide(blocks.Verdict{IP: v.IP, Decision: v.Decision, Reasons: reasons, Score: v.Score, Scope: reach, Narrowed: narrowed,
			Version: e.stamp(0)}, cause, now)
		if out != blocks.Allowed {
			e.persistBlock(b)
		}
		switch out {
		case blocks.Blocked:
			e.histBlocked(b, v, job, now)
		case blocks.Extended, blocks.Widened:
			e.histExtended(b, out, job, now)
		}
		if h, ok := st.blocks.History(b.IP); ok && out == blocks.Blocked {
			e.persist(kindHistory, b.IP.String(), h.Last.Add(blocks.HistoryKeep), h)
		}
	})
	switch out {
	case blocks.Allowed:
		e.log.Infof("verdict %s ip=%s suspicious but allowlisted: no block", v.Decision, v.IP)
		return
	case blocks.Extended, blocks.Widened:
		if b.Monitor {
			return
		}
		if out == blocks.Widened || (newClient && !b.Everyone()) {
			e.push(sink.Block, b, job.Client, now, actor, why)
		}
		if out == blocks.Widened {
			e.shareBlock(b, &v)
		}
		return
	}
	e.newBlock(b, m, v, job, ref, actor, why, now)
}

// scopeText says a finding's scope and, when it was narrowed, why.
func scopeText(scope, reach risk.Scope, narrowed string) string {
	switch {
	case scope == reach:
		return string(scope)
	case narrowed != "" && reach == risk.ScopeTagged:
		return string(scope) + " (narrowed to tagged pairs, " + narrowed + ")"
	case narrowed != "":
		return string(scope) + " (" + narrowed + "; client not tagged: " + string(reach) + ")"
	}
	return string(scope) + " (client not tagged: " + string(reach) + ")"
}

// Shared reports whether v's IP is shared infrastructure: its report counts
// at least Config.Shared domains. A shared IP is never blocked or rewritten
// IP-wide: its findings reach tagged clients by pairs, and DNS by the names
// that led to them.
func (e *Engine) Shared(v verdicts.Verdict) bool {
	return e.cfg.Shared > 0 && max(v.Domains, v.SeenDomains) >= e.cfg.Shared
}

// countSeenDomains counts, for a fresh suspicious verdict whose report
// does not already make its IP shared, the registrable domains (public
// suffix list) this resolver saw resolve to the IP within retain, and
// caches the verdict again with the count: a CDN front the API knows few
// names of is still recognised by the many sites the clients reach on it.
func (e *Engine) countSeenDomains(v verdicts.Verdict) verdicts.Verdict {
	if e.cfg.Shared <= 0 || v.Domains >= e.cfg.Shared {
		return v
	}
	now := e.Now()
	// Names of one site share a registrable domain: a few per domain are
	// read at most, enough to count Shared distinct ones.
	names := e.st.window.NamesOf(v.IP, now.Add(-e.retain()), 8*e.cfg.Shared)
	domains := map[string]bool{}
	for _, n := range names {
		d, err := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(strings.ToLower(n), "."))
		if err == nil {
			domains[d] = true
		}
	}
	if len(domains) == v.SeenDomains {
		return v
	}
	v.SeenDomains = len(domains)
	return e.st.cache.Put(v, now)
}

// newBlock audits and pushes a new block, recorded and queued for the
// disk since m. The audit line and the hooks wait until the block is on
// disk, so that neither tells of a block a crash could still take back; if
// it cannot be written, the block is enforced all the same (a full disk
// must not open the firewall) and the audit line says it is not on disk.
func (e *Engine) newBlock(b blocks.Block, m durableMark, v verdicts.Verdict, job validate.Job, ref, actor, why string, now time.Time) {
	e.obs.Block(b.Monitor)
	e.forgetLift(b.IP)
	detail := fmt.Sprintf("repeat %d; scope %s", b.Repeat, b.Scope)
	if err := m.wait(); err != nil {
		detail += "; not on disk: " + err.Error()
	}
	auditActor := actorEngine
	switch {
	case b.Monitor:
		auditActor = actorEngine + " (monitor: not pushed)"
	case b.Origin == blocks.OriginManual:
		auditActor, detail = b.Actor, detail+"; manual: "+b.Reason
	}
	e.Audit(audit.Entry{Kind: audit.KindBlock, Decision: b.Decision, IP: b.IP.String(), Client: AddrString(job.Client), Event: job.Event,
		Ref: ref, Qname: job.Name, Reasons: b.Reasons, TTL: int64(b.TTL.Seconds()), Actor: auditActor, Detail: detail})
	e.log.Infof("block %s ip=%s scope=%s ttl=%s repeat=%d monitor=%v client=%s event=%s",
		b.Decision, b.IP, b.Scope, b.TTL, b.Repeat, b.Monitor, AddrString(job.Client), job.Event)
	if !b.Monitor {
		e.push(sink.Block, b, job.Client, now, actor, why)
		e.shareBlock(b, &v)
	}
}

// push submits a block or an unblock of b to every sink: IP-wide for a
// block that reaches everyone, the pair client -> IP (-> IP:port) for a
// tagged one.
func (e *Engine) push(action sink.Action, b blocks.Block, client netip.Addr, now time.Time, actor, why string) {
	d := e.dispatcher.Load()
	if d == nil {
		return
	}
	ch, ok := hookChange(action, b, client, now, actor, why)
	if !ok {
		return
	}
	ch.Replay = why == whyResync // chat hooks were told already
	// Pending before the change is submitted: an idle hook may apply it,
	// and report so, before Submit returns.
	takers := d.Takers(ch)
	e.histMark(b.Decision, action, takers, "pending", "")
	if !d.Submit(ch) {
		e.obs.HookChanges("all", HookDropped, 1)
		e.log.Warningf("hook queue full: %s of %s dropped", action, b.IP)
		e.histMark(b.Decision, action, takers, "failed", "the hook queue was full: dropped")
	}
}

// hookChange is the change push submits; false for a block with no time
// left.
func hookChange(action sink.Action, b blocks.Block, client netip.Addr, now time.Time, actor, why string) (sink.Change, bool) {
	ch := sink.Change{Action: action, IP: b.IP, Range: b.Range, Decision: b.Decision, Reasons: b.Reasons,
		Qnames: b.Qnames, Actor: actor, Why: why, Clients: b.Clients, Scope: sink.ScopeEveryone, Narrowed: b.Narrowed, Score: b.Score}
	if !b.Everyone() {
		ch.Scope, ch.Client, ch.Port = sink.ScopeTagged, client, b.Port
	}
	if len(b.Events) > 0 {
		ch.Event = b.Events[len(b.Events)-1]
	}
	if len(b.Refs) > 0 {
		ch.Ref = b.Refs[len(b.Refs)-1]
	}
	if action == sink.Block {
		ch.TTL = b.Expires.Sub(now)
	}
	return ch, action != sink.Block || ch.TTL > 0
}

// pushAll submits action for b to every sink: once IP-wide for a block
// that reaches everyone, once per client pair for a tagged one.
func (e *Engine) pushAll(action sink.Action, b blocks.Block, now time.Time, actor, why string) {
	if b.Everyone() {
		e.push(action, b, netip.Addr{}, now, actor, why)
		return
	}
	for _, client := range b.Clients {
		e.push(action, b, client, now, actor, why)
	}
}

// Unblock lifts ip's block everywhere (this node, its hooks, the fleet)
// and records who and why. The operator's word then stands as a clean
// verdict for the clean TTL: DNS stops rewriting at once, and the IP is
// not validated (and blocked) again the next time a tagged client resolves
// it. To keep it for good, allow it.
func (e *Engine) Unblock(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	b, ok := e.unblockLocal(ip, actor, why)
	if !ok {
		return b, false
	}
	if l, lifted := e.newLift(b, actor, why); lifted {
		e.shareLift(l)
	}
	return b, true
}

// unblockLocal is Unblock on this node only (a fleet message, or the
// first step of Unblock).
func (e *Engine) unblockLocal(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	st, now := e.st, e.Now()
	var b blocks.Block
	var err error
	st.record(func() {
		if b, err = st.blocks.Unblock(ip); err == nil {
			e.deleteBlockState(b)
			e.histLifted(b, actor, why, now)
		}
	})
	if err != nil {
		return b, false
	}
	e.standClean(ip, b.Decision, actor, why, now)
	e.lifted(b, now, actor, why, why)
	return b, true
}

// standClean makes an operator's unblock of ip stand as a clean verdict.
func (e *Engine) standClean(ip netip.Addr, decision, actor, why string, now time.Time) {
	e.forgetVerdict(ip)
	e.st.cache.Put(verdicts.Verdict{IP: ip.Unmap(), Outcome: verdicts.Clean, Checked: now, Decision: decision,
		Note: "unblocked by " + actor + ": " + why}, now)
}

// deleteBlockState queues the removal of b's records, with the change
// that lifted it (see State.record).
func (e *Engine) deleteBlockState(b blocks.Block) {
	e.deleteState(kindBlocks, b.IP.String())
	e.deleteState(kindHistory, b.IP.String())
}

// lifted finishes lifting b, whose records are queued for removal: the
// hooks hear of it, and an audit line and a log line say who and why.
func (e *Engine) lifted(b blocks.Block, now time.Time, actor, why, detail string) {
	if !b.Monitor {
		e.pushAll(sink.Unblock, b, now, actor, why)
		e.repushInside(b, now)
	}
	e.Audit(audit.Entry{Kind: audit.KindUnblock, Decision: b.Decision, IP: b.Key(), Reasons: b.Reasons, Actor: actor, Detail: detail})
	e.log.Infof("unblock %s ip=%s actor=%q why=%q", b.Decision, b.Key(), actor, why)
}

// Allow adds a dynamic allowlist entry and lifts the blocks it covers, on
// every node of a fleet.
func (e *Engine) Allow(a blocks.Allow) []blocks.Block {
	if cur, ok := e.st.blocks.Dynamic(a.Value); ok {
		a.Version = cur.Version
	}
	a.Version = e.stamp(a.Version)
	lifted := e.allowLocal(a)
	e.forgetUnallow(a.Value)
	e.shareAllow(a)
	for _, b := range lifted {
		if l, ok := e.newLift(b, a.Actor, sink.WhyAllowlisted+a.Reason); ok {
			e.shareLift(l)
		}
	}
	return lifted
}

// allowLocal is Allow on this node only.
func (e *Engine) allowLocal(a blocks.Allow) []blocks.Block {
	st, now := e.st, e.Now()
	var lifted []blocks.Block
	st.record(func() {
		lifted = st.blocks.AddAllow(a, now)
		e.persist(kindAllow, a.Value, a.Until, a)
		for _, b := range lifted {
			e.deleteBlockState(b)
			e.histLifted(b, a.Actor, "allowlisted "+a.Value+": "+a.Reason, now)
		}
	})
	e.Audit(audit.Entry{Kind: audit.KindAllow, IP: a.Value, Actor: a.Actor, Detail: a.Reason, TTL: ttlSeconds(a.Until, now)})
	for _, b := range lifted {
		e.forgetVerdict(b.IP)
		e.lifted(b, now, a.Actor, sink.WhyAllowlisted+a.Reason, "allowlisted "+a.Value)
	}
	return lifted
}

// RemoveAllow deletes a dynamic allowlist entry, on every node.
func (e *Engine) RemoveAllow(value, actor string) bool {
	if a, err := blocks.ParseAllow(value); err == nil {
		value = a.Value
	}
	a, _ := e.st.blocks.Dynamic(value)
	if !e.removeAllowLocal(value, actor) {
		return false
	}
	if u, ok := e.newUnallow(a, actor); ok {
		e.shareUnallow(u)
	}
	return true
}

func (e *Engine) removeAllowLocal(value, actor string) bool {
	removed := false
	e.st.record(func() {
		if removed = e.st.blocks.RemoveAllow(value); removed {
			e.deleteState(kindAllow, value)
		}
	})
	if !removed {
		return false
	}
	e.Audit(audit.Entry{Kind: audit.KindAllowRemoved, IP: value, Actor: actor})
	return true
}

// forgetVerdict drops ip's verdict from the cache, the remembered names
// and the state directory.
func (e *Engine) forgetVerdict(ip netip.Addr) {
	e.st.cache.Delete(ip)
	e.st.names.Forget(func(v verdicts.Verdict) bool { return v.IP == ip })
	e.deleteState(kindVerdicts, ip.String())
}

// ExpireBlocks lifts the blocks past their TTL; sinks that cannot expire
// elements themselves (exec, webhook) hear of it. The sweeper calls it.
func (e *Engine) ExpireBlocks(now time.Time) {
	var expired []blocks.Block
	e.st.record(func() {
		expired = e.st.blocks.Sweep(now)
		for _, b := range expired {
			e.deleteState(kindBlocks, b.Key())
			e.histExpired(b, now)
		}
	})
	for _, b := range expired {
		e.Audit(audit.Entry{Kind: audit.KindExpire, Decision: b.Decision, IP: b.Key(), Reasons: b.Reasons, Actor: actorEngine})
		if !b.Monitor {
			e.pushAll(sink.Unblock, b, now, actorEngine, "expired")
			e.repushInside(b, now)
		}
	}
}

// whyResync is the reason of the changes resync pushes.
const whyResync = "resync at start"

// resync pushes every live block to the sinks, at a start that needs it
// (see takeHookSet): a firewall that was flushed or rebooted while
// coredns-cip was down gets them back, and a new hook gets them at all; for
// the others it is a no-op or a repeat they must tolerate.
func (e *Engine) resync(now time.Time) {
	for _, b := range append(e.st.blocks.Active(now), e.st.blocks.ActiveRanges(now)...) {
		if !b.Monitor {
			e.pushAll(sink.Block, b, now, actorEngine, whyResync)
		}
	}
}

// onHookResult counts the outcome of every batch a sink took, and audits
// what was applied, what keeps failing (once per run of failures: the
// changes stay queued) and what was given up.
func (e *Engine) onHookResult(r sink.Result) {
	e.histHookResult(r, e.Now())
	e.st.hookHealth.record(r, e.Now())
	n := len(r.Batch)
	kind, detail := audit.KindHookOK, r.Sink
	switch r.Outcome {
	case sink.Applied:
		e.obs.HookChanges(r.Sink, HookOK, n)
		if r.Attempt > sink.DefaultAttempts {
			e.log.Infof("hook %s: applied %d change(s) after %d attempts", r.Sink, n, r.Attempt)
		}
	case sink.Retrying:
		e.obs.HookChanges(r.Sink, HookRetried, n)
		return
	case sink.Failing:
		e.obs.HookChanges(r.Sink, HookRetried, n)
		kind, detail = audit.KindHookFailed, fmt.Sprintf("%s: %v (%d attempts failed; still pending, retried until applied or the block ends)", r.Sink, r.Err, r.Attempt)
	case sink.GivenUp:
		e.obs.HookChanges(r.Sink, HookFailed, n)
		kind, detail = audit.KindHookFailed, fmt.Sprintf("%s: %v (given up after %d attempts)", r.Sink, r.Err, r.Attempt)
	case sink.Expired:
		e.obs.HookChanges(r.Sink, HookExpired, n)
		return
	}
	if r.Err != nil {
		e.log.Errorf("hook %s", detail)
	}
	for _, ch := range r.Batch {
		e.Audit(audit.Entry{Kind: kind, Decision: ch.Decision, IP: ch.IP.String(), Client: AddrString(ch.Client),
			Event: ch.Event, Ref: ch.Ref, TTL: int64(ch.TTL.Seconds()), Actor: ch.Actor, Detail: string(ch.Action) + " " + detail})
	}
}

// AddrString is a as text, or "" for the zero address (no client).
func AddrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func ttlSeconds(until, now time.Time) int64 {
	if until.IsZero() {
		return 0
	}
	return int64(until.Sub(now).Seconds())
}

func ttlUntil(until, now time.Time) time.Duration {
	if until.IsZero() {
		return 0
	}
	return until.Sub(now)
}
