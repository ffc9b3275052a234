package cipvalidate

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/events"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"golang.org/x/time/rate"
)

// A fleet of resolvers shares verdicts, tags, blocks, the allowlist, the
// events' reports and the API quota on Redis (the `redis` option). Redis is
// never touched on the DNS path: only by the validation workers, the event
// API and the fleet's own goroutines. While Redis is down every node keeps
// working on its local state, and resynchronises when Redis is back.

// Record kinds and message kinds on Redis.
const (
	fleetTags   = "tags"
	fleetBlocks = "blocks"
	fleetAllow  = "allow"

	msgEvent   = "event"
	msgUntag   = "untag"
	msgBlock   = "block"
	msgUnblock = "unblock"
	msgAllow   = "allow"
	msgUnallow = "unallow"
)

// fleetOp bounds the Redis work of one request or message.
const fleetOp = 2 * time.Second

// fleetRemote is the second level of the verdict cache, with claims so
// that one node calls the API for an IP while the others wait for it.
type fleetRemote struct{ c *CIPValidate }

// Acquire implements validate.Remote.
func (r fleetRemote) Acquire(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool, func()) {
	noop := func() {}
	f := r.c.st.fleet
	if f == nil || !f.Up() {
		return verdicts.Verdict{}, false, noop
	}
	if v, ok := r.get(ctx, ip); ok {
		return v, true, noop
	}
	claim := r.c.claimTTL()
	won, err := f.Claim(ctx, ip, claim)
	if err != nil {
		return verdicts.Verdict{}, false, noop
	}
	if won {
		return verdicts.Verdict{}, false, func() {
			ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
			defer cancel()
			f.Release(ctx, ip)
		}
	}
	// Another node is asking the API: wait for its verdict, up to its
	// claim; if it never comes, ask ourselves.
	wctx, cancel := context.WithTimeout(ctx, claim)
	defer cancel()
	data, ok, err := f.WaitVerdict(wctx, ip, 25*time.Millisecond)
	if err == nil && ok {
		var v verdicts.Verdict
		if json.Unmarshal(data, &v) == nil && v.IP.IsValid() {
			return v, true, noop
		}
	}
	return verdicts.Verdict{}, false, noop
}

func (r fleetRemote) get(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool) {
	data, ok, err := r.c.st.fleet.GetVerdict(ctx, ip)
	if err != nil || !ok {
		return verdicts.Verdict{}, false
	}
	var v verdicts.Verdict
	if json.Unmarshal(data, &v) != nil || !v.IP.IsValid() || !timeNow().Before(v.Expires) {
		return verdicts.Verdict{}, false
	}
	return v, true
}

// Store implements validate.Remote: the verdict lives on Redis as long as
// in the local cache.
func (r fleetRemote) Store(ctx context.Context, v verdicts.Verdict) {
	f := r.c.st.fleet
	ttl := v.Expires.Sub(timeNow())
	if f == nil || ttl <= 0 {
		return
	}
	data, err := json.Marshal(v)
	if err == nil {
		f.PutVerdict(ctx, v.IP, data, ttl)
	}
}

// claimTTL is how long a claim holds off the other nodes: one request's
// worth of attempts.
func (c *CIPValidate) claimTTL() time.Duration {
	return 4*c.cfg.timeout + 2*time.Second
}

// apiLimiter is the fleet-wide rate limit, falling back to this node's
// share while Redis is down.
func (c *CIPValidate) apiLimiter() *fleet.Limiter {
	f := c.st.fleet
	r, burst := c.cfg.rate, c.cfg.burst
	if r <= 0 {
		r, burst = 2, 4 // criminalip.DefaultRate, DefaultBurst
	}
	nodes := 1
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	if n, err := f.Nodes(ctx); err == nil && n > 0 {
		nodes = n
	}
	cancel()
	fallback := rate.NewLimiter(rate.Limit(r/float64(nodes)), max(1, burst/nodes))
	return f.NewLimiter("api", r, burst, fallback)
}

// fleetPut writes a record, logging (not failing) when Redis is down: the
// resync on reconnect catches up.
func (c *CIPValidate) fleetPut(kind, key string, v any, ttl time.Duration) {
	f := c.st.fleet
	if f == nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	if err := f.Put(ctx, kind, key, data, ttl); err != nil && !errors.Is(err, fleet.ErrDown) {
		log.Warningf("fleet: %s %s: %v", kind, key, err)
	}
}

func (c *CIPValidate) fleetDelete(kind, key string) {
	if f := c.st.fleet; f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
		defer cancel()
		f.Delete(ctx, kind, key)
	}
}

func (c *CIPValidate) fleetPublish(kind string, v any) {
	f := c.st.fleet
	if f == nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	f.Publish(ctx, kind, data)
}

// fleetEvent is an event as the fleet carries it (events.Event encodes
// durations as text for people; here they travel as nanoseconds).
type fleetEvent struct {
	ID     string        `json:"id"`
	Client netip.Addr    `json:"client"`
	Type   string        `json:"type"`
	At     time.Time     `json:"at"`
	Window time.Duration `json:"window"`
	Watch  time.Duration `json:"watch"`
	Ref    string        `json:"ref"`
}

func toFleetEvent(id string, ev events.Event) fleetEvent {
	return fleetEvent{ID: id, Client: ev.Client, Type: ev.Type, At: ev.At, Window: ev.Window, Watch: ev.Watch, Ref: ev.Ref}
}

func (fe fleetEvent) event() events.Event {
	return events.Event{Client: fe.Client, Type: fe.Type, At: fe.At, Window: fe.Window, Watch: fe.Watch, Ref: fe.Ref}
}

