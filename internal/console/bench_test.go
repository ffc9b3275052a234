package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The console's pages with 10,000 decisions in the history, served by the
// stub API in-process: the console's own cost (the in-process call, the
// JSON decoding, the template) plus the stub's filtering and encoding,
// not the real API's lookups, which internal/adminapi benchmarks.
func BenchmarkPages(b *testing.B) {
	api := withDecisions(10_000)
	for i := range api.decisions {
		if i%3 == 0 {
			api.decisions[i].State = "expired"
		}
	}
	c, err := New(Config{API: api, Identify: api.identify})
	if err != nil {
		b.Fatal(err)
	}
	s := c.sessions.add(Identity{Name: "alice", Role: "operator"}, operatorSecret, stubNow)
	c.cfg.Now = func() time.Time { return stubNow }
	for _, bc := range []struct{ name, path string }{
		{"overview", "/ui/"},
		{"decisions", "/ui/decisions"},
		{"decisions_filtered", "/ui/decisions?state=active&client=10.1.2.3&cursor=5000"},
		{"decision", "/ui/decisions/cip-000000001388"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, bc.path, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: s.id})
				rec := httptest.NewRecorder()
				c.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d\n%s", bc.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
