package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// serve mounts a Console over api as the admin API does: /ui/ to the
// console, the rest to the API.
func serve(t testing.TB, api *stubAPI, cfg Config, tls bool) *httptest.Server {
	t.Helper()
	cfg.API, cfg.Identify = api, api.identify
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, BasePath) {
			c.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// browser is an HTTP client with cookies that does not follow redirects,
// so that a test sees each answer.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
}

func newBrowser(t testing.TB, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, c: c, base: srv.URL}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form as a page of the console would: same origin.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the first form of a page.
func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := hiddenCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// login logs in with secret and returns the session's CSRF token.
func (b *browser) login(secret string) string {
	b.t.Helper()
	_, form := b.get("/ui/login")
	res, body := b.post("/ui/login", url.Values{"csrf": {csrfOf(b.t, form)}, "token": {secret}, "next": {"/ui/"}})
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: %s\n%s", res.Status, body)
	}
	_, body = b.get("/ui/")
	return csrfOf(b.t, body)
}

func withDecisions(n int) *stubAPI {
	api := newStub()
	for i := range n {
		api.decisions = append(api.decisions, decisionN(i))
	}
	return api
}

func cookieOf(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginAndLogout(t *testing.T) {
	srv := serve(t, withDecisions(3), Config{}, false)
	b := newBrowser(t, srv)

	res, _ := b.get("/ui/decisions?state=active")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login?next=%2Fui%2Fdecisions%3Fstate%3Dactive" {
		t.Fatalf("a page without a session: %s to %q, want the login form coming back to it", res.Status, res.Header.Get("Location"))
	}
	_, form := b.get("/ui/login?next=%2Fui%2Fdecisions%3Fstate%3Dactive")
	csrf := csrfOf(t, form)
	res, body := b.post("/ui/login", url.Values{"csrf": {csrf}, "token": {"wrong-token-0123456789"}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("a wrong token: %s\n%s", res.Status, body)
	}
	csrf = csrfOf(t, body)
	res, _ = b.post("/ui/login", url.Values{"csrf": {csrf}, "token": {readSecret}, "next": {"/ui/decisions?state=active"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/decisions?state=active" {
		t.Fatalf("login: %s to %q, want the page asked for", res.Status, res.Header.Get("Location"))
	}
	ck := cookieOf(res, sessionCookie)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/ui/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, not Secure over plain HTTP", ck)
	}
	if strings.Contains(ck.Value, readSecret) {
		t.Fatal("the session cookie holds the token")
	}
	_, body = b.get("/ui/decisions?state=active")
	if !strings.Contains(body, "dashboard · read") || !strings.Contains(body, "cip-000000000002") {
		t.Fatalf("the decisions page after login does not name the token or show the decisions:\n%s", body)
	}

	res, _ = b.post("/ui/logout", url.Values{"csrf": {csrfOf(t, body)}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("logout: %s to %q", res.Status, res.Header.Get("Location"))
	}
	// The old cookie, replayed, is no session any more.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: ck.Value})
	res, _ = b.do(req)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Fatalf("the logged-out session's cookie still opens the overview: %s", res.Status)
	}
}

func TestSessionCookieIsSecureUnderTLS(t *testing.T) {
	srv := serve(t, withDecisions(1), Config{}, true)
	b := newBrowser(t, srv)
	_, form := b.get("/ui/login")
	res, _ := b.post("/ui/login", url.Values{"csrf": {csrfOf(t, form)}, "token": {readSecret}})
	if ck := cookieOf(res, sessionCookie); ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie over TLS %+v: want Secure, HttpOnly, SameSite=Strict", ck)
	}
}

func TestLoginRefusesEventsTokensAndForeignRedirects(t *testing.T) {
	srv := serve(t, withDecisions(1), Config{}, false)
	b := newBrowser(t, srv)
	_, form := b.get("/ui/login")
	res, body := b.post("/ui/login", url.Values{"csrf": {csrfOf(t, form)}, "token": {eventsSecret}})
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "read or an operator token") {
		t.Fatalf("an events token: %s\n%s", res.Status, body)
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/v1/blocks", "/ui/\\evil"} {
		res, _ = b.post("/ui/login", url.Values{"csrf": {csrfOf(t, body)}, "token": {readSecret}, "next": {next}})
		if loc := res.Header.Get("Location"); loc != "/ui/" {
			t.Errorf("next=%q: login goes to %q, want /ui/", next, loc)
		}
		_, body = b.get("/ui/login")
	}
	// Without the form's own token, no login.
	res, _ = b.post("/ui/login", url.Values{"token": {readSecret}})
	if res.StatusCode != http.StatusForbidden || cookieOf(res, sessionCookie) != nil {
		t.Fatalf("a login without the form's CSRF token: %s", res.Status)
	}
}

