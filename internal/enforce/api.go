package enforce

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
	"github.com/coredns-cip/coredns-cip/internal/window"
)

// API is the engine as the admin API's backend: it implements
// adminapi.Backend, adminapi.BlockBackend, adminapi.ConnBackend,
// adminapi.ReportBackend and adminapi.StatusBackend.
type API struct{ e *Engine }

// API returns the admin API's backend.
func (e *Engine) API() API { return API{e} }

// Pacer returns the CPU budget that event intake shares with the
// validation workers (adminapi.Config.Pace): nil before Start and with
// `validate_cpu off`.
func (e *Engine) Pacer() *pace.Pacer { return e.pacer }

var (
	_ adminapi.Backend       = API{}
	_ adminapi.BlockBackend  = API{}
	_ adminapi.ConnBackend   = API{}
	_ adminapi.ReportBackend = API{}
	_ adminapi.StateBackend  = API{}
)

// Defaults gives the configured window and watch, and retain as the
// longest window an event may ask for.
func (a API) Defaults() adminapi.Defaults {
	cfg := a.e.cfg
	return adminapi.Defaults{Window: cfg.Window, Watch: cfg.Watch, MaxWindow: cfg.Retain}
}

// Submit tags the client from the event's time for its watch, and queues
// every public IP the client resolved in [at-window, at] with high
// priority. In a fleet, every other node does the same with its own
// window.
func (a API) Submit(ev adminapi.Event, id string) (adminapi.Accepted, []adminapi.Found) {
	e := a.e
	var version uint64 // the tag's, later than the client's last
	if e.st.fleet != nil {
		t, _ := e.st.tags.Lookup(ev.Client, e.Now())
		version = e.stamp(t.Version)
	}
	acc, found := e.submitEvent(ev, id, true, version)
	if e.st.fleet != nil {
		ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
		e.publish(ctx, msgEvent, toFleetEvent(id, ev, version))
		cancel()
		e.putReport(id, acc, found)
	}
	return acc, found
}

