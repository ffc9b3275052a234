package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// How the nodes of a fleet agree on the blocks.
//
// Each IP has one record on Redis (in the blocks hash): the latest change
// to its block, a block with the verdict behind it or a lift (an unblock,
// or a block lifted by an allowlist entry), and every change carries a
// fleet.Version from the node that made it. A node applies a change it
// hears of (on the bus, or from Redis when it resynchronises) only if it
// is later than what the node has for the IP, and writes its own with
// fleet.PutNewer, which keeps the later of two writes. So the latest
// change wins on every node whatever order the changes arrive in, and a
// change made while Redis was down, stamped when it was made, is neither
// lost nor undone when Redis comes back: an unblock on a node cut off from
// Redis stands, and the other nodes lift the block when they hear of it.
//
// A node remembers the lifts it made or heard of until the lifted block
// would have ended (in the state directory too), so that the block, still
// held by a node that was cut off or written back by one after Redis lost
// its data, is not adopted again.

// blockChange is the latest change to one IP's block, as the bus carries
// it and Redis keeps it: a block, with the verdict behind it so that the
// other nodes' DNS path rewrites at once, or a lift.
type blockChange struct {
	Block   *blocks.Block     `json:"block,omitempty"`
	Verdict *verdicts.Verdict `json:"verdict,omitempty"`
	Lift    *lift             `json:"lift,omitempty"`
}

// lift is an unblock as the fleet remembers it.
type lift struct {
	IP       netip.Addr    `json:"ip"`
	Range    netip.Prefix  `json:"range,omitzero"`     // a lifted range block's (IP zero)
	Decision string        `json:"decision,omitempty"` // the lifted block's
	Actor    string        `json:"actor"`
	Why      string        `json:"why"`
	Until    time.Time     `json:"until"` // when the lifted block would have ended
	Version  fleet.Version `json:"version"`
}

// tombstones are the lifts and the allowlist removals a node made or
// heard of, kept while a node cut off from the fleet may still hold what
// they removed. The lock is held while a change to a block or an
// allowlist entry is applied, so that its checks and the change are one
// step.
type tombstones struct {
	mu       sync.Mutex
	lifts    map[netip.Addr]lift
	unallows map[string]unallow
	untags   map[netip.Addr]untag // see fleettags.go
}

func newTombstones() tombstones {
	return tombstones{lifts: map[netip.Addr]lift{}, unallows: map[string]unallow{}, untags: map[netip.Addr]untag{}}
}

func (ts *tombstones) restore(lifts []lift, unallows []unallow, now time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, l := range lifts {
		if l.IP.IsValid() && now.Before(l.Until) {
			ts.lifts[l.IP.Unmap()] = l
		}
	}
	for _, u := range unallows {
		if u.Value != "" && now.Before(u.Until) {
			ts.unallows[u.Value] = u
		}
	}
}

// liveLifts returns the lifts live at now.
func (ts *tombstones) liveLifts(now time.Time) []lift {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]lift, 0, len(ts.lifts))
	for _, l := range ts.lifts {
		if now.Before(l.Until) {
			out = append(out, l)
		}
	}
	return out
}

// liveUnallows returns the allowlist removals live at now.
func (ts *tombstones) liveUnallows(now time.Time) []unallow {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]unallow, 0, len(ts.unallows))
	for _, u := range ts.unallows {
		if now.Before(u.Until) {
			out = append(out, u)
		}
	}
	return out
}

// sweep forgets the tombstones that ended by now.
func (ts *tombstones) sweep(now time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for ip, l := range ts.lifts {
		if !now.Before(l.Until) {
			delete(ts.lifts, ip)
		}
	}
	for v, u := range ts.unallows {
		if !now.Before(u.Until) {
			delete(ts.unallows, v)
		}
	}
	for c, u := range ts.untags {
		if !now.Before(u.Until) {
			delete(ts.untags, c)
		}
	}
}

// stamp returns the Version of a change made on this node now, later than
// after (the Version of what it changes); 0 without a fleet.
func (e *Engine) stamp(after uint64) uint64 {
	f := e.st.fleet
	if f == nil {
		return 0
	}
	f.Clock().Observe(fleet.Version(after))
	return uint64(f.Clock().Stamp(e.Now()))
}

// shareBlock writes a block made or widened here, with its verdict, to
// Redis and announces it, unless Redis holds a later change to the IP.
func (e *Engine) shareBlock(b blocks.Block, v *verdicts.Verdict) {
	now := e.Now()
	if b.Monitor || !now.Before(b.Expires) {
		return
	}
	if v != nil && (v.IP != b.IP || !v.Suspicious()) {
		v = nil
	}
	e.shareChange(fleetBlocks, b.Key(), fleet.Version(b.Version), b.Expires.Sub(now), msgBlock, blockChange{Block: &b, Verdict: v})
}

