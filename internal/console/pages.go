package console

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// pageSize is the rows of a list page: enough to scan, small enough that
// a page renders at once whatever the history holds.
const pageSize = "100"

// show renders a page of the session, with its one-time message.
func (c *Console) show(w http.ResponseWriter, s *session, name, title string, data any) {
	c.render(w, http.StatusOK, name, page{Title: title, Session: s.view(), Flash: c.sessions.takeFlash(s), Data: data})
}

// failed shows what the API refused. A 401 means the session's token is no
// longer one (the tokens file changed): the session ends and the browser
// goes back to the login form.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		c.cfg.Logf("console: %v", err)
		c.renderError(w, r, s, http.StatusBadGateway, "The admin API's answer could not be read.")
		return
	}
	if ae.Status == http.StatusUnauthorized {
		c.endSession(w, r, s)
		if r.Method == http.MethodGet {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c.renderError(w, r, nil, http.StatusForbidden, "Your token is no longer accepted; log in again.")
		return
	}
	p := page{Title: http.StatusText(ae.Status), Session: s.view(), Error: ae.Msg, Field: ae.Field}
	c.render(w, ae.Status, "error", p)
}

func (c *Console) endSession(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.remove(s.id)
	setCookie(w, r, sessionCookie, "", -1)
}

type loginData struct {
	CSRF   string
	Next   string
	NoAuth bool
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.renderLogin(w, r, http.StatusOK, "", localPath(r.URL.Query().Get("next")))
}

// renderLogin shows the login form with a fresh CSRF token in a cookie of
// its own (there is no session yet to keep it in).
func (c *Console) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg, next string) {
	tok := randomToken()
	setCookie(w, r, loginCookie, tok, 3600)
	c.render(w, status, "login", page{Title: "Log in", Error: msg,
		Data: loginData{CSRF: tok, Next: next, NoAuth: c.cfg.NoAuth}})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.PostFormValue("next"))
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), ck.Value) {
		c.renderLogin(w, r, http.StatusForbidden, "The login form expired; try again.", next)
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	who, status, msg := c.identify(r, secret)
	if msg != "" {
		c.cfg.Logf("console: login refused from %s: %s", hostOf(r.RemoteAddr), msg)
		c.renderLogin(w, r, status, msg, next)
		return
	}
	s := c.sessions.add(who, secret, c.cfg.Now())
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, s.id, 0) // no Max-Age: it ends with the browser too
	c.cfg.Logf("console: %s (%s) logged in from %s", who.Name, who.Role, hostOf(r.RemoteAddr))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// identify checks secret with the API first (a read that every token
// allowed in the console may make), so that the API's limits on failed
// and too many requests count a login like any other request, then asks
// who it is. On refusal it returns the status and what to tell the user.
func (c *Console) identify(r *http.Request, secret string) (Identity, int, string) {
	if c.cfg.NoAuth {
		return Identity{Name: "(no authentication)", Role: "operator"}, 0, ""
	}
	if secret == "" {
		return Identity{}, http.StatusBadRequest, "Enter your API token."
	}
	err := c.call(r, &session{secret: secret}, http.MethodGet, "/v1/clients", nil, nil, nil)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return Identity{}, http.StatusUnauthorized, "That token is not valid."
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		return Identity{}, http.StatusForbidden, "That token may not read (" + ae.Msg + "); the console needs a read or an operator token."
	case errors.As(err, &ae):
		return Identity{}, ae.Status, ae.Msg
	case err != nil:
		return Identity{}, http.StatusBadGateway, "The admin API's answer could not be read."
	}
	who, ok := c.cfg.Identify(secret)
	if !ok || (who.Role != "read" && who.Role != "operator") {
		return Identity{}, http.StatusForbidden, "The console needs a read or an operator token."
	}
	return who, 0, ""
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.endSession(w, r, s)
	c.cfg.Logf("console: %s logged out", s.who.Name)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// hostOf is the address part of a RemoteAddr.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// listQuery copies the filters of a list page that are set, for the API,
