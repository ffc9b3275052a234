package enforce

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Actors of the engine's own changes, as audit lines and hooks name them.
const (
	actorEngine = "cipvalidate"
	actorFleet  = "fleet"
)

// onVerdict runs in a worker for every fresh verdict.
func (e *Engine) onVerdict(v verdicts.Verdict, job validate.Job) {
	e.retryOnVerdict(v)
	switch {
	case v.Outcome != verdicts.Error:
		e.apiFailure.Store(criminalip.ErrorKind(""))
	case v.Error.Unavailable():
		e.apiFailure.Store(v.Error)
	}
	e.obs.Verdict(v)
	if !v.Suspicious() {
		return
	}
	if job.Name != "" && !e.AllowedName(job.Name) {
		e.st.names.Put(job.Name, v)
	}
	e.log.Infof("verdict %s ip=%s suspicious reasons=%q score=%s client=%s name=%s event=%s",
		v.Decision, v.IP, v.ReasonText(), v.Score, addrString(job.Client), job.Name, job.Event)
	e.Decide(v, job)
}

// APIFailure returns the kind of the last API failure if it said the API
// is unavailable (down, out of quota, refusing the key) and no call has
// succeeded since.
func (e *Engine) APIFailure() (criminalip.ErrorKind, bool) {
	k, _ := e.apiFailure.Load().(criminalip.ErrorKind)
	return k, k != ""
}

// Decide turns a suspicious verdict into a block decision: recorded,
// persisted, audited, pushed to the hooks and announced to the fleet
// (unless the policy is monitor-only). job says what led to it.
func (e *Engine) Decide(v verdicts.Verdict, job validate.Job) { e.DecideBy(v, job, "", "") }

// DecideBy is Decide with the actor and the reason the hooks are told (the
// command line says who pushed an offline decision).
func (e *Engine) DecideBy(v verdicts.Verdict, job validate.Job, actor, why string) {
	st, now := e.st, e.Now()
	ref := ""
	if t, ok := st.tags.Lookup(job.Client, now); ok {
		ref = t.Ref
	}
	reasons := v.ReasonList()
	e.Audit(audit.Entry{Kind: audit.KindVerdict, Decision: v.Decision, IP: v.IP.String(), Client: addrString(job.Client),
		Event: job.Event, Ref: ref, Qname: job.Name, Reasons: reasons, TTL: int64(v.Expires.Sub(now).Seconds()), Detail: "score " + v.Score})
	e.persist(kindVerdicts, v.IP.String(), v.Expires, v)

	b, out, newClient := st.blocks.Decide(blocks.Verdict{IP: v.IP, Decision: v.Decision, Reasons: reasons, Score: v.Score},
		blocks.Cause{Client: job.Client, Event: job.Event, Ref: ref, Qname: job.Name}, now)
	switch out {
	case blocks.Allowed:
		e.log.Infof("verdict %s ip=%s suspicious but allowlisted: no block", v.Decision, v.IP)
		return
	case blocks.Extended:
		e.persistBlock(b)
		if newClient && !b.Monitor {
			e.push(sink.Block, b, job.Client, now, actor, why)
		}
		return
	}
	e.obs.Block(b.Monitor)
	e.persistBlock(b)
	if h, ok := st.blocks.History(b.IP); ok {
		e.persist(kindHistory, b.IP.String(), h.Last.Add(blocks.HistoryKeep), h)
	}
	auditActor := actorEngine
	if b.Monitor {
		auditActor = actorEngine + " (monitor: not pushed)"
	}
	e.Audit(audit.Entry{Kind: audit.KindBlock, Decision: b.Decision, IP: b.IP.String(), Client: addrString(job.Client), Event: job.Event,
		Ref: ref, Qname: job.Name, Reasons: b.Reasons, TTL: int64(b.TTL.Seconds()), Actor: auditActor,
		Detail: fmt.Sprintf("repeat %d", b.Repeat)})
	e.log.Infof("block %s ip=%s ttl=%s repeat=%d monitor=%v client=%s event=%s",
		b.Decision, b.IP, b.TTL, b.Repeat, b.Monitor, addrString(job.Client), job.Event)
	if !b.Monitor {
		e.push(sink.Block, b, job.Client, now, actor, why)
		e.share(fleetBlocks, b.IP.String(), b, b.Expires.Sub(now), msgBlock, b)
	}
}

// push submits a block or an unblock of b to every sink: for the IP, and
// for client -> IP (which scoped firewalls use; the others see the client
// as context).
func (e *Engine) push(action sink.Action, b blocks.Block, client netip.Addr, now time.Time, actor, why string) {
	if e.dispatcher == nil {
		return
	}
	ch := sink.Change{Action: action, IP: b.IP, Client: client, Decision: b.Decision, Reasons: b.Reasons,
		Qnames: b.Qnames, Actor: actor, Why: why}
	if len(b.Events) > 0 {
		ch.Event = b.Events[len(b.Events)-1]
	}
	if len(b.Refs) > 0 {
		ch.Ref = b.Refs[len(b.Refs)-1]
	}
	if action == sink.Block {
		ch.TTL = b.Expires.Sub(now)
		if ch.TTL <= 0 {
			return
		}
	}
	if !e.dispatcher.Submit(ch) {
		e.obs.HookChanges("all", HookDropped, 1)
		e.log.Warningf("hook queue full: %s of %s dropped", action, b.IP)
	}
}

// pushAll submits action for b to every sink, once per client it was
// scoped to and once unscoped.
func (e *Engine) pushAll(action sink.Action, b blocks.Block, now time.Time, actor, why string) {
	for _, client := range b.Clients {
		e.push(action, b, client, now, actor, why)
	}
	if len(b.Clients) == 0 {
		e.push(action, b, netip.Addr{}, now, actor, why)
	}
}

