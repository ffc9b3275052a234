// Package cipvalidate is a CoreDNS plugin that validates the public IPs in DNS
// answers with the Criminal IP API when a client is tied to a security event,
// and rewrites answers that point at suspicious infrastructure.
//
// Every answer's public IPs are recorded per client in a short window. When a
// client is tagged (an event through the HTTP API, a static CIDR, or the
// after-hours schedule), the IPs of its window before the event and every IP
// it resolves while tagged are queued for validation. Validation runs in a
// worker pool behind a rate limiter and a verdict cache; the DNS path never
// waits for it unless `pending wait` asks to, and then only up to its limit.
package cipvalidate

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/clientid"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/miekg/dns"
	ot "github.com/opentracing/opentracing-go"
)

// CIPValidate is the cipvalidate plugin handler.
type CIPValidate struct {
	Next plugin.Handler
	// Zones are the zones whose answers are inspected.
	Zones []string

	cfg    *config
	key    string            // server block identity: state is shared across reloads under it
	server *dnsserver.Config // the server block, for its upstreams

	eng   *enforce.Engine // the decision engine: state, validation, blocks, hooks, fleet
	names *enforce.NameMemory
	api   *adminapi.Server

	ready    atomic.Bool
	counters atomic.Pointer[serverCounters]

	decisions *decisionLog // aggregates the decision lines; nil logs each
	ede       edeMemo
	// sinkA and sinkAAAA are the sinkhole addresses as the records
	// carry them, computed once by start.
	sinkA, sinkAAAA net.IP

	stopSweep    chan struct{}
	sweepDone    sync.WaitGroup
	shutdownOnce sync.Once
}

// Name implements the plugin.Handler interface.
func (c *CIPValidate) Name() string { return pluginName }

// Ready implements the ready.Readiness interface: the worker pool runs, the
// event API (if any) listens, and the state directory (if any) takes writes.
func (c *CIPValidate) Ready() bool { return c.ready.Load() && c.eng.Health() == nil }

// writerPool recycles the response writer wrappers, so an answer costs no
// allocation of ours.
var writerPool = sync.Pool{New: func() any { return new(writer) }}

// ServeDNS implements the plugin.Handler interface.
func (c *CIPValidate) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || c.eng == nil {
		return plugin.NextOrFailure(c.Name(), c.Next, ctx, w, r)
	}
	qname := r.Question[0].Name
	if !c.inZones(qname) {
		return plugin.NextOrFailure(c.Name(), c.Next, ctx, w, r)
	}
	client := c.cfg.clientFrom.From(r, clientid.Addr(w.RemoteAddr()))

	// A name that led to suspicious infrastructure is answered for every
	// record type without asking the next plugin. The clock is read only
	// when something needs it: most answers hold no public IP.
	var now time.Time
	if c.names.Len() > 0 {
		now = c.eng.Now()
		if v, ok := c.names.Get(qname, now); ok && c.reaches(v, client, now) && !c.allowed(v.IP, qname, qname, now) {
			if !c.cfg.monitor {
				m := c.rewrite(r, v, v.IP)
				c.logDecision(ctx, client, r, v, v.IP, "name", now)
				w.WriteMsg(m)
				return dns.RcodeSuccess, nil
			}
			c.logDecision(ctx, client, r, v, v.IP, "name", now)
		}
	}

	cw := writerPool.Get().(*writer)
	cw.ResponseWriter, cw.c, cw.ctx, cw.req, cw.client, cw.now = w, c, ctx, r, client, now
	var (
		rc  int
		err error
	)
	if c.Next == nil || ot.SpanFromContext(ctx) != nil {
		rc, err = plugin.NextOrFailure(c.Name(), c.Next, ctx, cw, r)
	} else {
		// What NextOrFailure does without a trace span, minus its
		// pluginWriter: that wrapper (an allocation per query) only tells
		// a PluginTracker writer which plugin wrote the answer, and the
		// writer it would tell is this one, which passes the answer on to
		// the writer that the plugin before us wrapped for the same purpose.
		rc, err = c.Next.ServeDNS(ctx, cw, r)
	}
	cw.writerState = writerState{}
	writerPool.Put(cw)
	return rc, err
}

