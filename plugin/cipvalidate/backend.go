package cipvalidate

import (
	"net/netip"
	"slices"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/events"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/window"
)

// backend is what the event API does to this plugin instance.
type backend struct{ c *CIPValidate }

// Defaults gives the Corefile's window and watch, and retain as the longest
// window an event may ask for.
func (b backend) Defaults() events.Defaults {
	cfg := b.c.cfg
	return events.Defaults{Window: cfg.window, Watch: cfg.watch, MaxWindow: cfg.retain}
}

// Submit tags the client from the event's time for its watch, and queues
// every public IP the client resolved in [at-window, at] with high priority.
// In a fleet, every other node does the same with its own window.
func (b backend) Submit(ev events.Event, id string) (events.Accepted, []events.Found) {
	acc, found := b.submit(ev, id, true)
	if b.c.st.fleet != nil {
		b.c.fleetPublish(msgEvent, toFleetEvent(id, ev))
		b.c.putReport(id, acc, found)
	}
	return acc, found
}

// submit is Submit on this node; origin says whether the event was posted
// here (rather than fanned out from another node).
func (b backend) submit(ev events.Event, id string, origin bool) (events.Accepted, []events.Found) {
	c := b.c
	st := c.st
	now := timeNow()
	acc := events.Accepted{ID: id}
	if ev.Watch > 0 {
		until := ev.At.Add(ev.Watch)
		if until.After(now) {
			st.tags.Tag(ev.Client, ev.At, until, ev.Ref, id)
			acc.TaggedUntil = until
			if t, ok := st.tags.Lookup(ev.Client, now); ok && t.Reason == tags.ReasonEvent {
				c.persist(kindTags, ev.Client.String(), t.Until, t)
				if origin {
					c.fleetPut(fleetTags, ev.Client.String(), t, t.Until.Sub(now))
				}
			}
		}
	}
	if origin {
		eventsTotal.Inc()
	}

	sightings := st.window.Sightings(ev.Client, ev.At.Add(-ev.Window), ev.At)
	found := make([]events.Found, 0, len(sightings))
	for _, s := range sightings {
		f := events.Found{IP: s.IP, Names: s.Names, Ports: s.Ports, First: s.First, Last: s.Last, Count: s.Count}
		// The window holds only public, non-excluded IPs; checking again
		// keeps a changed `exclude` or `allow` from costing API calls.
		if !publicip.Is(s.IP) || contains(c.cfg.exclude, s.IP) || contains(c.cfg.allowNets, s.IP) || c.allowedNames(s.Names) || c.onlyPortsNot(s) {
			f.Result = "skipped"
			found = append(found, f)
			continue
		}
		hints := risk.Hints{Port: int(pickPort(s.Ports))}
		name := ""
		if len(s.Names) > 0 {
			name = s.Names[0]
		}
		r := c.queue.Submit(validate.Job{IP: s.IP, Priority: validate.High, Hints: hints, Client: ev.Client, Name: name, Event: id})
		submitted(fromEvent, r)
		f.Result = r.String()
		switch r {
		case validate.Queued, validate.InFlight:
			acc.Queued++
		case validate.Cached:
			acc.Cached++
		case validate.Dropped:
			acc.Dropped++
		}
		acc.Backtracked++
		found = append(found, f)
	}
	log.Infof("event %s client=%s type=%s ref=%q at=%s window=%s backtracked=%d queued=%d cached=%d dropped=%d",
		id, ev.Client, ev.Type, ev.Ref, ev.At.Format(time.RFC3339), ev.Window, acc.Backtracked, acc.Queued, acc.Cached, acc.Dropped)
	return acc, found
}

// Verdict returns the cached verdict of ip.
func (b backend) Verdict(ip netip.Addr) (any, bool) {
	v, ok := b.c.st.cache.Get(ip, timeNow())
	if !ok {
		return nil, false
	}
	return v, true
}

// Clients lists the event-tagged clients.
func (b backend) Clients() any {
	return b.c.st.tags.List(timeNow())
}

// Untag ends a client's event tag.
func (b backend) Untag(ip netip.Addr) bool {
	if !b.c.st.tags.Untag(ip) {
		return false
	}
	b.c.deleteState(kindTags, ip.Unmap().String())
	b.c.fleetDelete(fleetTags, ip.Unmap().String())
	b.c.fleetPublish(msgUntag, ip.Unmap())
	return true
}

