package enforce

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/follow"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/syslogin"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// This file is what the DNS plugin and the connection sources hand the
// engine, and what the plugin asks it on the DNS path. Nothing here waits
// for the API, Redis, the disk or a hook.

// Tagged reports whether client is tagged at now.
func (e *Engine) Tagged(client netip.Addr, now time.Time) bool { return e.st.tags.Tagged(client, now) }

// Suspicious returns ip's live suspicious verdict, or the verdict of the
// range block ip falls in. Without range blocks the second look costs one
// atomic load.
func (e *Engine) Suspicious(ip netip.Addr, now time.Time) (verdicts.Verdict, bool) {
	if v, ok := e.st.cache.Suspicious(ip, now); ok {
		return v, true
	}
	if h, ok := e.st.blocks.InRange(ip, now); ok {
		return rangeVerdict(ip.Unmap(), h, now), true
	}
	return verdicts.Verdict{}, false
}

// Allowed reports whether an allowlist entry covers ip or qname; checked
// only once an answer is about to be rewritten.
func (e *Engine) Allowed(ip netip.Addr, qname string, now time.Time) bool {
	_, ok := e.st.blocks.Allowed(ip, []string{qname}, now)
	return ok
}

// AllowedName reports whether qname is at or under a domain the
// configuration allowlists.
func (e *Engine) AllowedName(qname string) bool {
	for _, d := range e.cfg.AllowDomains {
		if UnderZone(qname, d) {
			return true
		}
	}
	return false
}

// UnderZone reports whether name is zone or a subdomain of it; both are
// fully qualified, compared case-insensitively, without allocating.
func UnderZone(name, zone string) bool {
	if zone == "." {
		return true
	}
	if len(name) < len(zone) || !equalFold(name[len(name)-len(zone):], zone) {
		return false
	}
	return len(name) == len(zone) || name[len(name)-len(zone)-1] == '.'
}

func equalFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// SubmitAnswer queues ip of a tagged client's answer for validation.
func (e *Engine) SubmitAnswer(job validate.Job, now time.Time) validate.Result {
	if e.budget != nil {
		job.Class = e.budgetClass(job.Client, false, now)
	}
	r := e.queue.SubmitAt(job, now)
	e.obs.Submitted(FromAnswer, r, 1)
	return r
}

// Probe reads the verdict cache's entry of each of ips, the IPs of a
// tagged client's answer, at now, into into (appended): one read per IP
// answers both SuspiciousEntry and SubmitCached.
func (e *Engine) Probe(ips []netip.Addr, into []verdicts.Entry, now time.Time) []verdicts.Entry {
	cache := e.st.cache
	for _, ip := range ips {
		into = append(into, cache.Probe(ip, now))
	}
	return into
}

// FirstSuspicious returns the first of ips with a live suspicious verdict
// (Suspicious) that rewrites an answer by its IP for a client that is
// tagged (or not): its scope reaches the client, and the IP is not shared
// (a CDN front is rewritten by name only). entries, if set, are the IPs'
// cache entries (Probe at now), read instead of the suspicious index.
func (e *Engine) FirstSuspicious(ips []netip.Addr, entries []verdicts.Entry, tagged bool, now time.Time) (verdicts.Verdict, int, bool) {
	ranges := e.st.blocks.HasRanges()
	if entries == nil && !ranges {
		// The suspicious index alone, copying only the verdicts it holds.
		for i := 0; i < len(ips); i++ {
			v, j, ok := e.st.cache.FirstSuspicious(ips[i:], now)
			if !ok {
				break
			}
			if i += j; v.Scope.Reaches(tagged) && !e.Shared(v) {
				return v, i, true
			}
		}
		return verdicts.Verdict{}, 0, false
	}
	if entries == nil {
		for i, ip := range ips {
			if v, ok := e.Suspicious(ip, now); ok && v.Scope.Reaches(tagged) && !e.Shared(v) {
				return v, i, true
			}
		}
		return verdicts.Verdict{}, 0, false
	}
	for i, ip := range ips {
		if !entries[i].MaySuspicious() && !ranges {
			continue // what suspiciousEntry would conclude, without its copies
		}
		if v, ok := e.suspiciousEntry(ip, entries[i], now); ok && v.Scope.Reaches(tagged) && !e.Shared(v) {
			return v, i, true
		}
	}
	return verdicts.Verdict{}, 0, false
}

// suspiciousEntry is Suspicious for an IP whose cache entry en was read by
// Probe at now.
func (e *Engine) suspiciousEntry(ip netip.Addr, en verdicts.Entry, now time.Time) (verdicts.Verdict, bool) {
	if v, ok := en.Suspicious(now); ok {
		return v, true
	}
	if h, ok := e.st.blocks.InRange(ip, now); ok {
		return rangeVerdict(ip.Unmap(), h, now), true
	}
	return verdicts.Verdict{}, false
}

// SubmitCached does for the IPs of a tagged client's answer whose entries
// (Probe at now) hold a verdict what SubmitAnswer does for each of them,
// and counts them at once: each is used (the LRU's recency), and counted
// as submitted and answered from the cache. The others, whose entries
// are not Cached, are SubmitAnswer's.
func (e *Engine) SubmitCached(entries []verdicts.Entry, now time.Time) {
	cache, n := e.st.cache, 0
	for _, en := range entries {
		if en.Cached() {
			cache.Use(en, now)
			n++
		}
	}
	if n > 0 {
		e.queue.CountCached(n)
		e.obs.Submitted(FromAnswer, validate.Cached, n)
	}
}

// submit queues job now and counts it under src.
func (e *Engine) submit(src Source, job validate.Job) validate.Result {
	r := e.queue.Submit(job)
	e.obs.Submitted(src, r, 1)
	return r
}