// writer sees the answer on its way to the client.
type writer struct {
	writerState
	// entryBuf holds a tagged client's IPs' verdict cache entries. It is
	// not cleared with the rest: Probe overwrites what an answer uses.
	entryBuf [inlineIPs]verdicts.Entry
}

// writerState is what ServeDNS clears between two answers.
type writerState struct {
	dns.ResponseWriter
	c      *CIPValidate
	ctx    context.Context
	req    *dns.Msg
	client netip.Addr
	now    time.Time
	found  found // the answer's public IPs, in ipBuf and runBuf unless many
	ipBuf  [inlineIPs]netip.Addr
	runBuf [inlineRuns]nameRun
}

// WriteMsg records the answer's public IPs, queues them if the client is
// tagged, and rewrites the answer if one of them is known to be suspicious.
func (cw *writer) WriteMsg(res *dns.Msg) error {
	c := cw.c
	ctr := c.countersFor(cw.ctx)
	ctr.inspected.Inc()
	qname := cw.req.Question[0].Name
	f := &cw.found
	f.ips, f.runs = cw.ipBuf[:0], cw.runBuf[:0]
	c.publicIPs(res, qname, f)
	if len(f.ips) == 0 {
		return cw.ResponseWriter.WriteMsg(res)
	}
	if c.eng.AllowedName(qname) {
		return cw.ResponseWriter.WriteMsg(res)
	}
	if cw.now.IsZero() {
		cw.now = c.eng.Now()
	}
	w, start := c.eng.State().Window(), 0
	for _, run := range f.runs {
		w.Record(cw.client, run.name, f.ips[start:run.end], 0, cw.now)
		start = run.end
	}
	ctr.recorded.Add(float64(len(f.ips)))

	tagged := c.eng.Tagged(cw.client, cw.now)
	if !tagged && !c.cfg.enforceAll {
		return cw.ResponseWriter.WriteMsg(res)
	}
	// A tagged client's IPs are read from the verdict cache once, for
	// both questions: suspicious, and validated already.
	var entries []verdicts.Entry
	if tagged {
		entries = c.eng.Probe(f.ips, cw.entryBuf[:0], cw.now)
	}
	if v, i, ok := c.eng.FirstSuspicious(f.ips, entries, tagged, cw.now); ok && !c.allowed(f.ips[i], qname, f.name(i), cw.now) {
		return cw.enforce(res, v, f.ips[i], f.name(i))
	}
	if !tagged {
		return cw.ResponseWriter.WriteMsg(res)
	}
	return cw.tagged(res, entries)
}

// allowed reports whether an answer pointing at ip is never rewritten: an
// allowlist entry covers ip, the queried name or the owner of glue, or ip
// or a name is the control plane (the API, the hooks, the upstreams).
func (c *CIPValidate) allowed(ip netip.Addr, qname, name string, now time.Time) bool {
	if c.eng.Allowed(ip, qname, now) || (name != qname && c.eng.Allowed(ip, name, now)) {
		return true
	}
	_, cp := c.eng.ControlPlane(ip, name)
	if !cp && name != qname {
		_, cp = c.eng.ControlPlane(ip, qname)
	}
	return cp
}

// enforceable reports whether verdict v rewrites an answer by its IP for
// a client that is tagged (or not): its scope reaches the client, and the
// IP is not shared (a CDN front is rewritten by name only: the name memory
// holds the names that led to it).
func (c *CIPValidate) enforceable(v verdicts.Verdict, tagged bool) bool {
	return v.Scope.Reaches(tagged) && !c.eng.Shared(v)
}

// tagged handles the answer of a tagged client whose IPs are not known to
// be suspicious: queue the unknown ones (those whose verdict cache entries
// hold no verdict), maybe wait, maybe fail closed.
func (cw *writer) tagged(res *dns.Msg, entries []verdicts.Entry) error {
	c, f := cw.c, &cw.found
	pending := false
	c.eng.SubmitCached(entries, cw.now)
	for i, ip := range f.ips {
		if entries[i].Cached() {
			continue
		}
		r := c.eng.SubmitAnswer(validate.Job{IP: ip, Priority: validate.Low, Client: cw.client, Name: f.name(i)}, cw.now)
		if r == validate.Queued || r == validate.InFlight {
			pending = true
		}
	}
	if pending && c.cfg.pendingWait > 0 {
		ctx, cancel := context.WithTimeout(cw.ctx, c.cfg.pendingWait)
		for i, ip := range f.ips {
			if v, ok := c.eng.Wait(ctx, ip); ok && v.Suspicious() && c.enforceable(v, true) {
				cancel()
				return cw.enforce(res, v, ip, f.name(i))
			}
		}
		cancel()
	}
	if c.cfg.failClosed {
		now := cw.now
		if pending && c.cfg.pendingWait > 0 {
			now = c.eng.Now() // after the wait
		}
		if v, ip, ok := c.unvalidated(f.ips, now); ok {
			return cw.failClosed(res, v, ip)
		}
	}
	return cw.ResponseWriter.WriteMsg(res)
}

