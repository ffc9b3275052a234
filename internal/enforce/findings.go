package enforce

import (
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// maxSpread bounds the tagged clients whose windows a new suspicious
// verdict is looked for in: the scan runs on a validation worker.
const maxSpread = 4096

// cachedFinding makes the finding of a job whose IP already has a verdict
// (an event's backtrack answered from the cache): the event's client gets
// its own finding and, under the tagged scope, its own pair block, exactly
// as if the verdict had just been reached for it.
func (e *Engine) cachedFinding(job validate.Job, now time.Time) {
	v, ok := e.st.cache.Get(job.IP, now)
	switch {
	case !ok || v.Outcome == verdicts.Error:
		return
	case v.Suspicious():
		e.Decide(v, job)
	case len(e.cfg.Policy.HintReasons(job.Hints)) > 0:
		e.Decide(withDecision(v), job)
	}
}

// spread gives every other tagged client whose window holds v's IP its
// finding: when a verdict turns suspicious, the clients that already
// reached the IP are the ones a tagged-scope block must reach, and DNS
// rewriting cannot help them. Clients tagged by a static range or the
// after-hours schedule are not listed by the tag set, so only event tags
// are seen here.
func (e *Engine) spread(v verdicts.Verdict, except netip.Addr) {
	now := e.Now()
	from := now.Add(-e.retain())
	for i, t := range e.st.tags.List(now) {
		if i == maxSpread {
			e.log.Warningf("verdict %s ip=%s: more than %d tagged clients; the others get their finding at their next answer", v.Decision, v.IP, maxSpread)
			return
		}
		if t.Client == except {
			continue
		}
		s, ok := e.st.window.SightingOf(t.Client, v.IP, from, now)
		if !ok {
			continue
		}
		name := ""
		if len(s.Names) > 0 {
			name = s.Names[0]
		}
		e.Decide(v, validate.Job{IP: v.IP, Client: t.Client, Name: name, Event: t.Event, Hints: risk.Hints{Port: int(PortHint(s.Ports))}})
	}
}

func (e *Engine) retain() time.Duration {
	if e.cfg.Retain > 0 {
		return e.cfg.Retain
	}
	return 15 * time.Minute
}

// withDecision gives a clean verdict a decision id of its own for a
// finding that its hints made.
func withDecision(v verdicts.Verdict) verdicts.Verdict {
	v.Decision = verdicts.NewDecisionID()
	return v
}
