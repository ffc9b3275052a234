// Package console is the analyst's web console of the admin API, served
// at /ui/: an overview, the decisions with their timelines, the events and
// the tagged clients, and forms to lift a decision, allowlist an IP or a
// name and untag a client.
//
// It holds no state of the engine and no rules of its own: every page is
// rendered from the admin API's JSON (the issue-14 contract), fetched by
// calling the API's own http.Handler in-process with the token the analyst
// logged in with. So what a token may see or change, how a value is
// checked and what the audit log names are exactly the API's: a read token
// gets the API's 403 for a lift, shown as a message, and the audit actor
// of a lift is the token's name.
//
// Pages are rendered on the server with html/template, which escapes
// everything it shows (names, reasons and refs come from the internet);
// there is no JavaScript. The templates and the style sheet are embedded
// in the binary.
package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Config.
const (
	// DefaultIdle ends a session not used for this long: a console left
	// open on an unattended screen should not stay able to lift blocks.
	DefaultIdle = time.Hour
	// DefaultLifetime ends every session this long after its login: a
	// shift, so a token removed from the tokens file is not needed to end
	// a forgotten session.
	DefaultLifetime = 12 * time.Hour
	// DefaultMaxSessions bounds the sessions kept; past it the least
	// recently used is ended. Only a valid token makes a session.
	DefaultMaxSessions = 1000
)

// Identity is who a token is, as the tokens file names it.
type Identity struct {
	Name string
	Role string // "events", "read" or "operator"
}

// Config configures a Console. API is required.
type Config struct {
	// API is the admin API's handler, authentication included. Every page
	// is read from it, and every change made through it, with the
	// session's token.
	API http.Handler
	// Identify names the token secret and gives its role; ok is false for
	// a secret that is no token. It is asked only after the API accepted
	// the secret, so that a wrong token counts against the API's limit on
	// failed authentications.
	Identify func(secret string) (id Identity, ok bool)
	// NoAuth says the API has no tokens (a loopback API without
	// authentication): the login form then asks for none, and the session
	// may do everything, as anyone on the machine may with the API itself.
	NoAuth bool
	// Idle, Lifetime and MaxSessions bound sessions; 0 means the Default.
	Idle, Lifetime time.Duration
	MaxSessions    int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logf, if set, gets one line per login, failed login and logout. It
	// never gets a token.
	Logf func(format string, args ...any)
}

// Console serves the web console under /ui/.
type Console struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	handler  http.Handler
}

// BasePath is where the console is mounted.
const BasePath = "/ui/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns a Console for cfg.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil {
		return nil, fmt.Errorf("console: no API handler")
	}
	if cfg.Identify == nil && !cfg.NoAuth {
		return nil, fmt.Errorf("console: no Identify for the API's tokens")
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultIdle
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, pages: pages,
		sessions: newSessions(cfg.Idle, cfg.Lifetime, cfg.MaxSessions)}
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves a request under BasePath.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.handler.ServeHTTP(w, r)
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static") // the directory is embedded
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	mux.Handle("GET /ui/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The style sheet and icon change only with the binary: an hour
		// spares a request per page.
		w.Header().Set("Cache-Control", "max-age=3600")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /ui/login", c.loginForm)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.HandleFunc("POST /ui/logout", c.withSession(c.logout))
	mux.HandleFunc("GET /ui/{$}", c.withSession(c.overview))
	mux.HandleFunc("GET /ui/decisions", c.withSession(c.decisions))
	mux.HandleFunc("GET /ui/decisions/{id}", c.withSession(c.decision))
	mux.HandleFunc("POST /ui/decisions/{id}/lift", c.withSession(c.lift))
	mux.HandleFunc("POST /ui/allow", c.withSession(c.allow))
	mux.HandleFunc("GET /ui/events", c.withSession(c.events))
	mux.HandleFunc("GET /ui/events/{id}", c.withSession(c.event))
	mux.HandleFunc("GET /ui/clients", c.withSession(c.clients))
	mux.HandleFunc("POST /ui/clients/{ip}/untag", c.withSession(c.untag))
	// The standard library's check of Sec-Fetch-Site and Origin refuses a
	// cross-origin POST before the form's own CSRF token is looked at.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, http.StatusForbidden, "This form was sent from another site and was refused.")
	}))
	protected := csrf.Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if c.cfg.NoAuth && !loopbackHost(r.Host) {
			// Without tokens, a page of another site whose name was made to
			// resolve to 127.0.0.1 (DNS rebinding) would be same-origin
			// with the console: only a loopback name or address is.
			c.renderError(w, r, nil, http.StatusForbidden, "Without API tokens the console is served only at a loopback address, such as http://127.0.0.1:PORT/ui/.")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		}
		protected.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine: a
// loopback address or localhost, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// securityHeaders forbid what the console never does: scripts, framing,
// loading from or posting to elsewhere, and caching pages that show
// decisions.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// page is what every template gets.
type page struct {
	Title   string
	Session *sessionView // nil on the login page
	Flash   *notice      // a one-time message after a change
	Error   string       // what went wrong, e.g. the API's 400 or 403
	Field   string       // the field the API named in a 400
	Data    any
}

// render executes the named page into a buffer first, so that a template
// failure is a 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.cfg.Logf("console: rendering %s: %v", name, err)
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows msg on a page of its own, with the navigation when
// there is a session.
func (c *Console) renderError(w http.ResponseWriter, _ *http.Request, s *session, status int, msg string) {
	p := page{Title: http.StatusText(status), Error: msg}
	if s != nil {
		p.Session = s.view()
	}
	c.render(w, status, "error", p)
}
