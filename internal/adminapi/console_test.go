package adminapi

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// consoleBrowser is a client of the console mounted on a real Server.
type consoleBrowser struct {
	t   *testing.T
	c   *http.Client
	url string
}

func newConsoleBrowser(t *testing.T, f *fixture) *consoleBrowser {
	srv := httptest.NewServer(f.srv.Handler())
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	return &consoleBrowser{t: t, c: c, url: srv.URL}
}

func (b *consoleBrowser) send(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.url+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.url)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(data)
}

var formCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in with secret and returns the page it lands on.
func (b *consoleBrowser) login(secret string) (int, string) {
	b.t.Helper()
	_, form := b.send("GET", "/ui/login", nil)
	m := formCSRF.FindStringSubmatch(form)
	if m == nil {
		b.t.Fatalf("no login form:\n%s", form)
	}
	return b.send("POST", "/ui/login", url.Values{"csrf": {m[1]}, "token": {secret}, "next": {"/ui/clients"}})
}

// The console is served at /ui/ beside the API, logs in with the API's
// tokens (a wrong one counts against the API's failure limit) and makes
// its changes through the API as the token.
func TestConsoleIsMountedAtUI(t *testing.T) {
	f, _ := newRoleFixture(t, func(c *Config) { c.Limits = Limits{FailBurst: 3, FailRate: 0.001} })
	b := newConsoleBrowser(t, f)
	if status, body := b.send("GET", "/ui", nil); status != http.StatusOK || !strings.Contains(body, "API token") {
		t.Fatalf("GET /ui: %d, want the login form\n%s", status, body)
	}
	if status, _ := b.send("GET", "/v1/clients", nil); status != http.StatusUnauthorized {
		t.Fatalf("the API beside the console answers %d without a token, want 401", status)
	}

	status, body := b.login(readToken)
	if status != http.StatusOK || !strings.Contains(body, "reader · read") || !strings.Contains(body, "10.1.2.3") {
		t.Fatalf("login with the read token: %d\n%s", status, body)
	}
	if strings.Contains(body, "Untag") {
		t.Fatal("a read token sees the untag button")
	}

	b = newConsoleBrowser(t, f)
	status, body = b.login(testToken)
	if status != http.StatusOK || !strings.Contains(body, "token_file · operator") {
		t.Fatalf("login with the operator token: %d\n%s", status, body)
	}
	m := formCSRF.FindStringSubmatch(body)
	status, body = b.send("POST", "/ui/clients/10.1.2.3/untag", url.Values{"csrf": {m[1]}})
	if status != http.StatusOK || !strings.Contains(body, "Client 10.1.2.3 untagged.") {
		t.Fatalf("untag through the console: %d\n%s", status, body)
	}
	if !strings.Contains(f.logs.all(), "client 10.1.2.3 untagged by token_file") {
		t.Fatalf("the API did not log the untag as the token:\n%s", f.logs.all())
	}

	// The GET /v1/clients above was the first failure of 127.0.0.1.
	b = newConsoleBrowser(t, f)
	for range 2 {
		if status, body = b.login("not-a-token-at-all"); status != http.StatusUnauthorized {
			t.Fatalf("a wrong token: %d\n%s", status, body)
		}
	}
	if status, body = b.login(readToken); status != http.StatusTooManyRequests || !strings.Contains(body, "too many requests") {
		t.Fatalf("a login after the failure limit: %d, want the API's 429\n%s", status, body)
	}
}
