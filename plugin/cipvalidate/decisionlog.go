package cipvalidate

import (
	"net/netip"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/logfmt"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Decision lines are aggregated: a tagged client whose app retries a
// sinkholed name hundreds of times a minute would otherwise write a log line
// per answer (at 10% of a busy resolver's answers, thousands per second).
// The first rewrite of each (client, name, type, IP, action) is logged at
// once; repeats within decisionLogEvery are counted, and the sweeper then
// writes one `decision … repeated=N` line for them. The rewritten-answers
// counter and the audit log still see every rewrite.
const (
	decisionLogEvery = time.Minute
	// decisionLogKeys bounds the keys held. Past it, lines are written
	// without aggregation rather than dropped.
	decisionLogKeys = 10_000
)

type decisionKey struct {
	client, ip netip.Addr
	qname      string
	qtype      uint16
	action     string
}

type decisionSeen struct {
	first    time.Time
	decision string
	via      string
	repeats  int
}

type decisionLog struct {
	mu   sync.Mutex
	seen map[decisionKey]*decisionSeen
}

func newDecisionLog() *decisionLog {
	return &decisionLog{seen: map[decisionKey]*decisionSeen{}}
}

// first reports whether k's line is to be written now: it was not seen in
// the current period, or too many keys are held to remember it.
func (d *decisionLog) first(k decisionKey, decision, via string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.seen[k]; ok {
		s.repeats++
		if s.decision != decision { // a new verdict for the same answer
			s.decision, s.via = decision, via
		}
		return false
	}
	if len(d.seen) >= decisionLogKeys {
		return true
	}
	d.seen[k] = &decisionSeen{first: now, decision: decision, via: via}
	return true
}

// flush writes the repeat lines of the keys first seen at least `every`
// before now (all of them if every is 0) and forgets those keys.
func (d *decisionLog) flush(now time.Time, every time.Duration) {
	type line struct {
		k decisionKey
		s decisionSeen
	}
	var lines []line
	d.mu.Lock()
	for k, s := range d.seen {
		if every > 0 && now.Sub(s.first) < every {
			continue
		}
		if s.repeats > 0 {
			lines = append(lines, line{k, *s})
		}
		delete(d.seen, k)
	}
	d.mu.Unlock()
	for _, l := range lines {
		logfmt.Decision{Decision: l.s.decision, Client: l.k.client.String(), Qname: l.k.qname, Qtype: typeName(l.k.qtype),
			IP: l.k.ip.String(), Action: l.k.action, Via: l.s.via, Repeated: l.s.repeats, Since: l.s.first}.Log(log, pluginName)
	}
}

// edeMemo keeps the EDE text of each (decision, IP), which every rewritten
// answer carries: formatting it costs more than the rest of the rewrite.
type edeMemo struct {
	mu sync.RWMutex
	m  map[edeKey]string
}

type edeKey struct {
	decision string
	ip       netip.Addr
}

// edeMemoMax bounds the memo; the sweeper clears it past that.
const edeMemoMax = 4096

func (e *edeMemo) text(v verdicts.Verdict, ip netip.Addr) string {
	k := edeKey{v.Decision, ip}
	e.mu.RLock()
	s, ok := e.m[k]
	e.mu.RUnlock()
	if ok {
		return s
	}
	s = edeText(v, ip)
	e.mu.Lock()
	if e.m == nil {
		e.m = map[edeKey]string{}
	}
	e.m[k] = s
	e.mu.Unlock()
	return s
}

// trim clears the memo if it grew past edeMemoMax.
func (e *edeMemo) trim() {
	e.mu.Lock()
	if len(e.m) > edeMemoMax {
		clear(e.m)
	}
	e.mu.Unlock()
}