// shareLift writes a lift made here to Redis, with the operator's clean
// verdict, and announces it, unless Redis holds a later change to the IP.
func (e *Engine) shareLift(l lift) {
	now := e.Now()
	key := l.IP.String()
	if l.Range.IsValid() {
		key = l.Range.String()
	}
	if !now.Before(l.Until) || !e.shareChange(fleetBlocks, key, l.Version, l.Until.Sub(now), msgUnblock, blockChange{Lift: &l}) {
		return
	}
	if v, ok := e.st.cache.Get(l.IP, now); ok && v.Outcome == verdicts.Clean {
		fleetRemote{e}.Store(context.Background(), v)
	}
}

// shareChange writes change c, of version v, to the record key of kind
// if it is later than the one there, and then announces it as msgKind
// ("": not at all).
// It reports whether c was written. A later change on Redis was announced
// by its writer.
func (e *Engine) shareChange(kind, key string, v fleet.Version, ttl time.Duration, msgKind string, c any) bool {
	f := e.st.fleet
	if f == nil {
		return false
	}
	data, err := json.Marshal(c)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	stored, err := f.PutNewer(ctx, kind, key, v, data, ttl)
	if err != nil {
		if !errors.Is(err, fleet.ErrDown) {
			e.log.Warningf("fleet: %s %s: %v", msgKind, key, err)
		}
		return false
	}
	if stored && msgKind != "" {
		f.Publish(ctx, msgKind, data)
	}
	return stored
}

// newLift records, here, that this node lifted b: a fleet then knows the
// block's IP as unblocked by a change later than b.
func (e *Engine) newLift(b blocks.Block, actor, why string) (lift, bool) {
	if e.st.fleet == nil || b.Monitor {
		return lift{}, false
	}
	l := lift{IP: b.IP.Unmap(), Range: b.Range, Decision: b.Decision, Actor: actor, Why: why, Until: b.Expires, Version: fleet.Version(e.stamp(b.Version))}
	if l.Range.IsValid() {
		// Range lifts keep no tombstone: a range block is an operator's,
		// rare, and its record on Redis says it was lifted.
		return l, true
	}
	ts := &e.st.tombs
	ts.mu.Lock()
	ts.lifts[l.IP] = l
	ts.mu.Unlock()
	e.persist(kindLifts, l.IP.String(), l.Until, l)
	return l, true
}

// forgetLift drops ip's lift: a block of ip was made here since.
func (e *Engine) forgetLift(ip netip.Addr) {
	ts := &e.st.tombs
	ts.mu.Lock()
	_, ok := ts.lifts[ip]
	delete(ts.lifts, ip)
	ts.mu.Unlock()
	if ok {
		e.deleteState(kindLifts, ip.String())
	}
}

// applyChange applies a change another node made, if it is later than
// what this node has for the IP.
func (e *Engine) applyChange(c blockChange, now time.Time) {
	switch {
	case c.Block != nil && c.Block.Range.IsValid():
		e.adoptRange(*c.Block, now)
	case c.Lift != nil && c.Lift.Range.IsValid():
		e.adoptRangeLift(*c.Lift, now)
	case c.Block != nil:
		e.adoptBlock(*c.Block, c.Verdict, now)
	case c.Lift != nil:
		e.adoptLift(*c.Lift, now)
	}
}

// adoptBlock takes a block another node decided: its verdict goes to the
// verdict cache first, so that DNS rewrites as soon as the block is
// listed, and the block is recorded, persisted and pushed to this node's
// own hooks (its firewall). A block older than this node's block or lift
// of the IP is not taken.
func (e *Engine) adoptBlock(b blocks.Block, v *verdicts.Verdict, now time.Time) {
	b.IP = b.IP.Unmap()
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if l, ok := ts.lifts[b.IP]; ok && l.Version >= fleet.Version(b.Version) {
		return
	}
	e.observe(fleet.Version(b.Version))
	if v != nil && v.IP.Unmap() == b.IP && v.Suspicious() && now.Before(b.Expires) {
		if _, allowed := e.st.blocks.Allowed(b.IP, b.Qnames, now); !allowed {
			e.adoptVerdict(*v, b.Qnames, now)
		}
	}
	var adopted bool
	e.st.record(func() { // the block and its record together (see State.record)
		if adopted = e.st.blocks.Adopt(b, now); adopted {
			e.persistBlock(b)
			e.histAdopted(b, v, now)
		}
	})
	if !adopted {
		return
	}
	if _, ok := ts.lifts[b.IP]; ok {
		delete(ts.lifts, b.IP)
		e.deleteState(kindLifts, b.IP.String())
	}
	if !b.Monitor {
		e.pushAll(sink.Block, b, now, actorFleet, "decided by another node")
	}
}

