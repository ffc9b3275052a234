package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// countLimit is the most items the overview reads from a list to count
// them, when the admin API has no GET /v1/status; past it the count
// shows as "N+": paging through a large history on every visit would
// make the overview the slowest page.
const countLimit = 1000

// count is a number of items, which may be "at least".
type count struct {
	N    int
	More bool // there are more than N
}

// hookHealth is one hook's deliveries of the active decisions read,
// without GET /v1/status.
type hookHealth struct {
	Hook                       string
	Delivered, Pending, Failed int
	LastError                  string
}

type overviewData struct {
	Active, Everyone, Tagged, Monitor count
	Clients                           count
	Events24h                         count
	Healthy                           bool
	Health                            string
	// Status is GET /v1/status; nil where the API has none, and the
	// counts and Hooks are then read from the lists.
	Status   *status
	Hooks    []hookHealth
	Latest   []Decision
	Problems []string // the parts the API refused or could not give
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	var d overviewData
	var unauthorized bool
	problem := func(what string, err error) bool {
		if err == nil {
			return false
		}
		var ae *apiError
		if errors.As(err, &ae) {
			unauthorized = unauthorized || ae.Status == http.StatusUnauthorized
			d.Problems = append(d.Problems, what+": "+ae.Msg)
		} else {
			d.Problems = append(d.Problems, what+": the admin API's answer could not be read")
		}
		return true
	}
	var st status
	err := c.call(r, s, http.MethodGet, "/v1/status", nil, nil, &st)
	var ae *apiError
	switch {
	case err == nil:
		d.Status = &st
		d.fromStatus(&st)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		// An admin API before GET /v1/status: count from the lists.
		c.countFromLists(r, s, &d, problem)
	default:
		problem("status", err)
		c.countFromLists(r, s, &d, problem)
	}
	var latest decisionPage
	if !problem("last decisions", c.call(r, s, http.MethodGet, "/v1/decisions", url.Values{"limit": {"10"}}, nil, &latest)) {
		d.Latest = latest.Decisions
	}
	if unauthorized {
		c.failed(w, r, s, &apiError{Status: http.StatusUnauthorized})
		return
	}
	code, text := c.rawCall(r, http.MethodGet, "/healthz")
	d.Healthy, d.Health = code == http.StatusOK, text
	c.show(w, s, "overview", "Overview", d)
}

// fromStatus takes the exact counts of GET /v1/status.
func (d *overviewData) fromStatus(st *status) {
	d.Active, d.Everyone = count{N: st.Decisions.Active}, count{N: st.Decisions.ActiveEveryone}
	d.Tagged, d.Monitor = count{N: st.Decisions.ActiveTagged}, count{N: st.Decisions.ActiveMonitor}
	d.Clients, d.Events24h = count{N: st.TaggedClients}, count{N: st.Events24h}
}

// countFromLists approximates what GET /v1/status would say from the
// lists: the first countLimit active decisions and events, and the hook
// deliveries of those decisions.
func (c *Console) countFromLists(r *http.Request, s *session, d *overviewData, problem func(string, error) bool) {
	c.activeSummary(r, s, d, problem)
	var clients clientList
	if !problem("tagged clients", c.call(r, s, http.MethodGet, "/v1/clients", nil, nil, &clients)) {
		d.Clients = count{N: len(clients)}
	}
	var events countPage
	q := url.Values{"since": {"24h"}, "limit": {itoa(countLimit)}}
	if !problem("events", c.call(r, s, http.MethodGet, "/v1/events", q, nil, &events)) {
		d.Events24h = count{N: len(events.Events), More: events.NextCursor != ""}
	}
}

// activeSummary counts the active decisions by scope and tallies their
// hooks' deliveries, from one page of up to countLimit.
func (c *Console) activeSummary(r *http.Request, s *session, d *overviewData, problem func(string, error) bool) {
	// Only what is counted is decoded: the page is up to countLimit
	// decisions, and decoding is most of the overview's time.
	var active struct {
		Decisions []struct {
			Scope   string     `json:"scope"`
			Monitor bool       `json:"monitor"`
			Hooks   []Delivery `json:"hooks"`
		} `json:"decisions"`
		NextCursor string `json:"next_cursor"`
	}
	q := url.Values{"state": {"active"}, "limit": {itoa(countLimit)}}
	if problem("active decisions", c.call(r, s, http.MethodGet, "/v1/decisions", q, nil, &active)) {
		return
	}
	more := active.NextCursor != ""
	d.Active = count{N: len(active.Decisions), More: more}
	hooks := map[string]*hookHealth{}
	for _, dec := range active.Decisions {
		switch {
		case dec.Monitor:
			d.Monitor.N++
		case dec.Scope == "tagged":
			d.Tagged.N++
		default:
			d.Everyone.N++
		}
		for _, h := range dec.Hooks {
			hh := hooks[h.Hook]
			if hh == nil {
				hh = &hookHealth{Hook: h.Hook}
				hooks[h.Hook] = hh
			}
			switch h.State {
			case "delivered":
				hh.Delivered++
			case "pending":
				hh.Pending++
			default:
				hh.Failed++
				if h.Error != "" {
					hh.LastError = h.Error
				}
			}
		}
	}
	d.Monitor.More, d.Tagged.More, d.Everyone.More = more, more, more
	for _, hh := range hooks {
		d.Hooks = append(d.Hooks, *hh)
	}
	slices.SortFunc(d.Hooks, func(a, b hookHealth) int { return strings.Compare(a.Hook, b.Hook) })
}