func TestFormsNeedTheSessionsCSRFToken(t *testing.T) {
	api := withDecisions(2)
	srv := serve(t, api, Config{}, false)
	b := newBrowser(t, srv)
	csrf := b.login(operatorSecret)
	lift := "/ui/decisions/cip-000000000001/lift"

	for name, form := range map[string]url.Values{
		"no token":    {"reason": {"false positive"}},
		"wrong token": {"reason": {"false positive"}, "csrf": {csrf[:len(csrf)-2] + "xx"}},
	} {
		res, body := b.post(lift, form)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "security token") {
			t.Errorf("%s: %s, want 403\n%s", name, res.Status, body)
		}
	}
	// The right token from another site: refused on its Sec-Fetch-Site.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+lift, strings.NewReader(url.Values{"reason": {"x"}, "csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if res, _ := b.do(req); res.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site form: %s, want 403", res.Status)
	}
	if got := api.changes(); len(got) != 0 {
		t.Fatalf("refused forms reached the API: %+v", got)
	}

	res, _ := b.post(lift, url.Values{"reason": {"false positive, SIEM-42"}, "csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/decisions/cip-000000000001" {
		t.Fatalf("lift: %s to %q", res.Status, res.Header.Get("Location"))
	}
	want := stubCall{Method: "DELETE", Path: "/v1/decisions/cip-000000000001", Reason: "false positive, SIEM-42", Token: "alice"}
	if got := api.changes(); len(got) != 1 || got[0].Method != want.Method || got[0].Path != want.Path || got[0].Reason != want.Reason || got[0].Token != want.Token {
		t.Fatalf("the API got %+v, want %+v", got, want)
	}
	_, body := b.get("/ui/decisions/cip-000000000001")
	if !strings.Contains(body, "Decision cip-000000000001 lifted.") || !strings.Contains(body, `id="state">lifted<`) ||
		!strings.Contains(body, "by alice: false positive, SIEM-42") {
		t.Fatalf("the decision page after the lift:\n%s", body)
	}
}

func TestLiftNeedsAReason(t *testing.T) {
	api := withDecisions(1)
	b := newBrowser(t, serve(t, api, Config{}, false))
	csrf := b.login(operatorSecret)
	b.post("/ui/decisions/cip-000000000000/lift", url.Values{"reason": {"  "}, "csrf": {csrf}})
	if got := api.changes(); len(got) != 0 {
		t.Fatalf("a lift without a reason reached the API: %+v", got)
	}
	_, body := b.get("/ui/decisions/cip-000000000000")
	if !strings.Contains(body, "A reason is required") {
		t.Fatalf("no message for the missing reason:\n%s", body)
	}
}

func TestAllowlistAndUntag(t *testing.T) {
	api := withDecisions(1)
	api.clients = []Client{{Client: "10.1.2.3", Since: stubNow, Until: stubNow.Add(30 * time.Minute), Event: "ev-1", Ref: "SIEM-1"}}
	b := newBrowser(t, serve(t, api, Config{}, false))
	csrf := b.login(operatorSecret)

	_, body := b.get("/ui/decisions/cip-000000000000")
	for _, want := range []string{`<option value="45.83.0.1">`, `<option value="bad0.example">`, `<option value="168h">7 days</option>`} {
		if !strings.Contains(body, want) {
			t.Fatalf("the allowlist form lacks %s:\n%s", want, body)
		}
	}
	res, _ := b.post("/ui/allow", url.Values{"csrf": {csrf}, "value": {"bad0.example"}, "reason": {"our CDN"},
		"until": {"168h"}, "back": {"/ui/decisions/cip-000000000000"}})
	if res.Header.Get("Location") != "/ui/decisions/cip-000000000000" {
		t.Fatalf("allow: %s to %q", res.Status, res.Header.Get("Location"))
	}
	got := api.changes()
	if len(got) != 1 || got[0].Body["value"] != "bad0.example" || got[0].Body["reason"] != "our CDN" || got[0].Body["until"] != "168h" || got[0].Token != "alice" {
		t.Fatalf("the API got %+v", got)
	}
	_, body = b.get("/ui/decisions/cip-000000000000")
	if !strings.Contains(body, "bad0.example allowlisted; 1 block(s) lifted.") {
		t.Fatalf("no message after the allowlist:\n%s", body)
	}

	_, body = b.get("/ui/clients")
	if !strings.Contains(body, "2026-12-07 12:30:00Z") || !strings.Contains(body, "SIEM-1") {
		t.Fatalf("the clients page does not show the tag's end and ref:\n%s", body)
	}
	res, _ = b.post("/ui/clients/10.1.2.3/untag", url.Values{"csrf": {csrf}})
	if res.Header.Get("Location") != "/ui/clients" {
		t.Fatalf("untag: %s to %q", res.Status, res.Header.Get("Location"))
	}
	_, body = b.get("/ui/clients")
	if !strings.Contains(body, "Client 10.1.2.3 untagged.") || !strings.Contains(body, "No client is tagged") {
		t.Fatalf("the clients page after the untag:\n%s", body)
	}
}

func TestReadRoleSeesNoActions(t *testing.T) {
	api := withDecisions(1)
	api.clients = []Client{{Client: "10.1.2.3", Until: stubNow.Add(time.Hour), Event: "ev-1"}}
	b := newBrowser(t, serve(t, api, Config{}, false))
	csrf := b.login(readSecret)

	_, body := b.get("/ui/decisions/cip-000000000000")
	if strings.Contains(body, "lift-form") || strings.Contains(body, "allow-form") {
		t.Fatalf("a read token sees the lift or allowlist form:\n%s", body)
	}
	if _, body = b.get("/ui/clients"); strings.Contains(body, "Untag") {
		t.Fatalf("a read token sees the untag button:\n%s", body)
	}
	// A form sent anyway is the API's to refuse, and its 403 is shown.
	b.post("/ui/decisions/cip-000000000000/lift", url.Values{"reason": {"x"}, "csrf": {csrf}})
	_, body = b.get("/ui/decisions/cip-000000000000")
	if !strings.Contains(body, "has role read") || !strings.Contains(body, `id="state">active<`) {
		t.Fatalf("a read token's lift: the API's refusal is not shown, or the decision changed:\n%s", body)
	}
}

// xss are payloads a name, a reason or a ref from the internet may hold.
var xss = []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `javascript:alert(3)`}

