package adminapi

import (
	"net/http"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/console"
)

// withConsole serves the web console at /ui/ beside the API. The console
// does its own login and sessions and calls api, the API's handler,
// in-process with the session's token, so every page and change passes
// the API's authentication, roles, checks and audit like any request.
func (s *Server) withConsole(api http.Handler) (http.Handler, error) {
	ui, err := console.New(console.Config{
		API:      api,
		Identify: s.identify,
		NoAuth:   len(s.access.tokens) == 0,
		Logf:     s.cfg.Logf,
	})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, console.BasePath, http.StatusMovedPermanently)
			return
		}
		if strings.HasPrefix(r.URL.Path, console.BasePath) {
			ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}), nil
}

// identify names the token of secret for the console.
func (s *Server) identify(secret string) (console.Identity, bool) {
	tok := s.access.match(secret)
	if tok == nil {
		return console.Identity{}, false
	}
	return console.Identity{Name: tok.Name, Role: string(tok.Role)}, true
}