// unvalidated returns the error verdict of the first of ips that could not
// be validated: its verdict is an error, or it has none while the API is
// unavailable.
func (c *CIPValidate) unvalidated(ips []netip.Addr, now time.Time) (verdicts.Verdict, netip.Addr, bool) {
	cache := c.eng.State().Cache()
	for _, ip := range ips {
		v, ok := cache.Get(ip, now)
		if ok && v.Outcome == verdicts.Error {
			return verdicts.Verdict{IP: ip, Outcome: verdicts.Error, Error: v.Error, Decision: verdicts.NewDecisionID()}, ip, true
		}
		if kind, failing := c.eng.APIFailure(); !ok && failing {
			return verdicts.Verdict{IP: ip, Outcome: verdicts.Error, Error: kind, Decision: verdicts.NewDecisionID()}, ip, true
		}
	}
	return verdicts.Verdict{}, netip.Addr{}, false
}

// enforce rewrites res for the suspicious verdict v of ip (or only logs it
// in monitor mode) and remembers name, the name whose address ip is: the
// queried name for the answer section, a target's for its glue in the
// additional section. Remembering the queried name for glue would rewrite
// its own, harmless records too (a domain whose MX host is bad), while the
// answer that carries the glue is rewritten anyway, from the verdict.
func (cw *writer) enforce(res *dns.Msg, v verdicts.Verdict, ip netip.Addr, name string) error {
	c := cw.c
	c.names.Put(name, v)
	c.logDecision(cw.ctx, cw.client, cw.req, v, ip, "answer", cw.now)
	if c.cfg.monitor {
		return cw.ResponseWriter.WriteMsg(res)
	}
	return cw.ResponseWriter.WriteMsg(c.rewrite(cw.req, v, ip))
}

// failClosed refuses an answer that could not be validated.
func (cw *writer) failClosed(res *dns.Msg, v verdicts.Verdict, ip netip.Addr) error {
	c := cw.c
	c.logFailClosed(cw.ctx, cw.client, cw.req, v, ip, cw.now)
	if c.cfg.monitor {
		return cw.ResponseWriter.WriteMsg(res)
	}
	return cw.ResponseWriter.WriteMsg(c.refuseUnvalidated(cw.req, v, ip))
}

// reaches reports whether verdict v is enforced for client: a tagged client
// gets everyone and tagged verdicts, an untagged one (with `enforce all`)
// only everyone verdicts.
func (c *CIPValidate) reaches(v verdicts.Verdict, client netip.Addr, now time.Time) bool {
	tagged := c.eng.Tagged(client, now)
	return (c.cfg.enforceAll || tagged) && v.Scope.Reaches(tagged)
}

// Write is not used by plugins that build messages; pass it through.
func (cw *writer) Write(b []byte) (int, error) { return cw.ResponseWriter.Write(b) }

// inZones reports whether qname is at or under one of the zones, without
// allocating (plugin.Zones.Matches splits names into labels).
func (c *CIPValidate) inZones(qname string) bool {
	for _, z := range c.Zones {
		if enforce.UnderZone(qname, z) {
			return true
		}
	}
	return false
}

// countersFor returns the per-server counters, resolved once per server
// label so the hot path does no label lookup.
func (c *CIPValidate) countersFor(ctx context.Context) *serverCounters {
	server, view := metrics.WithServer(ctx), metrics.WithView(ctx)
	if sc := c.counters.Load(); sc != nil && sc.server == server && sc.view == view {
		return sc
	}
	sc := newServerCounters(server, view)
	c.counters.Store(sc)
	return sc
}