func TestPagesEscapeWhatTheyShow(t *testing.T) {
	api := withDecisions(1)
	d := &api.decisions[0]
	d.Qnames = []string{xss[0] + ".evil.example.", "\u202eelpmaxe.live"}
	d.Reasons = []string{xss[1]}
	d.Timeline = append(d.Timeline, TimeRecord{At: stubNow, Kind: `"><b>`, Detail: xss[0]})
	d.Events = []string{xss[2]}
	api.events = []EventSummary{{ID: "ev-1", Client: "10.1.2.3", Type: "edr.malware", Ref: xss[0], At: stubNow}}
	detail, _ := json.Marshal(map[string]any{"id": "ev-1", "event": map[string]any{"client": "10.1.2.3", "type": "edr.malware", "ref": xss[1],
		"severity": xss[1], "labels": map[string]string{xss[0]: xss[1], "host": "ws-042"}},
		"found": []map[string]any{{"ip": "45.83.0.1", "names": []string{xss[0]}, "verdict": map[string]any{"outcome": "suspicious", "reasons": []any{map[string]string{"factor": "score", "detail": xss[1]}}}}}})
	api.details["ev-1"] = detail
	b := newBrowser(t, serve(t, api, Config{}, false))
	b.login(operatorSecret)

	for _, path := range []string{"/ui/", "/ui/decisions", "/ui/decisions/cip-000000000000", "/ui/events", "/ui/events/ev-1"} {
		_, body := b.get(path)
		for _, bad := range []string{"<script>", "<img", `href="javascript:`, "\u202e", `"><b>`} {
			if strings.Contains(body, bad) {
				t.Errorf("%s shows %q unescaped", path, bad)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;") && !strings.Contains(body, "&lt;img") {
			t.Errorf("%s does not show the payload as text", path)
		}
	}
	if _, body := b.get("/ui/events/ev-1"); !strings.Contains(body, "host: ws-042") {
		t.Error("the event page does not show the event's labels")
	}
	_, body := b.get("/ui/decisions/cip-000000000000")
	if !strings.Contains(body, `\u202eelpmaxe.live`) {
		t.Errorf("a bidirectional override in a name is not shown as its escape")
	}
}

func TestDecisionsPages(t *testing.T) {
	api := withDecisions(250)
	api.decisions[5].State = "expired"
	b := newBrowser(t, serve(t, api, Config{}, false))
	b.login(readSecret)

	_, body := b.get("/ui/decisions?state=active")
	rows := strings.Count(body, `<a href="/ui/decisions/cip-`)
	next := regexp.MustCompile(`href="([^"]+)" id="next"`).FindStringSubmatch(body)
	if rows != 100 || next == nil || strings.Contains(body, `id="first"`) {
		t.Fatalf("first page: %d rows, next link %v, want 100 rows, a next link and no first link", rows, next)
	}
	link := strings.ReplaceAll(next[1], "&amp;", "&")
	if link != "/ui/decisions?cursor=100&state=active" {
		t.Fatalf("next link %q keeps neither the filter nor the cursor", link)
	}
	_, body = b.get(link)
	if !strings.Contains(body, ">cip-0000000000c8<") || strings.Contains(body, ">cip-000000000064<") || !strings.Contains(body, `id="first"`) {
		t.Fatalf("second page: wrong rows or no link to the first page")
	}
	_, body = b.get("/ui/decisions?state=active&cursor=200")
	if rows := strings.Count(body, `<a href="/ui/decisions/cip-`); rows != 49 || strings.Contains(body, `id="next"`) {
		t.Fatalf("last page: %d rows (want 49), next link shown: %v", rows, strings.Contains(body, `id="next"`))
	}

	res, body := b.get("/ui/decisions?state=bogus")
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "state: must be active, expired or lifted") ||
		!strings.Contains(body, `class="filters"`) {
		t.Fatalf("a bad filter: %s, want 400 with the API's message and the filters\n%s", res.Status, body)
	}
	if res, _ := b.get("/ui/decisions/cip-nope"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown decision: %s, want 404", res.Status)
	}
}

