package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// The decision history keeps every block decision, active or ended, for
// the analyst: what led to it (events, clients, names, the verdict's
// reasons and an excerpt of its report), what it did (DNS answers
// rewritten, each hook's delivery) and how it ended (expired, or lifted by
// whom and why). It is updated at every step of a block's life, under the
// history's lock, and each change queues the decision's record for the
// state directory while that lock is held, so the records reach the
// writer in the order of the changes. A decision is kept for the
// retention (`history DURATION`) after it ends.
//
// DNS rewrites are counted in memory (one atomic add per rewritten
// answer) and written with the sweep, never once per answer.

// kindDecisions is the record kind of the decision history ("history"
// holds the escalation history of blocks.Manager).
const kindDecisions state.Kind = "decisions"

// History retention: the default and the bounds of `history DURATION`.
const (
	DefaultHistory = 90 * 24 * time.Hour
	MaxHistory     = 3650 * 24 * time.Hour
)

// ParseHistory reads the argument of `history DURATION`.
func ParseHistory(s string) (time.Duration, error) { return optval.DurationUpTo(s, MaxHistory) }

// FactorManual is the reason code of an operator's block.
const FactorManual risk.Factor = "MANUAL"

// actorHistory is who made an engine decision, as the history says it.
const actorHistory = "engine"

// maxTimeline bounds the steps a decision keeps; past it, the oldest but
// the first go.
const maxTimeline = 200

// histEntry is one decision, as the history keeps it.
type histEntry struct {
	histRecord
	rewrites atomic.Uint64 // counted since the last sweep
}

// histRecord is one decision, as the state directory keeps it.
type histRecord struct {
	ID       string                   `json:"id"`
	Aliases  []string                 `json:"aliases,omitempty"` // ids it was widened under
	IP       netip.Addr               `json:"ip"`
	Range    netip.Prefix             `json:"range,omitzero"` // a range block's, IP zero
	State    string                   `json:"state"`
	Origin   string                   `json:"origin"`
	Scope    string                   `json:"scope"`
	Port     uint16                   `json:"port,omitempty"`
	Narrowed string                   `json:"narrowed,omitempty"`
	Monitor  bool                     `json:"monitor,omitempty"`
	Reasons  []string                 `json:"reasons"`
	Codes    []risk.Factor            `json:"codes"`
	Evidence *verdicts.Evidence       `json:"evidence,omitempty"`
	Clients  []netip.Addr             `json:"clients,omitempty"`
	Events   []string                 `json:"events,omitempty"`
	Qnames   []string                 `json:"qnames,omitempty"`
	Rewrites uint64                   `json:"rewrites,omitempty"`
	Created  time.Time                `json:"created"`
	Expires  time.Time                `json:"expires"`
	Ended    time.Time                `json:"ended,omitzero"`
	Repeat   int                      `json:"repeat,omitempty"`
	Actor    string                   `json:"actor"`
	Reason   string                   `json:"reason,omitempty"`
	Hooks    []hookState              `json:"hooks,omitempty"`
	Lifted   *adminapi.Lifted         `json:"lifted,omitempty"`
	Timeline []adminapi.TimelineEntry `json:"timeline"`
}

