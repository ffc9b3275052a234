package enforce

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

var _ adminapi.StatusBackend = API{}

// statusHours is how many hourly buckets the API's counts keep: the
// "last 24 h" of GET /v1/status is this hour and the 23 before it.
const statusHours = 24

// apiHealth is what this node's Criminal IP API calls found: the last
// state the API was in, the last error, and the calls of the last 24
// hours by hour. It lives in the State, so a reload keeps it.
type apiHealth struct {
	mu        sync.Mutex
	hours     [statusHours]apiHour // by hour number modulo statusHours
	state     string               // adminapi.API*; "" until a call said
	lastErr   string
	lastErrAt time.Time
}

// apiHour counts the calls of one hour.
type apiHour struct {
	hour                 int64 // hours since the Unix epoch
	calls, errors, quota int
}

// record counts one call at now; text is its error, already made safe.
func (h *apiHealth) record(a criminalip.Attempt, text string, now time.Time) {
	hour := now.Unix() / 3600
	h.mu.Lock()
	defer h.mu.Unlock()
	b := &h.hours[hour%statusHours]
	if b.hour != hour {
		*b = apiHour{hour: hour}
	}
	b.calls++
	if a.Outcome != criminalip.KindOK {
		b.errors++
		h.lastErr, h.lastErrAt = text, now.Round(0).UTC()
	}
	// A refused request or a malformed answer is about one IP, not the
	// API: it leaves the state as it was.
	switch a.Outcome {
	case criminalip.KindOK:
		h.state = adminapi.APIOK
	case criminalip.KindTransient:
		h.state = adminapi.APIFailing
	case criminalip.KindBadKey:
		h.state = adminapi.APIBadKey
	case criminalip.KindQuota:
		h.state = adminapi.APIQuota
		b.quota++
	}
}

// status sums the buckets of the last statusHours hours at now.
func (h *apiHealth) status(now time.Time) adminapi.APIStatus {
	hour := now.Unix() / 3600
	h.mu.Lock()
	defer h.mu.Unlock()
	s := adminapi.APIStatus{State: h.state, LastError: h.lastErr}
	if s.State == "" {
		s.State = adminapi.APIOK
	}
	if !h.lastErrAt.IsZero() {
		at := h.lastErrAt
		s.LastErrorAt = &at
	}
	for _, b := range h.hours {
		if b.hour > hour-statusHours && b.hour <= hour {
			s.Calls24h += b.calls
			s.Errors24h += b.errors
			s.QuotaErrors24h += b.quota
		}
	}
	return s
}

// hookHealth is, per hook name, whether its last attempt failed and its
// last error. It lives in the State, so a reload keeps it.
type hookHealth struct {
	mu sync.Mutex
	m  map[string]*hookHealthEntry
}

type hookHealthEntry struct {
	failing   bool
	lastErr   string
	lastErrAt time.Time
}

// record notes what one attempt of a hook came to.
func (h *hookHealth) record(r sink.Result, now time.Time) {
	if r.Outcome == sink.Expired { // no attempt was made
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*hookHealthEntry{}
	}
	en := h.m[r.Sink]
	if en == nil {
		en = &hookHealthEntry{}
		h.m[r.Sink] = en
	}
	en.failing = r.Outcome != sink.Applied
	if en.failing {
		en.lastErr, en.lastErrAt = textsafe.Clean(errText(r.Err)), now.Round(0).UTC()
	}
}

// status is hook name's health, with pending changes queued.
func (h *hookHealth) status(name string, pending int) adminapi.HookStatus {
	s := adminapi.HookStatus{Hook: name, Pending: pending}
	h.mu.Lock()
	defer h.mu.Unlock()
	if en := h.m[name]; en != nil {
		s.Failing, s.LastError = en.failing, en.lastErr
		if !en.lastErrAt.IsZero() {
			at := en.lastErrAt
			s.LastErrorAt = &at
		}
	}
	return s
}

// observeAPI counts an API call for GET /v1/status, then for the
// Observer. It runs in the validation workers after every call.
func (e *Engine) observeAPI(a criminalip.Attempt) {
	text := ""
	if a.Err != nil {
		// The client keeps the key out of its errors; the text came
		// partly from the API's answer, which could echo it all the same.
		text = a.Err.Error()
		if k := string(e.cfg.APIKey); k != "" {
			text = strings.ReplaceAll(text, k, "[REDACTED]")
		}
		text = textsafe.Clean(text)
	}
	e.st.api.record(a, text, e.Now())
	e.obs.APICall(a)
}

// Status answers GET /v1/status: the API's health, the hooks', the
// active decisions, the tagged clients, the state directory and the
// fleet. The admin API adds the events of the last 24 hours.
func (a API) Status() adminapi.Status {
	e := a.e
	st, now := e.st, e.Now()
	s := adminapi.Status{
		API:           st.api.status(now),
		Hooks:         e.hooksStatus(),
		Decisions:     st.hist.activeCounts(now),
		TaggedClients: st.tags.Count(now),
		Budget:        e.budgetStatus(now),
	}
	for _, b := range st.blocks.ActiveRanges(now) { // the history's active index holds IPs only
		s.Decisions.Active++
		if b.Monitor {
			s.Decisions.ActiveMonitor++
		} else {
			s.Decisions.ActiveEveryone++ // a range is always for everyone
		}
	}
	if w := st.writer; w != nil {
		s.State.Configured = true
		if err := w.Err(); err != nil {
			s.State.Error = textsafe.Clean(err.Error())
		} else {
			s.State.Writable = true
		}
	}
	if f := st.fleet; f != nil {
		s.Fleet = adminapi.FleetStatus{Configured: true, Up: f.Up()}
	}
	return s
}

// hooksStatus is every hook of this engine, in the Corefile's order.
func (e *Engine) hooksStatus() []adminapi.HookStatus {
	out := []adminapi.HookStatus{}
	d := e.dispatcher.Load()
	if d == nil {
		return out
	}
	stats := d.Stats()
	var seen []string
	for _, name := range e.hookNames {
		if slices.Contains(seen, name) { // sinks sharing a name share their figures
			continue
		}
		seen = append(seen, name)
		out = append(out, e.st.hookHealth.status(name, stats[name].Queued))
	}
	return out
}

// activeCounts counts the active decisions by scope at now.
func (h *history) activeCounts(now time.Time) adminapi.DecisionCounts {
	var c adminapi.DecisionCounts
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, en := range h.active {
		if adminapi.DecisionState(en.State, en.Expires, now) != adminapi.StateActive {
			continue
		}
		c.Active++
		switch {
		case en.Monitor:
			c.ActiveMonitor++
		case en.Scope == adminapi.ScopeTagged:
			c.ActiveTagged++
		default:
			c.ActiveEveryone++
		}
	}
	return c
}