func TestOverview(t *testing.T) {
	api := withDecisions(4)
	api.decisions[1].Scope = "tagged"
	api.decisions[2].Monitor = true
	api.decisions[3].State = "lifted"
	api.decisions[0].Hooks = append(api.decisions[0].Hooks, Delivery{Hook: "webhook", State: "failed", Attempts: 7, Error: "503 from soar"})
	api.clients = []Client{{Client: "10.1.2.3"}, {Client: "10.1.2.4"}}
	for i := range 3 {
		api.events = append(api.events, EventSummary{ID: fmt.Sprintf("ev-%d", i)})
	}
	b := newBrowser(t, serve(t, api, Config{}, false))
	b.login(readSecret)
	_, body := b.get("/ui/")
	for _, want := range []string{`id="active">3<`, `id="everyone">1<`, `id="tagged">1<`, `id="monitor">1<`, `id="clients">2<`,
		`id="events24h">3<`, `id="health">ok<`, "503 from soar", "cip-000000000003", "no <code>GET /v1/status</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// With GET /v1/status the overview shows its exact counts, the API's
// health with its quota errors and each hook's pending changes and
// failure, without paging through the lists.
func TestOverviewStatus(t *testing.T) {
	api := withDecisions(2)
	api.status = map[string]any{
		"api": map[string]any{"state": "quota", "last_error": "criminal ip: rate limited or quota exhausted (http 429)",
			"last_error_at": "2026-12-07T11:58:00Z", "calls_24h": 1234, "errors_24h": 40, "quota_errors_24h": 37},
		"hooks": []map[string]any{
			{"hook": "nftables", "pending": 0, "failing": false, "last_error": "", "last_error_at": nil},
			{"hook": "webhook:soar.example", "pending": 17, "failing": true, "last_error": "503 from soar\u202e", "last_error_at": "2026-12-07T11:59:00Z"},
		},
		"decisions":      map[string]any{"active": 2500, "active_everyone": 2000, "active_tagged": 480, "active_monitor": 20},
		"tagged_clients": 12, "events_24h": 3400,
		"state": map[string]any{"configured": true, "writable": false, "error": "state: commit: no space left on device"},
		"fleet": map[string]any{"configured": true, "up": true},
		"budget": map[string]any{"limit": 20, "period": "day", "spent": 20, "remaining": 0, "exhausted": true,
			"resets_at": "2026-12-08T00:00:00Z"},
	}
	b := newBrowser(t, serve(t, api, Config{}, false))
	b.login(readSecret)
	_, body := b.get("/ui/")
	for _, want := range []string{`<span class="bad">exhausted</span>: 20 of 20 calls per day spent`, "resets at 2026-12-08 00:00:00Z",
		`id="active">2500<`, `id="everyone">2000<`, `id="tagged">480<`, `id="monitor">20<`,
		`id="clients">12<`, `id="events24h">3400<`, "out of quota or rate limited", `id="api-quota">37 quota errors<`,
		"1234 calls, 40 errors", "2026-12-07 11:58:00Z", "webhook:soar.example", ">17<", ">failing<",
		`503 from soar\u202e`, "no space left on device", "Redis reachable", "cip-000000000001"} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %s", want)
		}
	}
	if strings.Contains(body, "+<") || strings.Contains(body, "not reported by this admin API") {
		t.Errorf("exact counts shown as at-least counts, or the status said absent")
	}
	api.status["budget"] = nil
	if _, body := b.get("/ui/"); strings.Contains(body, `id="budget"`) {
		t.Errorf("the overview shows a budget where none is set")
	}
	if strings.Contains(body, "\u202e") {
		t.Errorf("a hook's error reached the page with its bidirectional override")
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestSessionsEnd(t *testing.T) {
	api := withDecisions(1)
	clock := testclock.New(stubNow)
	b := newBrowser(t, serve(t, api, Config{Now: clock.Now, Idle: time.Hour, Lifetime: 3 * time.Hour}, false))
	b.login(readSecret)
	for range 3 {
		clock.Advance(50 * time.Minute)
		if res, _ := b.get("/ui/"); res.StatusCode != http.StatusOK {
			t.Fatalf("a session used within its idle time ended: %s", res.Status)
		}
	}
	clock.Advance(40 * time.Minute) // 3h30m after the login
	if res, _ := b.get("/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a session past its lifetime: %s, want the login form", res.Status)
	}
	b.login(readSecret)
	clock.Advance(61 * time.Minute)
	if res, _ := b.get("/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("an idle session: %s, want the login form", res.Status)
	}

	// A token taken out of the tokens file ends the session at its next page.
	b.login(readSecret)
	api.mu.Lock()
	delete(api.tokens, readSecret)
	api.mu.Unlock()
	if res, _ := b.get("/ui/decisions"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Fatalf("a revoked token's session: %s, want the login form", res.Status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	b := newBrowser(t, serve(t, withDecisions(1), Config{}, false))
	res, _ := b.get("/ui/login")
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q: want no scripts and no framing", csp)
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", res.Header)
	}
	if res, body := b.get("/ui/static/style.css"); res.StatusCode != http.StatusOK || !strings.Contains(body, ".timeline") {
		t.Errorf("style sheet: %s", res.Status)
	}
}

func TestWithoutTokensOnlyLoopbackNames(t *testing.T) {
	api := withDecisions(1)
	srv := serve(t, api, Config{NoAuth: true}, false)
	b := newBrowser(t, srv)
	_, form := b.get("/ui/login")
	if strings.Contains(form, `name="token"`) {
		t.Fatal("without tokens the login form asks for one")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/login", nil)
	req.Host = "rebound.example:8053"
	if res, _ := b.do(req); res.StatusCode != http.StatusForbidden {
		t.Fatalf("a page asked for by another name without tokens: %s, want 403", res.Status)
	}
}
