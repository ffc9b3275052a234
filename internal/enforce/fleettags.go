package enforce

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/tags"
)

// The nodes of a fleet agree on the event tags as on the blocks (see
// fleetblocks.go): each client has one record on Redis (in the tags
// hash), the latest change to its tag, the tag or its removal, with the
// fleet.Version of the node that made it; the latest wins everywhere. A
// tag's version travels with its event, so the other nodes tag by it. An
// untag made while Redis was down is remembered (in the state directory
// too) until the tag would have ended, and written back when Redis
// returns, so that no node's resync tags the client again.

// kindUntags holds a fleet's untags.
const kindUntags state.Kind = "untags"

// tagChange is the latest change to one client's tag, as the bus carries
// it and Redis keeps it: the tag, or its removal.
type tagChange struct {
	Tag     *tags.Tag `json:"tag,omitempty"`
	Removed *untag    `json:"removed,omitempty"`
}

// untag is the removal of a client's tag as the fleet remembers it.
type untag struct {
	Client  netip.Addr    `json:"client"`
	Until   time.Time     `json:"until"` // when the tag would have ended
	Version fleet.Version `json:"version"`
}

// decodeTagChange reads a tag change from Redis or the bus. A record
// written before versions is the tag itself.
func decodeTagChange(data []byte) (tagChange, bool) {
	var c tagChange
	if json.Unmarshal(data, &c) == nil && (c.Tag != nil || c.Removed != nil) {
		return c, true
	}
	var t tags.Tag
	if json.Unmarshal(data, &t) == nil && t.Client.IsValid() {
		t.Version = 0
		return tagChange{Tag: &t}, true
	}
	return c, false
}

// liveUntags returns the untags live at now.
func (ts *tombstones) liveUntags(now time.Time) []untag {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]untag, 0, len(ts.untags))
	for _, u := range ts.untags {
		if now.Before(u.Until) {
			out = append(out, u)
		}
	}
	return out
}

func (ts *tombstones) restoreUntags(untags []untag, now time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, u := range untags {
		if u.Client.IsValid() && now.Before(u.Until) {
			ts.untags[u.Client.Unmap()] = u
		}
	}
}

// shareTag writes a tag made here to Redis, unless Redis holds a later
// change to the client. The event that made it is announced apart.
func (e *Engine) shareTag(t tags.Tag) {
	if ttl := t.Until.Sub(e.Now()); ttl > 0 {
		e.shareChange(fleetTags, t.Client.String(), fleet.Version(t.Version), ttl, "", tagChange{Tag: &t})
	}
}

// shareUntag writes an untag made here to Redis and announces it, unless
// Redis holds a later change to the client.
func (e *Engine) shareUntag(u untag) {
	if ttl := u.Until.Sub(e.Now()); ttl > 0 {
		e.shareChange(fleetTags, u.Client.String(), u.Version, ttl, msgUntag, tagChange{Removed: &u})
	}
}

// newUntag records, here, that this node removed tag t.
func (e *Engine) newUntag(t tags.Tag) (untag, bool) {
	if e.st.fleet == nil || !e.Now().Before(t.Until) {
		return untag{}, false
	}
	u := untag{Client: t.Client.Unmap(), Until: t.Until, Version: fleet.Version(e.stamp(t.Version))}
	ts := &e.st.tombs
	ts.mu.Lock()
	ts.untags[u.Client] = u
	ts.mu.Unlock()
	e.persist(kindUntags, u.Client.String(), u.Until, u)
	return u, true
}

// tagStandsLocked reports, with the tombstones locked, whether a tag of
// version v of client is later than the client's untag, forgetting the
// untag if it is.
func (e *Engine) tagStandsLocked(client netip.Addr, v fleet.Version) bool {
	ts := &e.st.tombs
	u, ok := ts.untags[client.Unmap()]
	if ok && u.Version >= v {
		return false
	}
	if ok {
		delete(ts.untags, u.Client)
		e.deleteState(kindUntags, u.Client.String())
	}
	return true
}

// applyTagChange applies a change another node made to a client's tag,
// if it is later than what this node has for the client.
func (e *Engine) applyTagChange(c tagChange) {
	now := e.Now()
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch {
	case c.Tag != nil:
		t := *c.Tag
		e.observe(fleet.Version(t.Version))
		if !t.Client.IsValid() || !t.Until.After(now) || !e.tagStandsLocked(t.Client, fleet.Version(t.Version)) {
			return
		}
		e.tagLocal(t.Client, t.Since, t.Until, t.Ref, t.Event, t.Version, now)
	case c.Removed != nil:
		u := *c.Removed
		e.observe(u.Version)
		if !u.Client.IsValid() || !now.Before(u.Until) {
			return
		}
		if cur, ok := e.st.tags.Lookup(u.Client, now); ok && cur.Reason == tags.ReasonEvent && fleet.Version(cur.Version) > u.Version {
			return
		}
		if old, ok := ts.untags[u.Client.Unmap()]; ok && old.Version >= u.Version {
			return
		}
		u.Client = u.Client.Unmap()
		ts.untags[u.Client] = u
		e.persist(kindUntags, u.Client.String(), u.Until, u)
		e.untagLocal(u.Client)
	}
}

// tagEvent tags client for an event unless this node has a later untag
// of it (version 0, an event from a node that predates versions, is
// older than any); see tagLocal.
func (e *Engine) tagEvent(client netip.Addr, since, until time.Time, ref, event string, version uint64, now time.Time) (tags.Tag, bool) {
	ts := &e.st.tombs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !e.tagStandsLocked(client, fleet.Version(version)) {
		return tags.Tag{}, false
	}
	return e.tagLocal(client, since, until, ref, event, version, now)
}

// tagLocal tags client on this node and queues the tag for the disk; it
// returns the client's event tag as it now stands.
func (e *Engine) tagLocal(client netip.Addr, since, until time.Time, ref, event string, version uint64, now time.Time) (tags.Tag, bool) {
	var t tags.Tag
	var ok bool
	e.st.record(func() {
		e.st.tags.TagVersion(client, since, until, ref, event, version)
		if t, ok = e.st.tags.Lookup(client, now); ok && t.Reason == tags.ReasonEvent {
			e.persist(kindTags, client.String(), t.Until, t)
		}
	})
	return t, ok && t.Reason == tags.ReasonEvent
}

// syncTags makes this node and Redis agree on the event tags, as
// syncBlocks does on the blocks.
func (e *Engine) syncTags(ctx context.Context, f *fleet.Fleet, now time.Time) {
	for _, t := range e.st.tags.List(now) {
		e.observe(fleet.Version(t.Version))
	}
	for _, u := range e.st.tombs.liveUntags(now) {
		e.observe(u.Version)
	}
	recs, err := f.ListRecords(ctx, fleetTags)
	if err != nil {
		return
	}
	for _, rec := range recs {
		if c, ok := decodeTagChange(rec.Data); ok {
			e.applyTagChange(c)
		}
	}
	for _, t := range e.st.tags.List(now) {
		if rec, ok := recs[t.Client.String()]; ok && rec.Version >= fleet.Version(t.Version) {
			continue
		}
		e.shareTag(t)
	}
	for _, u := range e.st.tombs.liveUntags(now) {
		if rec, ok := recs[u.Client.String()]; ok && rec.Version >= u.Version {
			continue
		}
		e.shareUntag(u)
	}
}
