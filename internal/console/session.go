package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Cookie names. The session cookie holds only a random id: the token stays
// on the server, so a stolen cookie dies with its session and logout ends it.
const (
	sessionCookie = "cip_session"
	loginCookie   = "cip_login" // the login form's CSRF token (double submit)
)

// session is one logged-in browser.
type session struct {
	id     string
	secret string // the token; "" without authentication
	who    Identity
	csrf   string // the token every state-changing form must carry
	start  time.Time

	// Guarded by sessions.mu.
	last  time.Time
	flash *notice
}

// notice is a one-time message shown on the page after a change.
type notice struct {
	Text string
	Bad  bool // the change was refused
}

// sessionView is what templates see of a session: never its secret.
type sessionView struct {
	Name   string
	Role   string
	CSRF   string
	CanAct bool // operator: the action buttons are shown
}

func (s *session) view() *sessionView {
	return &sessionView{Name: s.who.Name, Role: s.who.Role, CSRF: s.csrf, CanAct: s.who.Role == "operator"}
}

// sessions is the bounded server-side session store.
type sessions struct {
	idle, lifetime time.Duration
	max            int

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(idle, lifetime time.Duration, maxSessions int) *sessions {
	return &sessions{idle: idle, lifetime: lifetime, max: maxSessions, byID: map[string]*session{}}
}

// randomToken is 32 bytes from crypto/rand, base64url: an id or a CSRF
// token nobody can guess.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// add starts a session for who with secret; past the bound it ends the
// least recently used one first.
func (ss *sessions) add(who Identity, secret string, now time.Time) *session {
	s := &session{id: randomToken(), secret: secret, who: who, csrf: randomToken(), start: now, last: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweep(now)
	if len(ss.byID) >= ss.max {
		var oldest *session
		for _, o := range ss.byID {
			if oldest == nil || o.last.Before(oldest.last) {
				oldest = o
			}
		}
		delete(ss.byID, oldest.id)
	}
	ss.byID[s.id] = s
	return s
}

// sweep ends expired sessions; the caller holds mu. Logins are rare, so a
// pass over the bounded map at each one keeps it clean without a goroutine.
func (ss *sessions) sweep(now time.Time) {
	for id, s := range ss.byID {
		if ss.expired(s, now) {
			delete(ss.byID, id)
		}
	}
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.last) > ss.idle || now.Sub(s.start) > ss.lifetime
}

// get returns the live session of id and marks it used.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return nil
	}
	if ss.expired(s, now) {
		delete(ss.byID, id)
		return nil
	}
	s.last = now
	return s
}

func (ss *sessions) remove(id string) {
	ss.mu.Lock()
	delete(ss.byID, id)
	ss.mu.Unlock()
}

// setFlash keeps a message for the next page the session sees.
func (ss *sessions) setFlash(s *session, n notice) {
	ss.mu.Lock()
	s.flash = &n
	ss.mu.Unlock()
}

// takeFlash returns the message and forgets it.
func (ss *sessions) takeFlash(s *session) *notice {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := s.flash
	s.flash = nil
	return n
}

// setCookie sets a console cookie: HttpOnly (no script may read it),
// SameSite=Strict (no other site's link or form carries it), Secure when
// the request came over TLS, scoped to the console's path. maxAge < 0
// deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     BasePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// sessionHandler is a page or a form handler that needs a session.
type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// withSession finds the request's session. Without one, a page redirects
// to the login form, which comes back to it; a form is refused. A form
// must carry the session's CSRF token.
func (c *Console) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			s = c.sessions.get(ck.Value, c.cfg.Now())
		}
		if s == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				c.renderError(w, r, nil, http.StatusForbidden, "Your session has ended; log in again.")
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), s.csrf) {
			c.renderError(w, r, s, http.StatusForbidden, "This form's security token is missing or wrong; reload the page and try again.")
			return
		}
		h(w, r, s)
	}
}

// sameToken compares a token from a form with the expected one in
// constant time; an empty one never matches.
func sameToken(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// localPath is next if it is a path of the console, else the overview: a
// login must not send the browser to another site (an open redirect).
func localPath(next string) string {
	if !strings.HasPrefix(next, BasePath) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return BasePath
	}
	return next
}