// Unblock lifts ip's block everywhere (this node, its hooks, the fleet)
// and records who and why. The operator's word then stands as a clean
// verdict for the clean TTL: DNS stops rewriting at once, and the IP is
// not validated (and blocked) again the next time a tagged client resolves
// it. To keep it for good, allow it.
func (e *Engine) Unblock(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	b, ok := e.unblockLocal(ip, actor, why)
	if ok {
		e.unshare(fleetBlocks, ip.Unmap().String(), msgUnblock, unblockMsg{IP: ip.Unmap(), Actor: actor, Why: why})
	}
	return b, ok
}

// unblockLocal is Unblock on this node only (a fleet message, or the
// first step of Unblock).
func (e *Engine) unblockLocal(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	st, now := e.st, e.Now()
	b, err := st.blocks.Unblock(ip)
	if err != nil {
		return b, false
	}
	e.forgetVerdict(ip)
	st.cache.Put(verdicts.Verdict{IP: ip.Unmap(), Outcome: verdicts.Clean, Checked: now, Decision: b.Decision,
		Note: "unblocked by " + actor + ": " + why}, now)
	e.lifted(b, now, actor, why, why)
	return b, true
}

// lifted finishes lifting b: its state goes, the hooks hear of it, and an
// audit line and a log line say who and why.
func (e *Engine) lifted(b blocks.Block, now time.Time, actor, why, detail string) {
	e.deleteState(kindBlocks, b.IP.String())
	e.deleteState(kindHistory, b.IP.String())
	if !b.Monitor {
		e.pushAll(sink.Unblock, b, now, actor, why)
	}
	e.Audit(audit.Entry{Kind: audit.KindUnblock, Decision: b.Decision, IP: b.IP.String(), Reasons: b.Reasons, Actor: actor, Detail: detail})
	e.log.Infof("unblock %s ip=%s actor=%q why=%q", b.Decision, b.IP, actor, why)
}

// Allow adds a dynamic allowlist entry and lifts the blocks it covers, on
// every node of a fleet.
func (e *Engine) Allow(a blocks.Allow) []blocks.Block {
	lifted := e.allowLocal(a)
	e.share(fleetAllow, a.Value, a, ttlUntil(a.Until, e.Now()), msgAllow, a)
	return lifted
}

// allowLocal is Allow on this node only.
func (e *Engine) allowLocal(a blocks.Allow) []blocks.Block {
	st, now := e.st, e.Now()
	lifted := st.blocks.AddAllow(a, now)
	e.persist(kindAllow, a.Value, a.Until, a)
	e.Audit(audit.Entry{Kind: audit.KindAllow, IP: a.Value, Actor: a.Actor, Detail: a.Reason, TTL: ttlSeconds(a.Until, now)})
	for _, b := range lifted {
		e.forgetVerdict(b.IP)
		e.lifted(b, now, a.Actor, "allowlisted: "+a.Reason, "allowlisted "+a.Value)
	}
	return lifted
}

// RemoveAllow deletes a dynamic allowlist entry, on every node.
func (e *Engine) RemoveAllow(value, actor string) bool {
	if a, err := blocks.ParseAllow(value); err == nil {
		value = a.Value
	}
	if !e.removeAllowLocal(value, actor) {
		return false
	}
	e.unshare(fleetAllow, value, msgUnallow, value)
	return true
}

func (e *Engine) removeAllowLocal(value, actor string) bool {
	if !e.st.blocks.RemoveAllow(value) {
		return false
	}
	e.deleteState(kindAllow, value)
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
	for _, b := range e.st.blocks.Sweep(now) {
		e.deleteState(kindBlocks, b.IP.String())
		e.Audit(audit.Entry{Kind: audit.KindExpire, Decision: b.Decision, IP: b.IP.String(), Reasons: b.Reasons, Actor: actorEngine})
		if !b.Monitor {
			e.pushAll(sink.Unblock, b, now, actorEngine, "expired")
		}
	}
}

// resync pushes every live block to the sinks, at start: a firewall that
// was flushed or rebooted gets them back; for the others it is a no-op or
// a repeat they must tolerate.
func (e *Engine) resync(now time.Time) {
	for _, b := range e.st.blocks.Active(now) {
		if !b.Monitor {
			e.pushAll(sink.Block, b, now, actorEngine, "resync at start")
		}
	}
}

// onHookResult audits and counts the outcome of every batch a sink took.
func (e *Engine) onHookResult(r sink.Result) {
	switch {
	case r.Err == nil:
		e.obs.HookChanges(r.Sink, HookOK, len(r.Batch))
	case r.Final:
		e.obs.HookChanges(r.Sink, HookFailed, len(r.Batch))
	default:
		e.obs.HookChanges(r.Sink, HookRetried, len(r.Batch))
	}
	if !r.Final {
		return
	}
	kind, detail := audit.KindHookOK, r.Sink
	if r.Err != nil {
		kind, detail = audit.KindHookFailed, fmt.Sprintf("%s: %v (after %d attempts)", r.Sink, r.Err, r.Attempt)
		e.log.Errorf("hook %s", detail)
	}
	for _, ch := range r.Batch {
		e.Audit(audit.Entry{Kind: kind, Decision: ch.Decision, IP: ch.IP.String(), Client: addrString(ch.Client),
			Event: ch.Event, Ref: ch.Ref, TTL: int64(ch.TTL.Seconds()), Actor: ch.Actor, Detail: string(ch.Action) + " " + detail})
	}
}

func addrString(a netip.Addr) string {
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