// adoptVerdict caches a suspicious verdict another node reached, unless
// this node has a verdict of the IP as recent (an operator's clean one,
// say). The names given, which led to a shared IP, are remembered for
// DNS, since a shared IP is rewritten by name only.
func (e *Engine) adoptVerdict(v verdicts.Verdict, names []string, now time.Time) {
	if cur, ok := e.st.cache.Get(v.IP, now); ok && !cur.Checked.Before(v.Checked) {
		return
	}
	v = e.st.putVerdict(v, now)
	if !now.Before(v.Expires) {
		return
	}
	e.persist(kindVerdicts, v.IP.String(), v.Expires, v)
	if e.Shared(v) {
		for _, n := range names {
			if !e.AllowedName(n) {
				e.st.names.Put(n, v)
			}
		}
	}
}

// adoptLift takes a lift another node made: the block goes (hooks, audit)
// and the operator's word stands as a clean verdict, unless this node has
// a later block or lift of the IP.
func (e *Engine) adoptLift(l lift, now time.Time) {
	l.IP = l.IP.Unmap()
	if !l.IP.IsValid() || !now.Before(l.Until) {
		return
	}
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e.observe(l.Version)
	if b, ok := e.st.blocks.Get(l.IP, now); ok && fleet.Version(b.Version) > l.Version {
		return
	}
	if cur, ok := ts.lifts[l.IP]; ok && cur.Version >= l.Version {
		return
	}
	ts.lifts[l.IP] = l
	e.persist(kindLifts, l.IP.String(), l.Until, l)
	if _, ok := e.unblockLocal(l.IP, l.Actor, l.Why); !ok {
		e.standClean(l.IP, l.Decision, l.Actor, l.Why, now) // a verdict without a block here
	}
}

// syncBlocks makes this node and Redis agree on the blocks: the changes
// on Redis later than this node's are applied, and this node's later
// than Redis's (made while Redis was down, or lost with Redis's data) are
// written and announced.
func (e *Engine) syncBlocks(ctx context.Context, f *fleet.Fleet, now time.Time) {
	for _, b := range e.st.blocks.Active(now) {
		f.Clock().Observe(fleet.Version(b.Version))
	}
	for _, l := range e.st.tombs.liveLifts(now) {
		f.Clock().Observe(l.Version)
	}
	recs, err := f.ListRecords(ctx, fleetBlocks)
	if err != nil {
		return
	}
	for _, rec := range recs {
		var c blockChange
		if json.Unmarshal(rec.Data, &c) != nil {
			continue
		}
		if c.Block == nil && c.Lift == nil {
			// A record written before versions: the block itself.
			var b blocks.Block
			if json.Unmarshal(rec.Data, &b) != nil {
				continue
			}
			b.Version, c.Block = 0, &b
		}
		e.applyChange(c, now)
	}
	for _, b := range e.st.blocks.Active(now) {
		if rec, ok := recs[b.IP.String()]; b.Monitor || ok && rec.Version >= fleet.Version(b.Version) {
			continue
		}
		var v *verdicts.Verdict
		if cv, ok := e.st.cache.Get(b.IP, now); ok {
			v = &cv
		}
		e.shareBlock(b, v)
	}
	for _, b := range e.st.blocks.ActiveRanges(now) {
		if rec, ok := recs[b.Key()]; !b.Monitor && (!ok || rec.Version < fleet.Version(b.Version)) {
			e.shareBlock(b, nil)
		}
	}
	for _, l := range e.st.tombs.liveLifts(now) {
		if rec, ok := recs[l.IP.String()]; ok && rec.Version >= l.Version {
			continue
		}
		e.shareLift(l)
	}
}

// remoteVerdict returns ip's verdict from Redis, and caches it here, for
// an IP this node has no verdict of.
func (e *Engine) remoteVerdict(ip netip.Addr) (verdicts.Verdict, bool) {
	if e.st.fleet == nil {
		return verdicts.Verdict{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	v, ok := fleetRemote{e}.get(ctx, ip.Unmap())
	if !ok {
		return verdicts.Verdict{}, false
	}
	return e.st.cache.Put(v, e.Now()), true
}