// hookState is what became of a decision's last change in one hook.
type hookState struct {
	Hook        string    `json:"hook"`
	Action      string    `json:"action"`
	State       string    `json:"state"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	Attempts    int       `json:"attempts,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// history is the decisions in memory: by id (and alias), in creation
// order for the lists, the active one of each IP, and by event.
type history struct {
	mu      sync.RWMutex
	keep    time.Duration
	byID    map[string]*histEntry
	order   []*histEntry // by Created, then ID
	active  map[netip.Addr]*histEntry
	byEvent map[string][]string
}

func newHistory(keep time.Duration) *history {
	h := &history{byID: map[string]*histEntry{}, active: map[netip.Addr]*histEntry{}, byEvent: map[string][]string{}}
	h.setKeep(keep)
	return h
}

func (h *history) setKeep(keep time.Duration) {
	if keep <= 0 {
		keep = DefaultHistory
	}
	h.mu.Lock()
	h.keep = keep
	h.mu.Unlock()
}

func entryLess(a *histEntry, at time.Time, id string) bool {
	if c := a.Created.Compare(at); c != 0 {
		return c < 0
	}
	return a.ID < id
}

// insert adds en to the indexes; h.mu held.
func (h *history) insert(en *histEntry) {
	h.byID[en.ID] = en
	for _, a := range en.Aliases {
		h.byID[a] = en
	}
	i := sort.Search(len(h.order), func(i int) bool { return !entryLess(h.order[i], en.Created, en.ID) })
	h.order = slices.Insert(h.order, i, en)
	if en.State == adminapi.StateActive && en.IP.IsValid() {
		h.active[en.IP] = en
	}
	for _, ev := range en.Events {
		h.addEvent(ev, en.ID)
	}
}

func (h *history) addEvent(ev, id string) {
	if !slices.Contains(h.byEvent[ev], id) {
		h.byEvent[ev] = append(h.byEvent[ev], id)
	}
}

// keepUntil is when en's record may go: the retention after it ends.
func (en *histEntry) keepUntil(keep time.Duration) time.Time {
	if !en.Ended.IsZero() {
		return en.Ended.Add(keep)
	}
	return en.Expires.Add(keep)
}

func (en *histEntry) step(at time.Time, kind, format string, args ...any) {
	en.Timeline = append(en.Timeline, adminapi.TimelineEntry{At: at.UTC(), Kind: kind, Detail: fmt.Sprintf(format, args...)})
	if len(en.Timeline) > maxTimeline {
		en.Timeline = slices.Delete(en.Timeline, 1, 2)
	}
}

// addCause records a client, an event and a name that led to en.
func (en *histEntry) addCause(h *history, client netip.Addr, event, qname string) {
	if client.IsValid() && !slices.Contains(en.Clients, client.Unmap()) && len(en.Clients) < 64 {
		en.Clients = append(en.Clients, client.Unmap())
	}
	if event != "" && !slices.Contains(en.Events, event) && len(en.Events) < 64 {
		en.Events = append(en.Events, event)
		h.addEvent(event, en.ID)
	}
	if qname != "" && !slices.Contains(en.Qnames, qname) && len(en.Qnames) < 64 {
		en.Qnames = append(en.Qnames, qname)
	}
}

// histSave queues en's record; h.mu held.
func (e *Engine) histSave(en *histEntry) {
	e.persist(kindDecisions, en.ID, en.keepUntil(e.st.hist.keep), &en.histRecord)
}

// histBlocked records a new block b, made for verdict v in job's context
// (origin engine or manual). A block under an id the history holds (a
// cached verdict that blocks again after its block expired) reopens it.
func (e *Engine) histBlocked(b blocks.Block, v verdicts.Verdict, job validate.Job, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	origin, actor := adminapi.OriginEngine, actorHistory
	if b.Origin == blocks.OriginManual {
		origin, actor = adminapi.OriginManual, b.Actor
	}
	if en, ok := h.byID[b.Decision]; ok {
		if cur := h.active[b.IP]; cur != en {
			e.histEndLocked(cur, now, "replaced by decision "+b.Decision)
		}
		en.State, en.Ended, en.Lifted, en.Expires, en.Repeat = adminapi.StateActive, time.Time{}, nil, b.Expires, b.Repeat
		en.addCause(h, job.Client, job.Event, job.Name)
		h.active[en.IP] = en
		en.step(now, "block", "blocked again for %s (repeat %d; scope %s)", optval.Short(b.TTL), b.Repeat, b.Scope)
		e.histSave(en)
		return
	}
	e.histEndLocked(h.active[b.IP], now, "replaced by decision "+b.Decision)
	en := newEntry(b, v, origin, actor, now)
	en.addCause(h, job.Client, job.Event, job.Name)
	if job.Event != "" {
		en.step(now, "event", "event %s: client %s resolved %s", job.Event, AddrString(job.Client), job.Name)
	}
	if origin == adminapi.OriginManual {
		en.step(now, "block", "blocked by %s for %s: %s", actor, optval.Short(b.TTL), b.Reason)
	} else {
		en.step(v.Checked, "verdict", "suspicious: %s (score %s)", v.ReasonText(), v.Score)
		en.step(now, "block", "blocked for %s (repeat %d; scope %s)%s", optval.Short(b.TTL), b.Repeat, b.Scope, monitorText(b.Monitor))
	}
	h.insert(en)
	e.histSave(en)
}

func monitorText(monitor bool) string {
	if monitor {
		return "; monitor mode: not pushed"
	}
	return ""
}

// newEntry is the history entry of a new block b.
func newEntry(b blocks.Block, v verdicts.Verdict, origin, actor string, now time.Time) *histEntry {
	scope := adminapi.ScopeEveryone
	if !b.Everyone() {
		scope = adminapi.ScopeTagged
	}
	en := &histEntry{histRecord: histRecord{ID: b.Decision, IP: b.IP.Unmap(), Range: b.Range, State: adminapi.StateActive, Origin: origin, Scope: scope,
		Port: b.Port, Narrowed: b.Narrowed, Monitor: b.Monitor, Reasons: slices.Clone(b.Reasons),
		Created: b.Created.Round(0).UTC(), Expires: b.Expires.Round(0).UTC(), Repeat: b.Repeat, Actor: actor, Reason: b.Reason,
		Clients: slices.Clone(b.Clients), Events: slices.Clone(b.Events), Qnames: slices.Clone(b.Qnames), Timeline: []adminapi.TimelineEntry{}}}
	if en.Created.IsZero() {
		en.Created = now.Round(0).UTC()
	}
	if v.IP == b.IP && v.Decision == b.Decision {
		en.Evidence = v.Evidence
		for _, r := range v.Reasons {
			if !slices.Contains(en.Codes, r.Factor) {
				en.Codes = append(en.Codes, r.Factor)
			}
		}
	} else {
		en.Codes = codesOf(b.Reasons)
	}
	return en
}

// codesOf reads the factor codes of reasons as text ("CODE: detail").
func codesOf(reasons []string) []risk.Factor {
	var out []risk.Factor
	for _, r := range reasons {
		code, _, _ := strings.Cut(r, ":")
		if f := risk.Factor(code); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// histExtended records what a verdict added to an active block (a new
// client, event or name), or that it widened it to everyone under the
// verdict's decision id.
func (e *Engine) histExtended(b blocks.Block, out blocks.Outcome, job validate.Job, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	en := h.active[b.IP]
	if en == nil {
		return
	}
	n := len(en.Clients) + len(en.Events) + len(en.Qnames)
	en.addCause(h, job.Client, job.Event, job.Name)
	changed := n != len(en.Clients)+len(en.Events)+len(en.Qnames)
	if changed && job.Event != "" {
		en.step(now, "event", "event %s: client %s resolved %s", job.Event, AddrString(job.Client), job.Name)
	}
	if out == blocks.Widened {
		en.Scope, en.Reasons, en.Codes = adminapi.ScopeEveryone, slices.Clone(b.Reasons), codesOf(b.Reasons)
		if b.Decision != en.ID && !slices.Contains(en.Aliases, b.Decision) {
			en.Aliases = append(en.Aliases, b.Decision)
			h.byID[b.Decision] = en
		}
		en.step(now, "block", "widened to everyone by decision %s: %s", b.Decision, strings.Join(b.Reasons, "; "))
		changed = true
	}
	if changed {
		e.histSave(en)
	}
}

// histAdopted records a block another node decided. One that replaces a
// different decision of the IP ends that one.
func (e *Engine) histAdopted(b blocks.Block, v *verdicts.Verdict, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	if en, ok := h.byID[b.Decision]; ok {
		if cur := h.active[b.IP]; cur != en {
			e.histEndLocked(cur, now, "replaced by decision "+b.Decision+" from another node")
		}
		en.State, en.Ended, en.Lifted, en.Expires = adminapi.StateActive, time.Time{}, nil, b.Expires.Round(0).UTC()
		for _, c := range b.Clients {
			en.addCause(h, c, "", "")
		}
		for _, ev := range b.Events {
			en.addCause(h, netip.Addr{}, ev, "")
		}
		h.active[en.IP] = en
		e.histSave(en)
		return
	}
	e.histEndLocked(h.active[b.IP], now, "replaced by decision "+b.Decision+" from another node")
	var verdict verdicts.Verdict
	if v != nil {
		verdict = *v
	}
	origin, actor := adminapi.OriginFleet, actorFleet
	if b.Origin == blocks.OriginManual {
		origin, actor = adminapi.OriginManual, b.Actor
	}
	en := newEntry(b, verdict, origin, actor, now)
	en.step(now, "block", "decided by another node of the fleet; blocked here until %s", en.Expires.Format(time.RFC3339))
	h.insert(en)
	e.histSave(en)
}

// histEndLocked ends en, if active, as replaced by another decision (or
// as expired, if its time ran out before the sweeper saw it); h.mu held.
func (e *Engine) histEndLocked(en *histEntry, now time.Time, why string) {
	if en == nil || en.State != adminapi.StateActive {
		return
	}
	if !now.Before(en.Expires) {
		e.histFinish(en, adminapi.StateExpired, en.Expires)
		en.step(en.Expires, "expire", "expired after %s", optval.Short(en.Expires.Sub(en.Created)))
		e.histSave(en)
		return
	}
	e.histFinish(en, adminapi.StateLifted, now)
	en.Lifted = &adminapi.Lifted{At: now.Round(0).UTC(), Actor: actorHistory, Reason: why}
	en.step(now, "lift", "%s", why)
	e.histSave(en)
}

func (e *Engine) histFinish(en *histEntry, st string, now time.Time) {
	h := e.st.hist
	en.State, en.Ended = st, now.Round(0).UTC()
	if h.active[en.IP] == en {
		delete(h.active, en.IP)
	}
}

// histLifted records that b was lifted by actor for why.
func (e *Engine) histLifted(b blocks.Block, actor, why string, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	en := h.byID[b.Decision]
	if en == nil || en.State != adminapi.StateActive {
		return
	}
	e.histFinish(en, adminapi.StateLifted, now)
	en.Lifted = &adminapi.Lifted{At: now.Round(0).UTC(), Actor: actor, Reason: why}
	en.step(now, "lift", "lifted by %s: %s", actor, why)
	e.histSave(en)
}

// histExpired records that b ended by its TTL.
func (e *Engine) histExpired(b blocks.Block, now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	en := h.byID[b.Decision]
	if en == nil || en.State != adminapi.StateActive {
		return
	}
	e.histFinish(en, adminapi.StateExpired, b.Expires)
	en.step(b.Expires, "expire", "expired after %s", optval.Short(b.Expires.Sub(b.Created)))
	e.histSave(en)
}

// histMark records the state of a change of decision id in every hook:
// pending when it is queued, failed when it could not be.
func (e *Engine) histMark(id string, action sink.Action, hooks []string, state, why string) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	en := h.byID[id]
	if en == nil {
		return
	}
	for _, name := range hooks {
		hs := en.hook(name)
		hs.Action, hs.State, hs.Attempts, hs.Error = string(action), state, 0, why
	}
	e.histSave(en)
}

// hook returns en's state of hook name, adding it.
func (en *histEntry) hook(name string) *hookState {
	for i := range en.Hooks {
		if en.Hooks[i].Hook == name {
			return &en.Hooks[i]
		}
	}
	en.Hooks = append(en.Hooks, hookState{Hook: name})
	return &en.Hooks[len(en.Hooks)-1]
}

// histHookResult records what a hook did with a batch.
func (e *Engine) histHookResult(r sink.Result, now time.Time) {
	if r.Outcome == sink.Expired {
		return
	}
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[*histEntry]bool{}
	for _, ch := range r.Batch {
		en := h.byID[ch.Decision]
		if en == nil || seen[en] {
			continue
		}
		seen[en] = true
		hs := en.hook(r.Sink)
		was := hs.State
		hs.Action, hs.Attempts = string(ch.Action), r.Attempt
		switch r.Outcome {
		case sink.Applied:
			hs.State, hs.DeliveredAt, hs.Error = "delivered", now.Round(0).UTC(), ""
		case sink.Retrying:
			hs.State, hs.Error = "pending", errText(r.Err)
		default: // failing (still retried) or given up
			hs.State, hs.Error = "failed", errText(r.Err)
		}
		if hs.State != was {
			en.step(now, "hook", "%s: %s %s (attempt %d)%s", r.Sink, ch.Action, hs.State, r.Attempt, suffix(hs.Error))
		}
		e.histSave(en)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// CountRewrite counts a DNS answer rewritten because of decision id. It
// is called on the DNS path: a read lock and an atomic add.
func (e *Engine) CountRewrite(id string) {
	h := e.st.hist
	h.mu.RLock()
	en := h.byID[id]
	h.mu.RUnlock()
	if en != nil {
		en.rewrites.Add(1)
	}
}

// histSweep writes the rewrites counted since the last sweep and forgets
// the decisions past the retention.
func (e *Engine) histSweep(now time.Time) {
	h := e.st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	drop := 0
	for _, en := range h.order {
		if n := en.rewrites.Swap(0); n > 0 {
			if en.Rewrites == 0 {
				en.step(now, "rewrite", "DNS answers rewritten (names: %s)", strings.Join(en.Qnames, ", "))
			}
			en.Rewrites += n
			e.histSave(en)
		}
		if !now.Before(en.keepUntil(h.keep)) {
			drop++
		}
	}
	if drop == 0 {
		return
	}
	kept := h.order[:0]
	for _, en := range h.order {
		if now.Before(en.keepUntil(h.keep)) {
			kept = append(kept, en)
			continue
		}
		h.forgetLocked(en)
		e.deleteState(kindDecisions, en.ID)
	}
	clear(h.order[len(kept):])
	h.order = kept
}

// forgetLocked drops en from every index but order; h.mu held.
func (h *history) forgetLocked(en *histEntry) {
	delete(h.byID, en.ID)
	for _, a := range en.Aliases {
		delete(h.byID, a)
	}
	if h.active[en.IP] == en {
		delete(h.active, en.IP)
	}
	for _, ev := range en.Events {
		ids := slices.DeleteFunc(h.byEvent[ev], func(id string) bool { return id == en.ID })
		if len(ids) == 0 {
			delete(h.byEvent, ev)
		} else {
			h.byEvent[ev] = ids
		}
	}
}

// restoreHistory loads the decisions of the state directory: those past
// the retention go, an active one whose block is no longer held ended
// while the server was down, and a live block without a decision (kept
// by a version before the history) gets one.
func (st *State) restoreHistory(recs []histRecord, now time.Time, log Logger) {
	h := st.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	live := map[netip.Addr]blocks.Block{}
	for _, b := range st.blocks.Active(now) {
		live[b.IP] = b
	}
	for _, rec := range recs {
		en := &histEntry{histRecord: rec}
		if _, dup := h.byID[en.ID]; dup || !en.IP.IsValid() && !en.Range.IsValid() || en.ID == "" || !now.Before(en.keepUntil(h.keep)) {
			continue
		}
		if en.Timeline == nil {
			en.Timeline = []adminapi.TimelineEntry{}
		}
		if en.State == adminapi.StateActive {
			b, ok := live[en.IP]
			if en.Range.IsValid() {
				b, ok = st.blocks.GetRange(en.Range, now)
			}
			if !ok || (b.Decision != en.ID && !slices.Contains(en.Aliases, b.Decision)) {
				en.State, en.Ended = adminapi.StateExpired, en.Expires
				if now.Before(en.Ended) {
					en.Ended = now.Round(0).UTC()
				}
				en.step(en.Ended, "expire", "ended while the server was down")
			}
		}
		h.insert(en)
	}
	for ip, b := range live {
		if h.active[ip] != nil || h.byID[b.Decision] != nil {
			continue
		}
		origin, actor := adminapi.OriginEngine, actorHistory
		if b.Origin == blocks.OriginManual {
			origin, actor = adminapi.OriginManual, b.Actor
		}
		en := newEntry(b, verdicts.Verdict{}, origin, actor, now)
		en.step(b.Created, "block", "blocked for %s (restored: made before the decision history)", optval.Short(b.TTL))
		h.insert(en)
		st.put(kindDecisions, en.ID, en.keepUntil(h.keep), &en.histRecord, log)
	}
}

// view is en as the API shows it, at now; h.mu held (read).
func (en *histEntry) view(now time.Time) adminapi.Decision {
	d := adminapi.Decision{ID: en.ID, IP: en.ip(), Range: en.rangeText(), State: adminapi.DecisionState(en.State, en.Expires, now),
		Origin: en.Origin, Scope: en.Scope, Port: en.Port, Narrowed: en.Narrowed, Monitor: en.Monitor,
		Reasons: nonNil(slices.Clone(en.Reasons)), Factors: []string{}, Clients: make([]string, len(en.Clients)),
		Events: nonNil(slices.Clone(en.Events)), Qnames: nonNil(slices.Clone(en.Qnames)),
		Rewrites: en.Rewrites + en.rewrites.Load(), Created: en.Created, Expires: en.Expires,
		TTLSeconds: adminapi.Seconds(en.Expires.Sub(en.Created)), Repeat: en.Repeat, Actor: en.Actor, Reason: en.Reason,
		Hooks:    make([]adminapi.HookDelivery, len(en.Hooks)),
		Evidence: adminapi.Evidence{Ports: []int{}, Tags: []string{}}}
	if d.State == adminapi.StateActive {
		d.RemainingSeconds = adminapi.Seconds(en.Expires.Sub(now))
	}
	for _, c := range en.Codes {
		if g := risk.GroupOf(c); !slices.Contains(d.Factors, g) {
			d.Factors = append(d.Factors, g)
		}
	}
	for i, c := range en.Clients {
		d.Clients[i] = c.String()
	}
	if ev := en.Evidence; ev != nil {
		d.Evidence = adminapi.Evidence{ScoreInbound: ev.ScoreInbound, ScoreOutbound: ev.ScoreOutbound,
			Ports: nonNil(slices.Clone(ev.Ports)), Tags: nonNil(slices.Clone(ev.Tags))}
	}
	for i, hs := range en.Hooks {
		d.Hooks[i] = adminapi.HookDelivery{Hook: hs.Hook, Action: hs.Action, State: hs.State, Attempts: hs.Attempts, Error: hs.Error}
		if !hs.DeliveredAt.IsZero() {
			at := hs.DeliveredAt
			d.Hooks[i].DeliveredAt = &at
		}
	}
	if en.Lifted != nil {
		l := *en.Lifted
		d.Lifted = &l
	}
	return d
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ip is en's IP as the API shows it: "" for a range decision.
func (en *histEntry) ip() string {
	if !en.IP.IsValid() {
		return ""
	}
	return en.IP.String()
}

// rangeText is en's range as the API shows it: "" for an IP decision.
func (en *histEntry) rangeText() string {
	if !en.Range.IsValid() {
		return ""
	}
	return en.Range.String()
}

// matches reports whether f selects en at now; h.mu held (read).
func (en *histEntry) matches(f adminapi.DecisionFilter, now time.Time) bool {
	switch {
	case f.IP.IsValid() && en.IP != f.IP && !en.Range.Contains(f.IP),
		f.Client.IsValid() && !slices.Contains(en.Clients, f.Client),
		f.Scope != "" && en.Scope != f.Scope,
		f.State != "" && adminapi.DecisionState(en.State, en.Expires, now) != f.State,
		!f.Since.IsZero() && en.Created.Before(f.Since),
		!f.Until.IsZero() && en.Created.After(f.Until):
		return false
	case len(f.Factors) > 0:
		return slices.ContainsFunc(en.Codes, func(c risk.Factor) bool { return slices.Contains(f.Factors, c) })
	}
	return true
}

// list is the page of GET /v1/decisions.
func (h *history) list(f adminapi.DecisionFilter, after adminapi.Cursor, limit int, now time.Time) ([]adminapi.Decision, adminapi.Cursor) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i := len(h.order)
	if !after.IsZero() {
		i = sort.Search(len(h.order), func(i int) bool { return !entryLess(h.order[i], after.At, after.ID) })
	}
	out := make([]adminapi.Decision, 0, min(limit, 16))
	for i--; i >= 0; i-- {
		en := h.order[i]
		if !en.matches(f, now) {
			continue
		}
		if len(out) == limit {
			last := out[len(out)-1]
			return out, adminapi.Cursor{At: last.Created, ID: last.ID}
		}
		out = append(out, en.view(now))
	}
	return out, adminapi.Cursor{}
}

// detail is GET /v1/decisions/{id}.
func (h *history) detail(id string, now time.Time) (adminapi.DecisionDetail, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	en := h.byID[id]
	if en == nil {
		return adminapi.DecisionDetail{}, false
	}
	return adminapi.DecisionDetail{Decision: en.view(now), Timeline: slices.Clone(en.Timeline)}, true
}
