package cipvalidate

import (
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/events"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/validate"
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
func (b backend) Submit(ev events.Event, id string) (events.Accepted, []events.Found) {
	c := b.c
	st := c.st
	now := timeNow()
	acc := events.Accepted{ID: id}
	if ev.Watch > 0 {
		until := ev.At.Add(ev.Watch)
		if until.After(now) {
			st.tags.Tag(ev.Client, ev.At, until, ev.Ref, id)
			acc.TaggedUntil = until
		}
	}
	eventsTotal.Inc()

	sightings := st.window.Sightings(ev.Client, ev.At.Add(-ev.Window), ev.At)
	found := make([]events.Found, 0, len(sightings))
	for _, s := range sightings {
		f := events.Found{IP: s.IP, Names: s.Names, Ports: s.Ports, First: s.First, Last: s.Last, Count: s.Count}
		// The window holds only public, non-excluded IPs; checking again
		// keeps a changed `exclude` or `allow` from costing API calls.
		if !publicip.Is(s.IP) || contains(c.cfg.exclude, s.IP) || contains(c.cfg.allowNets, s.IP) || c.allowedNames(s.Names) {
			f.Result = "skipped"
			found = append(found, f)
			continue
		}
		hints := risk.Hints{}
		if len(s.Ports) == 1 {
			hints.Port = int(s.Ports[0])
		}
		name := ""
		if len(s.Names) > 0 {
			name = s.Names[0]
		}
		r := c.queue.Submit(validate.Job{IP: s.IP, Priority: validate.High, Hints: hints, Client: ev.Client, Name: name, Event: id})
		submitted("event", r)
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
	return b.c.st.tags.Untag(ip)
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
