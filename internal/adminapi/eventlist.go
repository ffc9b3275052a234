package adminapi

import (
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// EventSummary is one event in GET /v1/events.
type EventSummary struct {
	ID          string     `json:"id"`
	Client      netip.Addr `json:"client"`
	Type        string     `json:"type"`
	Ref         string     `json:"ref"`
	Severity    string     `json:"severity,omitempty"`
	At          time.Time  `json:"at"`
	Received    time.Time  `json:"received"`
	By          string     `json:"by"`
	Backtracked int        `json:"backtracked"`
	Decisions   []string   `json:"decisions"`
}

type eventList struct {
	Events     []EventSummary `json:"events"`
	NextCursor string         `json:"next_cursor"`
}

// parseEventFilter reads the query of GET /v1/events.
func parseEventFilter(q map[string][]string, now time.Time) (EventFilter, error) {
	var f EventFilter
	var err error
	if v := first(q, "client"); v != "" {
		if f.Client, err = parseIP("client", v); err != nil {
			return f, err
		}
	}
	if v := first(q, "type"); v != "" {
		raw := []byte(`"` + strings.ReplaceAll(v, `"`, "") + `"`)
		if f.Type, err = parseType(raw); err != nil {
			return f, err
		}
	}
	if f.Since, err = parseSince("since", first(q, "since"), now); err != nil {
		return f, err
	}
	f.Until, err = parseSince("until", first(q, "until"), now)
	return f, err
}

// eventDecisions lists the decisions event id led to, if the Backend
// keeps a decision history; never nil.
func (s *Server) eventDecisions(id string) []string {
	var ids []string
	if db, ok := s.cfg.Backend.(DecisionBackend); ok {
		ids = db.EventDecisions(id)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseEventFilter(q, s.cfg.Now())
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	after, limit, err := page(q)
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	recs, next := s.cfg.Store.List(f, after, limit)
	out := eventList{Events: make([]EventSummary, len(recs)), NextCursor: next.String()}
	for i, rec := range recs {
		out.Events[i] = EventSummary{ID: rec.ID, Client: rec.Event.Client, Type: rec.Event.Type, Ref: rec.Event.Ref,
			Severity: rec.Event.Severity, At: rec.Event.At.UTC(), Received: rec.Received.UTC(), By: rec.By, Backtracked: rec.Accepted.Backtracked,
			Decisions: s.eventDecisions(rec.ID)}
	}
	writeJSON(w, http.StatusOK, out)
}

// clientView is a tagged client in GET /v1/clients.
type clientView struct {
	Client netip.Addr `json:"client"`
	Since  time.Time  `json:"since"`
	Until  time.Time  `json:"until"`
	Event  string     `json:"event"`
	Ref    string     `json:"ref"`
}

func (s *Server) getClients(w http.ResponseWriter, _ *http.Request) {
	tags := s.cfg.Backend.Clients()
	out := struct {
		Clients []clientView `json:"clients"`
	}{make([]clientView, len(tags))}
	for i, t := range tags {
		out.Clients[i] = clientView{Client: t.Client, Since: t.Since.UTC(), Until: t.Until.UTC(), Event: t.Event, Ref: t.Ref}
	}
	writeJSON(w, http.StatusOK, out)
}
