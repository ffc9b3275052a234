package enforce

import (
	"context"
	"encoding/json"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
)

// The nodes of a fleet agree on the dynamic allowlist as on the blocks
// (see fleetblocks.go): each entry's value has one record on Redis (in the
// allow hash), the latest change to it, an entry or its removal, with the
// fleet.Version of the node that made it; the latest wins everywhere. A
// removal made while Redis was down is remembered (an unallow) and written
// back when Redis returns, so that no node's resync adds the entry again.

// allowChange is the latest change to one allowlist entry, as the bus
// carries it and Redis keeps it: the entry, or its removal.
type allowChange struct {
	Allow   *blocks.Allow `json:"allow,omitempty"`
	Removed *unallow      `json:"removed,omitempty"`
}

// unallow is the removal of an allowlist entry as the fleet remembers it.
type unallow struct {
	Value   string        `json:"value"`
	Actor   string        `json:"actor"`
	Until   time.Time     `json:"until"` // when the entry would have ended, or unallowKeep after its removal
	Version fleet.Version `json:"version"`
}

// unallowKeep is how long the removal of an entry without an end is
// remembered: a node cut off from the fleet for longer may bring the
// entry back.
const unallowKeep = 30 * 24 * time.Hour

// decodeAllowChange reads an allowlist change from the bus or Redis. A
// record written before versions is the entry itself.
func decodeAllowChange(data []byte) (allowChange, bool) {
	var c allowChange
	if json.Unmarshal(data, &c) != nil {
		return c, false
	}
	if c.Allow == nil && c.Removed == nil {
		var a blocks.Allow
		if json.Unmarshal(data, &a) != nil || a.Value == "" {
			return c, false
		}
		a.Version, c.Allow = 0, &a
	}
	return c, true
}

// shareAllow writes an entry made here to Redis and announces it, unless
// Redis holds a later change to its value.
func (e *Engine) shareAllow(a blocks.Allow) {
	ttl := ttlUntil(a.Until, e.Now())
	if a.Static || !a.Until.IsZero() && ttl <= 0 {
		return
	}
	e.shareChange(fleetAllow, a.Value, fleet.Version(a.Version), ttl, msgAllow, allowChange{Allow: &a})
}

// shareUnallow writes a removal made here to Redis and announces it,
// unless Redis holds a later change to the value.
func (e *Engine) shareUnallow(u unallow) {
	if ttl := u.Until.Sub(e.Now()); ttl > 0 {
		e.shareChange(fleetAllow, u.Value, u.Version, ttl, msgUnallow, allowChange{Removed: &u})
	}
}

// newUnallow records, here, that this node removed entry a: a fleet then
// knows its value as removed by a change later than a.
func (e *Engine) newUnallow(a blocks.Allow, actor string) (unallow, bool) {
	now := e.Now()
	until := a.Until
	if until.IsZero() {
		until = now.Add(unallowKeep)
	}
	if e.st.fleet == nil || !now.Before(until) {
		return unallow{}, false
	}
	u := unallow{Value: a.Value, Actor: actor, Until: until, Version: fleet.Version(e.stamp(a.Version))}
	ts := &e.st.tombs
	ts.mu.Lock()
	ts.unallows[u.Value] = u
	ts.mu.Unlock()
	e.persist(kindUnallows, u.Value, u.Until, u)
	return u, true
}

// forgetUnallow drops value's removal: an entry of value was made here.
func (e *Engine) forgetUnallow(value string) {
	ts := &e.st.tombs
	ts.mu.Lock()
	_, ok := ts.unallows[value]
	delete(ts.unallows, value)
	ts.mu.Unlock()
	if ok {
		e.deleteState(kindUnallows, value)
	}
}

// applyAllowChange applies a change another node made to the allowlist,
// if it is later than what this node has for the value.
func (e *Engine) applyAllowChange(c allowChange) {
	switch {
	case c.Allow != nil:
		e.adoptAllow(*c.Allow)
	case c.Removed != nil:
		e.adoptUnallow(*c.Removed)
	}
}

// adoptAllow takes an allowlist entry another node made (its value is
// parsed again: what another node sends is not trusted blindly), unless
// this node has a later entry or removal of the value.
func (e *Engine) adoptAllow(a blocks.Allow) {
	parsed, err := blocks.ParseAllow(a.Value)
	now := e.Now()
	if err != nil || !a.Until.IsZero() && !now.Before(a.Until) {
		return
	}
	parsed.Until, parsed.Reason, parsed.Actor, parsed.Created, parsed.Version = a.Until, a.Reason, a.Actor, a.Created, a.Version
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e.observe(fleet.Version(a.Version))
	if u, ok := ts.unallows[parsed.Value]; ok && u.Version >= fleet.Version(a.Version) {
		return
	}
	if cur, ok := e.st.blocks.Dynamic(parsed.Value); ok && cur.Version >= a.Version {
		return
	}
	if _, ok := ts.unallows[parsed.Value]; ok {
		delete(ts.unallows, parsed.Value)
		e.deleteState(kindUnallows, parsed.Value)
	}
	e.allowLocal(parsed)
}

// adoptUnallow takes a removal another node made, unless this node has a
// later entry or removal of the value.
func (e *Engine) adoptUnallow(u unallow) {
	if u.Value == "" || !e.Now().Before(u.Until) {
		return
	}
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	e.observe(u.Version)
	if cur, ok := e.st.blocks.Dynamic(u.Value); ok && fleet.Version(cur.Version) > u.Version {
		return
	}
	if old, ok := ts.unallows[u.Value]; ok && old.Version >= u.Version {
		return
	}
	ts.unallows[u.Value] = u
	e.persist(kindUnallows, u.Value, u.Until, u)
	e.removeAllowLocal(u.Value, u.Actor)
}

// syncAllow makes this node and Redis agree on the dynamic allowlist, as
// syncBlocks does on the blocks.
func (e *Engine) syncAllow(ctx context.Context, f *fleet.Fleet, now time.Time) {
	for _, a := range e.st.blocks.Allowlist(now) {
		e.observe(fleet.Version(a.Version))
	}
	for _, u := range e.st.tombs.liveUnallows(now) {
		e.observe(u.Version)
	}
	recs, err := f.ListRecords(ctx, fleetAllow)
	if err != nil {
		return
	}
	for _, rec := range recs {
		if c, ok := decodeAllowChange(rec.Data); ok {
			e.applyAllowChange(c)
		}
	}
	for _, a := range e.st.blocks.Allowlist(now) {
		if rec, ok := recs[a.Value]; a.Static || ok && rec.Version >= fleet.Version(a.Version) {
			continue
		}
		e.shareAllow(a)
	}
	for _, u := range e.st.tombs.liveUnallows(now) {
		if rec, ok := recs[u.Value]; ok && rec.Version >= u.Version {
			continue
		}
		e.shareUnallow(u)
	}
}

// observe advances this node's fleet clock past v.
func (e *Engine) observe(v fleet.Version) {
	if f := e.st.fleet; f != nil {
		f.Clock().Observe(v)
	}
}