// unblockMsg is an unblock as the fleet carries it.
type unblockMsg struct {
	IP    netip.Addr `json:"ip"`
	Actor string     `json:"actor"`
	Why   string     `json:"why"`
}

// report is what one node found for an event.
type report struct {
	Node     string          `json:"node"`
	Accepted events.Accepted `json:"accepted"`
	Found    []events.Found  `json:"found"`
}

// putReport records this node's findings for an event on Redis.
func (c *CIPValidate) putReport(id string, acc events.Accepted, found []events.Found) {
	f := c.st.fleet
	if f == nil {
		return
	}
	data, err := json.Marshal(report{Node: f.Node(), Accepted: acc, Found: found})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	f.PutReport(ctx, id, data, 24*time.Hour)
}

// onFleetMessage applies what another node did. It runs on the fleet's
// subscriber goroutine.
func (c *CIPValidate) onFleetMessage(m fleet.Message) {
	now := timeNow()
	st := c.st
	switch m.Kind {
	case msgEvent:
		var fe fleetEvent
		if err := json.Unmarshal(m.Data, &fe); err != nil {
			log.Warningf("fleet: event from %s: %v", m.Origin, err)
			return
		}
		acc, found := backend{c}.submit(fe.event(), fe.ID, false)
		c.putReport(fe.ID, acc, found)
	case msgUntag:
		var ip netip.Addr
		if json.Unmarshal(m.Data, &ip) == nil {
			st.tags.Untag(ip)
			c.deleteState(kindTags, ip.String())
		}
	case msgBlock:
		var b blocks.Block
		if json.Unmarshal(m.Data, &b) != nil {
			return
		}
		c.adoptBlock(b, now)
	case msgUnblock:
		var u unblockMsg
		if json.Unmarshal(m.Data, &u) == nil {
			c.unblockLocal(u.IP, u.Actor, u.Why)
		}
	case msgAllow:
		var a blocks.Allow
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		if parsed, err := blocks.ParseAllow(a.Value); err == nil {
			parsed.Until, parsed.Reason, parsed.Actor, parsed.Created = a.Until, a.Reason, a.Actor, a.Created
			c.allowLocal(parsed)
		}
	case msgUnallow:
		var v string
		if json.Unmarshal(m.Data, &v) == nil && st.blocks.RemoveAllow(v) {
			c.deleteState(kindAllow, v)
		}
	}
}

// adoptBlock takes a block another node decided: recorded, persisted and
// pushed to this node's own hooks (its firewall).
func (c *CIPValidate) adoptBlock(b blocks.Block, now time.Time) {
	if !c.st.blocks.Adopt(b, now) {
		return
	}
	c.persistBlock(b)
	if !b.Monitor {
		c.pushAll(sink.Block, b, now, "fleet", "decided by another node")
	}
}

// fleetSync makes this node and Redis agree, at start and whenever Redis
// comes back: what Redis has and this node does not is adopted; what this
// node decided meanwhile is written and announced.
func (c *CIPValidate) fleetSync() {
	f := c.st.fleet
	if f == nil {
		return
	}
	now := timeNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if recs, err := f.List(ctx, fleetBlocks); err == nil {
		for _, data := range recs {
			var b blocks.Block
			if json.Unmarshal(data, &b) == nil {
				c.adoptBlock(b, now)
			}
		}
	}
	if recs, err := f.List(ctx, fleetAllow); err == nil {
		for _, data := range recs {
			var a blocks.Allow
			if json.Unmarshal(data, &a) != nil {
				continue
			}
			if parsed, err := blocks.ParseAllow(a.Value); err == nil {
				parsed.Until, parsed.Reason, parsed.Actor, parsed.Created = a.Until, a.Reason, a.Actor, a.Created
				c.allowLocal(parsed)
			}
		}
	}
	if recs, err := f.List(ctx, fleetTags); err == nil {
		for _, data := range recs {
			var t tags.Tag
			if json.Unmarshal(data, &t) == nil && t.Until.After(now) {
				c.st.tags.Tag(t.Client, t.Since, t.Until, t.Ref, t.Event)
			}
		}
	}
	for _, b := range c.st.blocks.Active(now) {
		if !b.Monitor {
			c.fleetPut(fleetBlocks, b.IP.String(), b, b.Expires.Sub(now))
			c.fleetPublish(msgBlock, b)
		}
	}
	for _, a := range c.st.blocks.Allowlist(now) {
		if !a.Static {
			c.fleetPut(fleetAllow, a.Value, a, ttlUntil(a.Until, now))
		}
	}
	for _, t := range c.st.tags.List(now) {
		c.fleetPut(fleetTags, t.Client.String(), t, t.Until.Sub(now))
	}
}

func ttlUntil(until, now time.Time) time.Duration {
	if until.IsZero() {
		return 0
	}
	return until.Sub(now)
}

// Reports implements events.ReportBackend.
func (b backend) Reports(id string) map[string]any {
	f := b.c.st.fleet
	if f == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	reps, err := f.Reports(ctx, id)
	if err != nil || len(reps) == 0 {
		return nil
	}
	out := make(map[string]any, len(reps))
	for node, data := range reps {
		out[node] = json.RawMessage(data)
	}
	return out
}

// remote is the fleet's verdict cache, or nil for a single node.
func (c *CIPValidate) remote() validate.Remote {
	if c.st.fleet == nil {
		return nil
	}
	return fleetRemote{c}
}

// onRemoteVerdict runs for a verdict another node reached: this node
// remembers the name for DNS; the deciding node made the block, which
// arrives as a message.
func (c *CIPValidate) onRemoteVerdict(v verdicts.Verdict, job validate.Job) {
	if v.Suspicious() && job.Name != "" && !c.allowedName(job.Name) {
		c.st.names.Put(job.Name, v)
	}
}