// blockView is a block as the API shows it.
type blockView struct {
	blocks.Block
	TTLSeconds       int64 `json:"ttl_seconds"`
	RemainingSeconds int64 `json:"remaining_seconds"`
}

// Blocks lists the blocks in force.
func (b backend) Blocks() any {
	now := timeNow()
	out := []blockView{}
	for _, bl := range b.c.st.blocks.Active(now) {
		out = append(out, blockView{Block: bl, TTLSeconds: int64(bl.TTL.Seconds()), RemainingSeconds: int64(bl.Remaining(now).Seconds())})
	}
	return out
}

// Unblock lifts ip's block everywhere.
func (b backend) Unblock(ip netip.Addr, actor, why string) (any, bool) {
	bl, ok := b.c.unblock(ip, actor, why)
	if !ok {
		return nil, false
	}
	return struct {
		blocks.Block
		Unblocked bool   `json:"unblocked"`
		Actor     string `json:"actor"`
		Why       string `json:"why,omitempty"`
	}{bl, true, actor, why}, true
}

// Allow adds a dynamic allowlist entry.
func (b backend) Allow(req events.AllowRequest) (any, error) {
	a, err := blocks.ParseAllow(req.Value)
	if err != nil {
		return nil, err
	}
	a.Until, a.Reason, a.Actor = req.Until, req.Reason, req.Actor
	lifted := b.c.allow(a)
	ips := make([]netip.Addr, len(lifted))
	for i, l := range lifted {
		ips[i] = l.IP
	}
	return struct {
		blocks.Allow
		Lifted []netip.Addr `json:"lifted"`
	}{a, ips}, nil
}

// Allowlist lists the live allowlist entries.
func (b backend) Allowlist() any {
	l := b.c.st.blocks.Allowlist(timeNow())
	if l == nil {
		l = []blocks.Allow{}
	}
	return l
}

// RemoveAllow deletes a dynamic allowlist entry.
func (b backend) RemoveAllow(value string) bool {
	a, err := blocks.ParseAllow(value)
	if err == nil {
		value = a.Value
	}
	if !b.c.st.blocks.RemoveAllow(value) {
		return false
	}
	b.c.deleteState(kindAllow, value)
	b.c.fleetDelete(fleetAllow, value)
	b.c.fleetPublish(msgUnallow, value)
	b.c.audit(audit.Entry{Kind: "allow_removed", IP: value, Actor: "api"})
	return true
}

// Blocklist is the External Dynamic List: the IPs blocked now (not the
// monitor-mode would-be blocks).
func (b backend) Blocklist() []netip.Addr {
	var ips []netip.Addr
	for _, bl := range b.c.st.blocks.Active(timeNow()) {
		if !bl.Monitor {
			ips = append(ips, bl.IP)
		}
	}
	return ips
}

// allowedNames reports whether any of names is allowlisted.
func (c *CIPValidate) allowedNames(names []string) bool {
	for _, n := range names {
		if c.allowedName(n) {
			return true
		}
	}
	return false
}

// pickPort chooses the port hint of a destination seen on several ports:
// SSH first (it is a risk factor of its own), else the first one seen.
func pickPort(ports []uint16) uint16 {
	if slices.Contains(ports, 22) {
		return 22
	}
	if len(ports) > 0 {
		return ports[0]
	}
	return 0
}

// Connections records firewall or flow records in the clients' windows,
// and queues the destinations that are worth validating now.
func (b backend) Connections(recs []events.Connection) int {
	queued := 0
	for _, r := range recs {
		if b.c.connection(r.Src, r.Dst, r.DPort, r.Time) {
			queued++
		}
	}
	return queued
}

// onlyPortsNot reports whether a destination was only seen in connection
// records to ports of `ports not` (no DNS answer named it): the selective
// rule says such traffic is not worth an API call.
func (c *CIPValidate) onlyPortsNot(s window.Sighting) bool {
	if len(c.cfg.portsNot) == 0 || len(s.Names) > 0 || len(s.Ports) == 0 {
		return false
	}
	for _, p := range s.Ports {
		if !slices.Contains(c.cfg.portsNot, p) {
			return false
		}
	}
	return true
}