// submitEvent is Submit on this node; origin says whether the event was
// posted here (rather than fanned out from another node), tagVersion is
// the version of its tag in a fleet.
func (e *Engine) submitEvent(ev adminapi.Event, id string, origin bool, tagVersion uint64) (adminapi.Accepted, []adminapi.Found) {
	now := e.Now()
	acc := adminapi.Accepted{ID: id}
	if until := ev.At.Add(ev.Watch); ev.Watch > 0 && until.After(now) {
		t, ok := e.tagEvent(ev.Client, ev.At, until, ev.Ref, id, tagVersion, now)
		if ok {
			acc.TaggedUntil = until
		}
		if ok && origin {
			e.shareTag(t)
		}
	}
	if origin {
		e.obs.Event()
	}
	sightings := e.st.window.Sightings(ev.Client, ev.At.Add(-ev.Window), ev.At)
	found := make([]adminapi.Found, 0, len(sightings))
	retryEnd, unfollowed := retryUntil(ev.At, ev.Watch, now), 0
	for _, s := range sightings {
		f := adminapi.Found{IP: s.IP, Names: s.Names, Ports: s.Ports, First: s.First, Last: s.Last, Count: s.Count}
		if e.skipSighting(s) {
			f.Result = "skipped"
			found = append(found, f)
			continue
		}
		name := ""
		if len(s.Names) > 0 {
			name = s.Names[0]
		}
		job := validate.Job{IP: s.IP.Unmap(), Priority: validate.High, Hints: risk.Hints{Port: int(PortHint(s.Ports))},
			Client: ev.Client, Name: name, Event: id}
		followed := e.followEvent(job, retryEnd, now)
		r := e.submit(FromEvent, job)
		if r == validate.Cached {
			e.cachedFinding(job, now)
		}
		if followed {
			e.submitted(job.IP, r)
		} else {
			unfollowed++
		}
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
	e.log.Infof("event %s client=%s type=%s ref=%q severity=%s labels=%d at=%s window=%s backtracked=%d queued=%d cached=%d dropped=%d",
		id, ev.Client, ev.Type, ev.Ref, ev.Severity, len(ev.Labels), ev.At.UTC().Format(time.RFC3339), ev.Window, acc.Backtracked, acc.Queued, acc.Cached, acc.Dropped)
	if origin {
		// The labels go to the audit log, not the log line: they are JSON there.
		e.Audit(audit.Entry{Kind: audit.KindEvent, Client: AddrString(ev.Client), Event: id, Ref: ev.Ref,
			Detail: eventDetail(ev), Labels: ev.Labels})
	}
	if unfollowed > 0 {
		e.log.Warningf("event %s: %d IPs will not be retried if their validation fails: %d IPs are followed already", id, unfollowed, retryTracked)
	}
	return acc, found
}

// eventDetail is an event's audit detail: its type and severity.
func eventDetail(ev adminapi.Event) string {
	if ev.Severity == "" {
		return "type " + ev.Type
	}
	return "type " + ev.Type + " severity " + ev.Severity
}

// skipSighting reports whether a window entry is not worth an API call
// now. The window holds only public, non-excluded IPs; checking again
// keeps a changed `exclude` or `allow` from costing API calls. `ports not`
// is not consulted: it decides what a connection record is worth without
// an event (see Connection), while inside an event's window every public
// destination is validated, web traffic included.
func (e *Engine) skipSighting(s window.Sighting) bool {
	if !e.Validatable(s.IP) {
		return true
	}
	for _, n := range s.Names {
		if e.AllowedName(n) {
			return true
		}
	}
	return false
}

// PortHint chooses the port hint of a destination seen on several ports:
// SSH first (it is a risk factor of its own), else the first one seen.
func PortHint(ports []uint16) uint16 {
	if slices.Contains(ports, 22) {
		return 22
	}
	if len(ports) > 0 {
		return ports[0]
	}
	return 0
}

// ValidationState is the state of ip's validation for an event's report:
// validating, retrying (n), error: gave up, clean, suspicious, error (a
// failure not retried) or unknown (no verdict now).
func (a API) ValidationState(ip netip.Addr) string { return a.e.validationState(ip) }

// Verdict returns the cached verdict of ip or, in a fleet, the one
// another node stored on Redis (then cached here too).
func (a API) Verdict(ip netip.Addr) (verdicts.Verdict, bool) {
	if v, ok := a.e.st.cache.Get(ip, a.e.Now()); ok {
		return v, true
	}
	return a.e.remoteVerdict(ip)
}

// Clients lists the event-tagged clients.
func (a API) Clients() []tags.Tag { return a.e.st.tags.List(a.e.Now()) }

// Untag ends a client's event tag, on every node.
func (a API) Untag(ip netip.Addr) bool {
	t, _ := a.e.st.tags.Lookup(ip, a.e.Now())
	if !a.e.untagLocal(ip) {
		return false
	}
	if t.Reason == tags.ReasonEvent {
		if u, ok := a.e.newUntag(t); ok {
			a.e.shareUntag(u)
		}
	}
	return true
}

func (e *Engine) untagLocal(ip netip.Addr) bool {
	untagged := false
	e.st.record(func() {
		if untagged = e.st.tags.Untag(ip); untagged {
			e.deleteState(kindTags, ip.Unmap().String())
		}
	})
	return untagged
}

// Blocks lists the blocks in force.
func (a API) Blocks() []adminapi.BlockView {
	now := a.e.Now()
	out := []adminapi.BlockView{}
	for _, b := range a.e.st.blocks.Active(now) {
		out = append(out, adminapi.BlockView{Block: b, TTLSeconds: int64(b.TTL.Seconds()), RemainingSeconds: int64(b.Remaining(now).Seconds())})
	}
	return out
}

// Unblock lifts ip's block everywhere.
func (a API) Unblock(ip netip.Addr, actor, why string) (adminapi.Unblocked, bool) {
	b, ok := a.e.Unblock(ip, actor, why)
	if !ok {
		return adminapi.Unblocked{}, false
	}
	return adminapi.Unblocked{Block: b, Unblocked: true, Actor: actor, Why: why}, true
}

// Allow adds a dynamic allowlist entry.
func (a API) Allow(req adminapi.AllowRequest) (adminapi.Allowed, error) {
	entry, err := blocks.ParseAllow(req.Value)
	if err != nil {
		return adminapi.Allowed{}, err
	}
	entry.Until, entry.Reason, entry.Actor, entry.Created = req.Until, req.Reason, req.Actor, a.e.Now().Round(0)
	lifted := a.e.Allow(entry)
	ips := make([]netip.Addr, len(lifted))
	for i, l := range lifted {
		ips[i] = l.IP
	}
	return adminapi.Allowed{Allow: entry, Lifted: ips}, nil
}

// Allowlist lists the live allowlist entries.
func (a API) Allowlist() []blocks.Allow {
	l := a.e.st.blocks.Allowlist(a.e.Now())
	if l == nil {
		l = []blocks.Allow{}
	}
	return l
}

// RemoveAllow deletes a dynamic allowlist entry.
func (a API) RemoveAllow(value, actor string) bool { return a.e.RemoveAllow(value, actor) }

// Blocklist is the External Dynamic List: the IPs blocked for everyone
// now (not tagged-client pairs, which a list of IPs cannot express, nor
// the monitor-mode would-be blocks).
func (a API) Blocklist() []netip.Addr {
	var ips []netip.Addr
	for _, b := range a.e.st.blocks.Active(a.e.Now()) {
		if !b.Monitor && b.Everyone() {
			ips = append(ips, b.IP)
		}
	}
	return ips
}

// Connections records firewall or flow records in the clients' windows,
// and queues the destinations that are worth validating now.
func (a API) Connections(recs []adminapi.Connection) int {
	queued := 0
	for _, r := range recs {
		if a.e.Connection(r.Src, r.Dst, r.DPort, r.Time) {
			queued++
		}
	}
	return queued
}

// Reports returns what each node of the fleet found for an event.
func (a API) Reports(id string) map[string]json.RawMessage {
	f := a.e.st.fleet
	if f == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	reps, err := f.Reports(ctx, id)
	if err != nil || len(reps) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(reps))
	for node, data := range reps {
		out[node] = json.RawMessage(data)
	}
	return out
}

// Validatable reports whether ip may be sent to the API: public, not
// excluded, not in an allowlisted range of the Corefile.
func (e *Engine) Validatable(ip netip.Addr) bool {
	return publicip.Is(ip) && !contains(e.cfg.Exclude, ip) && !contains(e.cfg.AllowNets, ip)
}

func contains(nets []netip.Prefix, ip netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
