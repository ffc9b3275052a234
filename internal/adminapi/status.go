package adminapi

import (
	"net/http"
	"time"
)

// StatusBackend is the part of a Backend that reports its health. A
// Backend that implements it gets GET /v1/status (role read), the figures
// of the console's overview: what Prometheus has, and what a dashboard
// cannot get from it without counting pages.
type StatusBackend interface {
	// Status returns the figures now; the Server fills Events24h from its
	// own event store.
	Status() Status
}

// Status is the answer of GET /v1/status.
type Status struct {
	API           APIStatus      `json:"api"`
	Hooks         []HookStatus   `json:"hooks"` // one per hook, by name; [] without hooks
	Decisions     DecisionCounts `json:"decisions"`
	TaggedClients int            `json:"tagged_clients"` // clients tagged by an event now
	Events24h     int            `json:"events_24h"`     // events posted to this node in the last 24 hours
	State         StateStatus    `json:"state"`
	Fleet         FleetStatus    `json:"fleet"`
	// Budget is the API budget (`budget`); null without one.
	Budget *BudgetStatus `json:"budget"`
}

// BudgetStatus is the API budget's current period: calls spent and left,
// and when it resets. Exhausted is true once the budget is spent, or a
// quota error from the API exhausted it, until ResetsAt.
type BudgetStatus struct {
	Limit     int64     `json:"limit"`
	Period    string    `json:"period"` // day or month
	Spent     int64     `json:"spent"`
	Remaining int64     `json:"remaining"`
	Exhausted bool      `json:"exhausted"`
	ResetsAt  time.Time `json:"resets_at"`
}

// The states of APIStatus.State.
const (
	APIOK      = "ok"      // the last call that said anything about the API succeeded (or none was made)
	APIFailing = "failing" // down: 5xx, timeouts, connection failures
	APIBadKey  = "bad_key" // the key was refused
	APIQuota   = "quota"   // rate limited or out of quota
)

// APIStatus is the health of the Criminal IP API as this node's calls
// found it.
type APIStatus struct {
	State          string     `json:"state"`
	LastError      string     `json:"last_error"`    // the last failed call's error, "" if none
	LastErrorAt    *time.Time `json:"last_error_at"` // null if none
	Calls24h       int        `json:"calls_24h"`
	Errors24h      int        `json:"errors_24h"`       // failed calls, quota errors included
	QuotaErrors24h int        `json:"quota_errors_24h"` // calls refused for the rate limit or the quota (429)
}

// HookStatus is the health of one hook.
type HookStatus struct {
	Hook        string     `json:"hook"`
	Pending     int        `json:"pending"` // changes queued: waiting, being applied or retried
	Failing     bool       `json:"failing"` // its last attempt failed
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
}

// DecisionCounts counts the active decisions. Everyone and Tagged are
// the enforced ones by scope; Monitor those only recorded (mode monitor or
// a factor's scope monitor), counted in Active too.
type DecisionCounts struct {
	Active         int `json:"active"`
	ActiveEveryone int `json:"active_everyone"`
	ActiveTagged   int `json:"active_tagged"`
	ActiveMonitor  int `json:"active_monitor"`
}

// StateStatus says whether changes reach the state directory.
type StateStatus struct {
	Configured bool   `json:"configured"` // a state directory is set; false: memory only
	Writable   bool   `json:"writable"`
	Error      string `json:"error"` // why the last commit failed, "" if it did not
}

// FleetStatus says whether the fleet's Redis is reachable.
type FleetStatus struct {
	Configured bool `json:"configured"`
	Up         bool `json:"up"`
}

// statusDay is how far back Events24h counts.
const statusDay = 24 * time.Hour

func (s *Server) statusRoutes(mux *http.ServeMux) {
	sb, ok := s.cfg.Backend.(StatusBackend)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		st := sb.Status()
		if st.Hooks == nil {
			st.Hooks = []HookStatus{}
		}
		st.Events24h = s.cfg.Store.CountSince(s.cfg.Now().Add(-statusDay))
		writeJSON(w, http.StatusOK, st)
	})
}
