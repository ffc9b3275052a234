package cipvalidate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/nftset"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Record kinds of the state directory.
const (
	kindBlocks   state.Kind = "blocks"
	kindHistory  state.Kind = "history"
	kindAllow    state.Kind = "allow"
	kindTags     state.Kind = "tags"
	kindVerdicts state.Kind = "verdicts"
)

// decide turns a fresh suspicious verdict into a block decision: recorded,
// persisted, audited and pushed to the sinks (unless mode monitor).
func (c *CIPValidate) decide(v verdicts.Verdict, job validate.Job) {
	st, now := c.st, timeNow()
	ref := ""
	if t, ok := st.tags.Lookup(job.Client, now); ok {
		ref = t.Ref
	}
	reasons := reasonList(v)
	c.audit(audit.Entry{Kind: "verdict", Decision: v.Decision, IP: v.IP.String(), Client: addrString(job.Client),
		Event: job.Event, Ref: ref, Qname: job.Name, Reasons: reasons, TTL: int64(v.Expires.Sub(now).Seconds()), Detail: "score " + v.Score})
	c.persist(kindVerdicts, v.IP.String(), v.Expires, v)

	b, out, newClient := st.blocks.Decide(blocks.Verdict{IP: v.IP, Decision: v.Decision, Reasons: reasons, Score: v.Score},
		blocks.Cause{Client: job.Client, Event: job.Event, Ref: ref, Qname: job.Name}, now)
	switch out {
	case blocks.Allowed:
		log.Infof("verdict %s ip=%s suspicious but allowlisted: no block", v.Decision, v.IP)
		return
	case blocks.Extended:
		c.persistBlock(b)
		if newClient && !b.Monitor {
			c.push(sink.Block, b, job.Client, now, "", "")
		}
		return
	}
	blocksTotal.WithLabelValues(map[bool]string{true: "monitor", false: "block"}[b.Monitor]).Inc()
	c.persistBlock(b)
	if h, ok := st.blocks.History(b.IP); ok {
		c.persist(kindHistory, b.IP.String(), h.Last.Add(blocks.HistoryKeep), h)
	}
	actor := "cipvalidate"
	if b.Monitor {
		actor = "cipvalidate (monitor: not pushed)"
	}
	c.audit(audit.Entry{Kind: "block", Decision: b.Decision, IP: b.IP.String(), Client: addrString(job.Client), Event: job.Event,
		Ref: ref, Qname: job.Name, Reasons: b.Reasons, TTL: int64(b.TTL.Seconds()), Actor: actor,
		Detail: fmt.Sprintf("repeat %d", b.Repeat)})
	log.Infof("block %s ip=%s ttl=%s repeat=%d monitor=%v client=%s event=%s", b.Decision, b.IP, b.TTL, b.Repeat, b.Monitor, job.Client, job.Event)
	if !b.Monitor {
		c.push(sink.Block, b, job.Client, now, "", "")
		c.fleetPut(fleetBlocks, b.IP.String(), b, b.Expires.Sub(now))
		c.fleetPublish(msgBlock, b)
	}
}