// with the page size.
func listQuery(r *http.Request, keys ...string) url.Values {
	q := url.Values{}
	in := r.URL.Query()
	for _, k := range keys {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", pageSize)
	if v := in.Get("limit"); v != "" {
		q.Set("limit", v)
	}
	return q
}

// pager holds a list page's links: cursors go forward only, so there is
// the next page and the first.
type pager struct {
	Next, First string
}

func pageLinks(base string, q url.Values, next string) pager {
	var p pager
	filters := url.Values{}
	for k, v := range q {
		if k != "cursor" && !(k == "limit" && v[0] == pageSize) {
			filters[k] = v
		}
	}
	if q.Get("cursor") != "" {
		p.First = base + "?" + filters.Encode()
	}
	if next != "" {
		filters.Set("cursor", next)
		p.Next = base + "?" + filters.Encode()
	}
	return p
}

// decisionFilters are the filters of GET /v1/decisions.
var decisionFilters = []string{"ip", "client", "factor", "scope", "state", "since", "until", "cursor"}

type decisionsData struct {
	Filters   url.Values
	Decisions []Decision
	Pager     pager
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request, s *session) {
	q := listQuery(r, decisionFilters...)
	var res decisionPage
	if err := c.call(r, s, http.MethodGet, "/v1/decisions", q, nil, &res); err != nil {
		c.failedList(w, r, s, "decisions", "Decisions", decisionsData{Filters: r.URL.Query()}, err)
		return
	}
	c.show(w, s, "decisions", "Decisions", decisionsData{
		Filters: r.URL.Query(), Decisions: res.Decisions, Pager: pageLinks("/ui/decisions", q, res.NextCursor)})
}

// failedList shows a list page's filters again with the API's 400, which
// names the filter that is wrong; other failures are failed's.
func (c *Console) failedList(w http.ResponseWriter, r *http.Request, s *session, name, title string, data any, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		c.failed(w, r, s, err)
		return
	}
	c.render(w, http.StatusBadRequest, name, page{Title: title, Session: s.view(), Error: ae.Msg, Field: ae.Field, Data: data})
}

type decisionData struct {
	Decision
	AllowValues []string // the IP or range, then the names
	Back        string
	Durations   []choice
}

// choice is an option of a select.
type choice struct{ Value, Label string }

// allowDurations are the expiries offered for an allowlist entry.
var allowDurations = []choice{{"", "never"}, {"1h", "1 hour"}, {"24h", "1 day"}, {"168h", "7 days"}, {"720h", "30 days"}}

func (c *Console) decision(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var d Decision
	if err := c.call(r, s, http.MethodGet, "/v1/decisions/"+url.PathEscape(id), nil, nil, &d); err != nil {
		c.failed(w, r, s, err)
		return
	}
	data := decisionData{Decision: d, Back: "/ui/decisions/" + url.PathEscape(id), Durations: allowDurations}
	if t := d.Target(); t != "" {
		data.AllowValues = append(data.AllowValues, t)
	}
	for _, n := range d.Qnames {
		// A name that is not plain text is no name to allowlist.
		if n = strings.TrimSuffix(n, "."); n != "" && textsafe.Safe(n) && !slices.Contains(data.AllowValues, n) {
			data.AllowValues = append(data.AllowValues, n)
		}
	}
	c.show(w, s, "decision", "Decision "+id, data)
}

// eventFilters are the filters of GET /v1/events.
var eventFilters = []string{"client", "type", "since", "until", "cursor"}

type eventsData struct {
	Filters url.Values
	Events  []EventSummary
	Pager   pager
}

func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	q := listQuery(r, eventFilters...)
	var res eventPage
	if err := c.call(r, s, http.MethodGet, "/v1/events", q, nil, &res); err != nil {
		c.failedList(w, r, s, "events", "Events", eventsData{Filters: r.URL.Query()}, err)
		return
	}
	c.show(w, s, "events", "Events", eventsData{
		Filters: r.URL.Query(), Events: res.Events, Pager: pageLinks("/ui/events", q, res.NextCursor)})
}

func (c *Console) event(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var ev EventDetail
	if err := c.call(r, s, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil, nil, &ev); err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.show(w, s, "event", "Event "+id, ev)
}

func (c *Console) clients(w http.ResponseWriter, r *http.Request, s *session) {
	var list clientList
	if err := c.call(r, s, http.MethodGet, "/v1/clients", nil, nil, &list); err != nil {
		c.failed(w, r, s, err)
		return
	}
	c.show(w, s, "clients", "Tagged clients", list)
}