// Wait waits for ip's verdict until ctx ends (`pending wait`).
func (e *Engine) Wait(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool) {
	return e.queue.Wait(ctx, ip)
}

// Connection records that src reached dst:dport at t, like a DNS answer
// without a name, and queues dst for validation if src is tagged or the
// port makes it worth it: any port but those of `ports not`, or one of
// `critical_ports` (first). A port of `ports not` is never worth an API
// call by itself. Private, excluded and allowlisted destinations are
// neither recorded nor validated. It reports whether dst was queued.
func (e *Engine) Connection(src, dst netip.Addr, dport uint16, t time.Time) bool {
	src, dst = src.Unmap(), dst.Unmap()
	if !e.Validatable(dst) {
		return false
	}
	st := e.st
	st.window.Record(src, "", []netip.Addr{dst}, dport, t)
	portsNot, critical := e.cfg.PortsNot, e.cfg.CriticalPorts
	if dport != 0 && slices.Contains(portsNot, dport) {
		return false // web traffic is not worth an API call on its own
	}
	prio, worth := validate.Low, st.tags.Tagged(src, t)
	if dport != 0 && slices.Contains(critical, dport) {
		prio, worth = validate.High, true
	}
	if dport != 0 && len(portsNot) > 0 {
		worth = true
	}
	if !worth {
		return false
	}
	if _, ok := st.blocks.Allowed(dst, nil, t); ok {
		return false
	}
	job := validate.Job{IP: dst, Priority: prio, Hints: risk.Hints{Port: int(dport)}, Client: src}
	if e.budget != nil {
		job.Class = e.budgetClass(src, prio == validate.High, t)
	}
	r := e.submit(FromConnection, job)
	return r == validate.Queued || r == validate.InFlight
}

// connlogRunner follows the connection logs of one engine.
type connlogRunner struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	syslog []*syslogin.Listener
}

// startConnlogs follows every configured connection log from its current
// end, and opens the syslog listeners: each record goes through
// Connection, like a POSTed one, and an IDS alert of a connlog with
// alerts on through Alert, like a POSTed event.
func (e *Engine) startConnlogs() error {
	if len(e.cfg.Connlogs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &connlogRunner{cancel: cancel}
	for _, spec := range e.cfg.Connlogs {
		p, err := connlog.NewParser(spec.Format, connlog.Options{Now: e.Now})
		if err == nil && spec.Syslog != nil {
			var l *syslogin.Listener
			if l, err = syslogin.Listen(*spec.Syslog, e.syslogMessage(spec, p), e.log.Warningf); err == nil {
				r.syslog = append(r.syslog, l)
				e.log.Infof("receiving %s syslog on %s://%s", spec.Format, spec.Syslog.Network, l.Addr())
				continue
			}
		}
		if err != nil {
			e.connlogs = r
			e.stopConnlogs()
			return err
		}
		f := follow.New(spec.Path, follow.Options{Logf: e.log.Infof})
		r.wg.Go(func() { f.Run(ctx, e.connlogLine(spec, p)) })
		e.log.Infof("following %s (%s)", spec.Path, spec.Format)
	}
	e.connlogs = r
	return nil
}

// SyslogAddrs are the addresses the `connlog syslog` listeners listen on,
// in configuration order, with the ports picked for port 0; call it
// between Start and Stop.
func (e *Engine) SyslogAddrs() []net.Addr {
	if e.connlogs == nil {
		return nil
	}
	out := make([]net.Addr, len(e.connlogs.syslog))
	for i, l := range e.connlogs.syslog {
		out[i] = l.Addr()
	}
	return out
}

// syslogMessage handles one syslog message as connlogLine a line, the
// header stripped: the parser gets the message body, and the whole
// message if the body alone is not a record (a header the parsers know,
// such as a netfilter prefix, is theirs to read); a record without a time
// of its own takes the header's.
func (e *Engine) syslogMessage(spec ConnlogSpec, p *connlog.Parser) func([]byte) {
	handle := e.connlogLine(spec, p)
	return func(msg []byte) {
		body := syslogin.Body(msg)
		rec, err := p.Parse(body)
		if (err != nil && !errors.Is(err, connlog.ErrSkip)) || (err == nil && rec.Time.IsZero()) {
			if _, err := p.Parse(msg); err == nil {
				body = msg
			}
		}
		handle(body)
	}
}

// connlogLine handles one line of a connection log.
func (e *Engine) connlogLine(spec ConnlogSpec, p *connlog.Parser) func([]byte) {
	var bad atomic.Int64 // TCP syslog connections call this concurrently
	return func(line []byte) {
		rec, err := p.Parse(line)
		if err != nil {
			if errors.Is(err, connlog.ErrSkip) {
				return
			}
			e.obs.ConnlogLine(spec.Format, false)
			// A sample of what is wrong, not a flood.
			if n := bad.Add(1); n == 1 || n%10_000 == 0 {
				e.log.Warningf("connlog %s: %d broken line(s); latest: %v", spec.Path, n, err)
			}
			return
		}
		e.obs.ConnlogLine(spec.Format, true)
		t := rec.Time
		if t.IsZero() {
			t = e.Now()
		}
		// The connection first: the alert's own destination is then in
		// the window its event backtracks.
		e.Connection(rec.Src, rec.Dst, rec.DPort, t)
		if rec.Alert.Acts(spec.Alerts) {
			e.Alert(rec, t)
		}
	}
}

// stopConnlogs stops following and waits for the readers.
func (e *Engine) stopConnlogs() {
	if e.connlogs == nil {
		return
	}
	e.connlogs.cancel()
	for _, l := range e.connlogs.syslog {
		l.Close()
	}
	e.connlogs.wg.Wait()
	e.connlogs = nil
}