// push submits a block or an unblock of b to every sink: for the IP, and
// for client -> IP (which scoped firewalls use; the others see the client
// as context).
func (c *CIPValidate) push(action sink.Action, b blocks.Block, client netip.Addr, now time.Time, actor, why string) {
	if c.dispatcher == nil {
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
	if !c.dispatcher.Submit(ch) {
		hookChanges.WithLabelValues("all", "dropped").Inc()
		log.Warningf("hook queue full: %s of %s dropped", action, b.IP)
	}
}

// pushAll submits action for b to every sink, once per client it was
// scoped to and once unscoped.
func (c *CIPValidate) pushAll(action sink.Action, b blocks.Block, now time.Time, actor, why string) {
	for _, client := range b.Clients {
		c.push(action, b, client, now, actor, why)
	}
	if len(b.Clients) == 0 {
		c.push(action, b, netip.Addr{}, now, actor, why)
	}
}

// unblock lifts ip's block everywhere and records who and why. The
// operator's word then stands as a clean verdict for the clean TTL: DNS
// stops rewriting at once, and the IP is not validated (and blocked) again
// the next time a tagged client resolves it. To keep it for good, allow it.
func (c *CIPValidate) unblock(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	b, ok := c.unblockLocal(ip, actor, why)
	if ok {
		c.fleetDelete(fleetBlocks, ip.Unmap().String())
		c.fleetPublish(msgUnblock, unblockMsg{IP: ip.Unmap(), Actor: actor, Why: why})
	}
	return b, ok
}

// unblockLocal is unblock on this node only (a fleet message, or the
// first step of unblock).
func (c *CIPValidate) unblockLocal(ip netip.Addr, actor, why string) (blocks.Block, bool) {
	st, now := c.st, timeNow()
	b, err := st.blocks.Unblock(ip)
	if err != nil {
		return b, false
	}
	c.forgetVerdict(ip)
	st.cache.Put(verdicts.Verdict{IP: ip.Unmap(), Outcome: verdicts.Clean, Checked: now, Decision: b.Decision,
		Note: "unblocked by " + actor + ": " + why}, now)
	c.deleteState(kindBlocks, ip.String())
	c.deleteState(kindHistory, ip.String())
	if !b.Monitor {
		c.pushAll(sink.Unblock, b, now, actor, why)
	}
	c.audit(audit.Entry{Kind: "unblock", Decision: b.Decision, IP: ip.String(), Reasons: b.Reasons, Actor: actor, Detail: why})
	log.Infof("unblock %s ip=%s actor=%q why=%q", b.Decision, ip, actor, why)
	return b, true
}

// allow adds a dynamic allowlist entry and lifts the blocks it covers, on
// every node of a fleet.
func (c *CIPValidate) allow(a blocks.Allow) []blocks.Block {
	lifted := c.allowLocal(a)
	c.fleetPut(fleetAllow, a.Value, a, ttlUntil(a.Until, timeNow()))
	c.fleetPublish(msgAllow, a)
	return lifted
}

// allowLocal is allow on this node only.
func (c *CIPValidate) allowLocal(a blocks.Allow) []blocks.Block {
	st, now := c.st, timeNow()
	lifted := st.blocks.AddAllow(a, now)
	c.persist(kindAllow, a.Value, a.Until, a)
	c.audit(audit.Entry{Kind: "allow", IP: a.Value, Actor: a.Actor, Detail: a.Reason, TTL: ttlSeconds(a.Until, now)})
	for _, b := range lifted {
		c.forgetVerdict(b.IP)
		c.deleteState(kindBlocks, b.IP.String())
		c.deleteState(kindHistory, b.IP.String())
		if !b.Monitor {
			c.pushAll(sink.Unblock, b, now, a.Actor, "allowlisted: "+a.Reason)
		}
		c.audit(audit.Entry{Kind: "unblock", Decision: b.Decision, IP: b.IP.String(), Actor: a.Actor, Detail: "allowlisted " + a.Value})
	}
	return lifted
}

// forgetVerdict drops ip's verdict from the cache, the remembered names
// and the state directory.
func (c *CIPValidate) forgetVerdict(ip netip.Addr) {
	c.st.cache.Delete(ip)
	c.st.names.Forget(func(v verdicts.Verdict) bool { return v.IP == ip })
	c.deleteState(kindVerdicts, ip.String())
}

// expireBlocks runs in the sweeper: blocks past their TTL go, and sinks
// that cannot expire elements themselves (exec, webhook) hear of it.
func (c *CIPValidate) expireBlocks(now time.Time) {
	for _, b := range c.st.blocks.Sweep(now) {
		c.deleteState(kindBlocks, b.IP.String())
		c.audit(audit.Entry{Kind: "expire", Decision: b.Decision, IP: b.IP.String(), Reasons: b.Reasons, Actor: "cipvalidate"})
		if !b.Monitor {
			c.pushAll(sink.Unblock, b, now, "cipvalidate", "expired")
		}
	}
	blocksActive.Set(float64(len(c.st.blocks.Active(now))))
}

// resync pushes every live block to the sinks, at start: a firewall that
// was flushed or rebooted gets them back; for the others it is a no-op or
// a repeat they must tolerate.
func (c *CIPValidate) resync(now time.Time) {
	for _, b := range c.st.blocks.Active(now) {
		if !b.Monitor {
			c.pushAll(sink.Block, b, now, "cipvalidate", "resync at start")
		}
	}
}

// onHookResult audits and counts the outcome of every batch a sink took.
func (c *CIPValidate) onHookResult(r sink.Result) {
	if r.Err == nil {
		hookChanges.WithLabelValues(r.Sink, "ok").Add(float64(len(r.Batch)))
	} else if r.Final {
		hookChanges.WithLabelValues(r.Sink, "failed").Add(float64(len(r.Batch)))
	} else {
		hookChanges.WithLabelValues(r.Sink, "retried").Add(float64(len(r.Batch)))
	}
	if !r.Final {
		return
	}
	kind, detail := "hook_ok", r.Sink
	if r.Err != nil {
		kind, detail = "hook_failed", fmt.Sprintf("%s: %v (after %d attempts)", r.Sink, r.Err, r.Attempt)
		log.Errorf("hook %s", detail)
	}
	for _, ch := range r.Batch {
		c.audit(audit.Entry{Kind: kind, Decision: ch.Decision, IP: ch.IP.String(), Client: addrString(ch.Client),
			Event: ch.Event, Ref: ch.Ref, TTL: int64(ch.TTL.Seconds()), Actor: ch.Actor, Detail: string(ch.Action) + " " + detail})
	}
}

// buildSinks makes the configured sinks; nftables ones connect now.
func (c *CIPValidate) buildSinks() ([]sink.Sink, func(), error) {
	var out []sink.Sink
	var closers []func()
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	for _, h := range c.cfg.hooks {
		switch h.kind {
		case "nftables":
			cfg := h.nft
			if h.netns != "" {
				f, err := os.Open(filepath.Join("/var/run/netns", h.netns))
				if err != nil {
					closeAll()
					return nil, nil, fmt.Errorf("hook %s: network namespace: %w", h.line, err)
				}
				closers = append(closers, func() { f.Close() })
				cfg.NetNS = int(f.Fd())
			}
			s, err := nftset.New(cfg)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("hook %s: %w", h.line, err)
			}
			closers = append(closers, func() { s.Close() })
			out = append(out, s)
		case "exec":
			out = append(out, h.exec)
		case "webhook":
			out = append(out, h.webhook)
		}
	}
	return out, closeAll, nil
}

// restore loads the state directory into fresh shared state.
func (st *shared) restore(now time.Time, logf func(string, ...any)) {
	load := func(kind state.Kind, each func(json.RawMessage) error) {
		recs, err := st.store.Load(kind)
		if err != nil {
			logf("state: loading %s: %v", kind, err)
			return
		}
		for _, r := range recs {
			if err := each(r.Data); err != nil {
				logf("state: skipping a %s record %q: %v", kind, r.Key, err)
			}
		}
	}
	var bl []blocks.Block
	var hist []blocks.History
	var allow []blocks.Allow
	load(kindBlocks, func(d json.RawMessage) error {
		var b blocks.Block
		err := json.Unmarshal(d, &b)
		bl = append(bl, b)
		return err
	})
	load(kindHistory, func(d json.RawMessage) error {
		var h blocks.History
		err := json.Unmarshal(d, &h)
		hist = append(hist, h)
		return err
	})
	load(kindAllow, func(d json.RawMessage) error {
		var a blocks.Allow
		err := json.Unmarshal(d, &a)
		allow = append(allow, a)
		return err
	})
	st.blocks.Restore(bl, hist, allow, now)
	load(kindTags, func(d json.RawMessage) error {
		var t tags.Tag
		if err := json.Unmarshal(d, &t); err != nil {
			return err
		}
		if t.Until.After(now) {
			st.tags.Tag(t.Client, t.Since, t.Until, t.Ref, t.Event)
		}
		return nil
	})
	load(kindVerdicts, func(d json.RawMessage) error {
		var v verdicts.Verdict
		if err := json.Unmarshal(d, &v); err != nil {
			return err
		}
		if v.Expires.After(now) {
			st.cache.Put(v, now)
		}
		return nil
	})
	logf("state: restored %d blocks, %d allowlist entries, %d tagged clients, %d suspicious verdicts",
		len(st.blocks.Active(now)), len(allow), st.tags.Count(now), len(st.cache.SuspiciousList(now)))
}

// persist writes a record to the state directory, if there is one.
func (c *CIPValidate) persist(kind state.Kind, key string, expires time.Time, v any) {
	if c.st.writer == nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		log.Errorf("state: encoding %s %s: %v", kind, key, err)
		return
	}
	c.st.writer.Put(kind, state.Record{Key: key, Expires: expires, Data: data})
}

func (c *CIPValidate) persistBlock(b blocks.Block) {
	c.persist(kindBlocks, b.IP.String(), b.Expires, b)
}

func (c *CIPValidate) deleteState(kind state.Kind, key string) {
	if c.st.writer != nil {
		c.st.writer.Delete(kind, key)
	}
}

// audit writes one audit line, if there is an audit log.
func (c *CIPValidate) audit(e audit.Entry) {
	if c.st.audit != nil {
		if e.Time.IsZero() {
			e.Time = timeNow()
		}
		c.st.audit.Write(e)
	}
}

func reasonList(v verdicts.Verdict) []string {
	out := make([]string, len(v.Reasons))
	for i, r := range v.Reasons {
		out[i] = string(r.Factor) + ": " + r.Detail
	}
	return out
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

// stopDispatcher flushes the hooks' queues for a moment at shutdown.
func (c *CIPValidate) stopDispatcher() {
	if c.dispatcher == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.dispatcher.Stop(ctx); err != nil {
		log.Warningf("hooks: %v", err)
	}
	c.dispatcher = nil
	if c.closeSinks != nil {
		c.closeSinks()
		c.closeSinks = nil
	}
}
