package adminapi

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// The tokens of the role tests besides testToken, which is the operator
// token of Config.Token (named token_file).
const (
	readToken   = "r3ad-token-for-tests"
	eventsToken = "ev3nts-token-for-tests"
	edrToken    = "edr-token-for-tests"
)

func roleTokens() []Token {
	return []Token{
		NewToken("reader", RoleRead, readToken),
		NewToken("siem", RoleEvents, eventsToken),
		NewToken("edr", RoleEvents, edrToken),
	}
}

// roleBackend has every part of a Backend: events, blocks, connections.
type roleBackend struct{ *blockBackend }

func (roleBackend) Connections(recs []Connection) int { return len(recs) }

func newRoleFixture(t *testing.T, edit func(*Config)) (*fixture, *blockBackend) {
	t.Helper()
	bb := &blockBackend{fakeBackend: newFakeBackend(), blocked: map[netip.Addr]bool{netip.MustParseAddr("45.83.0.21"): true}}
	bb.verdicts[netip.MustParseAddr("45.83.0.21")] = verdicts.Verdict{Outcome: verdicts.Suspicious}
	bb.tagged[netip.MustParseAddr("10.1.2.3")] = testNow.Add(time.Hour)
	f := newFixture(t, func(c *Config) {
		c.Backend, c.Tokens = roleBackend{bb}, roleTokens()
		if edit != nil {
			edit(c)
		}
	})
	return f, bb
}

// Each role may use its routes and gets 403 on the others, before the
// Backend is touched.
func TestRolesByRoute(t *testing.T) {
	const (
		ok     = 0 // the route's own success status, given in want
		denied = http.StatusForbidden
	)
	tests := []struct {
		method, path, body string
		success            int
		events, read, op   int // ok or denied
	}{
		{"POST", "/v1/events", `{"client":"10.9.9.9","type":"edr.malware"}`, 202, ok, denied, ok},
		{"POST", "/v1/connections", `[{"src":"10.9.9.9","dst":"45.83.0.21"}]`, 200, ok, denied, ok},
		{"GET", "/v1/clients", "", 200, denied, ok, ok},
		{"GET", "/v1/verdicts/45.83.0.21", "", 200, denied, ok, ok},
		{"GET", "/v1/blocks", "", 200, denied, ok, ok},
		{"GET", "/v1/allow", "", 200, denied, ok, ok},
		{"GET", "/v1/blocklist.txt", "", 200, denied, ok, ok},
		{"HEAD", "/v1/blocks", "", 200, denied, ok, ok},
		{"DELETE", "/v1/blocks/45.83.0.21", "", 200, denied, denied, ok},
		{"POST", "/v1/allow", `{"value":"45.83.0.99"}`, 201, denied, denied, ok},
		{"DELETE", "/v1/allow/10.0.0.0/8", "", 200, denied, denied, ok},
		{"DELETE", "/v1/clients/10.1.2.3", "", 200, denied, denied, ok},
		{"GET", "/healthz", "", 200, ok, ok, ok},
	}
	for _, tc := range tests {
		for _, as := range []struct {
			role  Role
			token string
			want  int
		}{{RoleEvents, eventsToken, tc.events}, {RoleRead, readToken, tc.read}, {RoleOperator, testToken, tc.op}} {
			t.Run(string(as.role)+" "+tc.method+" "+tc.path, func(t *testing.T) {
				f, bb := newRoleFixture(t, nil)
				rec := f.do(tc.method, tc.path, tc.body, "Authorization", "Bearer "+as.token)
				want := as.want
				if want == ok {
					want = tc.success
				}
				wantStatus(t, rec, want)
				if want != denied {
					return
				}
				if e := decodeBody[errorBody](t, rec); !strings.Contains(e.Error, "role "+string(as.role)) {
					t.Errorf("403 %q does not say the token's role", e.Error)
				}
				if len(f.backend.submissions()) != 0 || len(bb.unblocked) != 0 || len(bb.allowed) != 0 || len(bb.Clients()) != 1 {
					t.Errorf("a refused request reached the Backend")
				}
			})
		}
	}
}

// An events token reads back the events it posted, and no other.
func TestEventsTokenReadsItsOwnEvents(t *testing.T) {
	f, _ := newRoleFixture(t, nil)
	post := func(token string) string {
		rec := f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"x"}`, "Authorization", "Bearer "+token)
		wantStatus(t, rec, 202)
		return rec.Header().Get("Location")
	}
	siems := post(eventsToken)
	rec := f.do("GET", siems, "", "Authorization", "Bearer "+eventsToken)
	wantStatus(t, rec, 200)
	if by := decodeBody[struct{ By string }](t, rec).By; by != "siem" {
		t.Errorf("the event's by = %q, want siem", by)
	}
	wantStatus(t, f.do("GET", siems, "", "Authorization", "Bearer "+edrToken), http.StatusForbidden)
	wantStatus(t, f.do("GET", siems, "", "Authorization", "Bearer "+readToken), 200)
	wantStatus(t, f.do("GET", post(testToken), "", "Authorization", "Bearer "+eventsToken), http.StatusForbidden)
	wantStatus(t, f.do("GET", "/v1/events/ev-nosuchevent", "", "Authorization", "Bearer "+eventsToken), http.StatusForbidden)
	if logs := f.logs.all(); !strings.Contains(logs, "by siem") || !strings.Contains(logs, "by token_file") {
		t.Errorf("the event log lines do not say which token posted: %s", logs)
	}
}

// The EDL takes a read token as ?token=; an operator's or an events token
// there is refused, once logged, and shown nowhere.
func TestEDLQueryTokenIsReadOnly(t *testing.T) {
	f, _ := newRoleFixture(t, nil)
	wantStatus(t, f.do("GET", "/v1/blocklist.txt?token="+readToken, "", "Authorization", ""), 200)
	for _, tok := range []string{testToken, eventsToken} {
		for range 3 {
			rec := f.do("GET", "/v1/blocklist.txt?token="+tok, "", "Authorization", "")
			wantStatus(t, rec, http.StatusForbidden)
			if e := decodeBody[errorBody](t, rec); !strings.Contains(e.Error, "takes a read token") || e.Field != "token" || strings.Contains(e.Error, tok) {
				t.Errorf("403 %+v, want one that says a read token is needed and hides the token", e)
			}
		}
	}
	// Basic auth (the firewalls' username and password): the token is the
	// password, whatever the username; on the EDL only.
	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	wantStatus(t, f.do("GET", "/v1/blocklist.txt", "", "Authorization", basic("paloalto", readToken)), 200)
	wantStatus(t, f.do("GET", "/v1/blocklist.txt", "", "Authorization", basic("", readToken)), 200)
	wantStatus(t, f.do("GET", "/v1/blocklist.txt", "", "Authorization", basic("fortigate", "wrong")), http.StatusUnauthorized)
	wantStatus(t, f.do("GET", "/v1/blocks", "", "Authorization", basic("x", readToken)), http.StatusUnauthorized)
	// The operator token still reads the EDL with a header.
	wantStatus(t, f.do("GET", "/v1/blocklist.txt", ""), 200)
	logs := f.logs.all()
	if n := strings.Count(logs, `"token_file" as ?token= and refused`); n != 1 {
		t.Errorf("%d log lines for the operator token in the EDL URL, want 1: %s", n, logs)
	}
	if strings.Contains(logs, testToken) || strings.Contains(logs, eventsToken) {
		t.Errorf("the log shows a token: %s", logs)
	}
}

// Past its rate a token gets 429 with Retry-After, the others do not, and
// it is heard again once its bucket refills.
func TestTokenRateLimit(t *testing.T) {
	clock := testclock.New(testNow)
	f, _ := newRoleFixture(t, func(c *Config) {
		c.Limits = Limits{TokenRate: 0.5, TokenBurst: 2, Clock: clock.Now}
		slow := NewToken("slow", RoleRead, "slow-token-for-tests")
		slow.Rate = 0.1
		c.Tokens = append(c.Tokens, slow)
	})
	get := func(token string) *httptest.ResponseRecorder {
		return f.do("GET", "/v1/clients", "", "Authorization", "Bearer "+token)
	}
	wantStatus(t, get(readToken), 200)
	wantStatus(t, get(readToken), 200)
	rec := get(readToken)
	wantStatus(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (one request every 2s)", ra)
	}
	if e := decodeBody[errorBody](t, rec); !strings.Contains(e.Error, `"reader"`) || strings.Contains(e.Error, readToken) {
		t.Errorf("429 %q, want one naming the token, not showing it", e.Error)
	}
	wantStatus(t, get(testToken), 200) // another token
	clock.Advance(2 * time.Second)
	wantStatus(t, get(readToken), 200)
	wantStatus(t, get(readToken), http.StatusTooManyRequests)

	// A token's own rate (rate=0.1 in the tokens file): burst 1.
	wantStatus(t, get("slow-token-for-tests"), 200)
	if rec := get("slow-token-for-tests"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "10" {
		t.Errorf("the slow token's second request: %d, Retry-After %q; want 429 and 10", rec.Code, rec.Header().Get("Retry-After"))
	}
	if n := strings.Count(f.logs.all(), `token "reader" is over its rate limit`); n != 1 {
		t.Errorf("%d log lines for reader's rate limit within a minute, want 1", n)
	}
}

// Requests with a wrong or missing token are limited per source address
// (IPv6: per /64): past the burst even the right token gets 429 from
// there, other sources are not affected.
func TestFailedAuthLimitPerSource(t *testing.T) {
	clock := testclock.New(testNow)
	f, _ := newRoleFixture(t, func(c *Config) {
		c.Limits = Limits{FailRate: 0.25, FailBurst: 3, Clock: clock.Now}
	})
	from := func(addr, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/clients", nil)
		req.RemoteAddr = addr
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	const attacker, other = "198.51.100.7:4000", "198.51.100.8:4000"
	wantStatus(t, from(attacker, "guess-1"), 401)
	wantStatus(t, from(attacker, ""), 401)
	wantStatus(t, from(attacker, "guess-2"), 401)
	rec := from(attacker, testToken)
	wantStatus(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra != "4" {
		t.Errorf("Retry-After = %q, want 4", ra)
	}
	wantStatus(t, from(other, testToken), 200)
	clock.Advance(4 * time.Second)
	wantStatus(t, from(attacker, testToken), 200)
	wantStatus(t, from(attacker, "guess-3"), 401)
	wantStatus(t, from(attacker, "guess-4"), http.StatusTooManyRequests)

	// One IPv6 /64 is one source.
	for range 3 {
		wantStatus(t, from("[2001:db8:1:2::a]:4000", "guess"), 401)
	}
	wantStatus(t, from("[2001:db8:1:2::b]:4000", testToken), http.StatusTooManyRequests)
	wantStatus(t, from("[2001:db8:1:3::a]:4000", testToken), 200)
	// Good requests do not count.
	for range 10 {
		wantStatus(t, from("192.0.2.50:1", readToken), 200)
	}
}

// An operator names whom it acts for; the audit actor is the token's name
// either way, and what it names is checked.
func TestOnBehalfOf(t *testing.T) {
	f, bb := newRoleFixture(t, nil)
	for _, tc := range []struct {
		query, header, want string
	}{
		{"on_behalf_of=alice", "", "token_file (on behalf of alice)"},
		{"actor=alice", "", "token_file (on behalf of alice)"},
		{"", "bob", "token_file (on behalf of bob)"},
		{"", "", "token_file"},
	} {
		bb.blocked[netip.MustParseAddr("45.83.0.21")] = true
		wantStatus(t, f.do("DELETE", "/v1/blocks/45.83.0.21?"+tc.query, "", "X-On-Behalf-Of", tc.header), 200)
		if got := bb.unblocked[len(bb.unblocked)-1]; got != "45.83.0.21 "+tc.want+" " {
			t.Errorf("?%s, X-On-Behalf-Of %q: unblock by %q, want %q", tc.query, tc.header, got, tc.want)
		}
	}
	wantStatus(t, f.do("DELETE", "/v1/clients/10.1.2.3?on_behalf_of=dave", ""), 200)
	if !strings.Contains(f.logs.all(), "client 10.1.2.3 untagged by token_file (on behalf of dave)") {
		t.Errorf("the untag's log line does not name the actor: %s", f.logs.all())
	}
	wantStatus(t, f.do("POST", "/v1/allow", `{"value":"45.83.0.40","on_behalf_of":"carol"}`), 201)
	if got := bb.allowed[len(bb.allowed)-1].Actor; got != "token_file (on behalf of carol)" {
		t.Errorf("allow by %q", got)
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"DELETE", "/v1/blocks/45.83.0.21?on_behalf_of=eve)+(on+behalf+of+mallory", "", "on_behalf_of"},
		{"DELETE", "/v1/blocks/45.83.0.21?actor=" + strings.Repeat("a", MaxRefLength+1), "", "actor"},
		{"POST", "/v1/allow", `{"value":"45.83.0.41","on_behalf_of":"x (y)"}`, "on_behalf_of"},
		{"POST", "/v1/allow", `{"value":"45.83.0.41","on_behalf_of":7}`, "on_behalf_of"},
	} {
		rec := f.do(tc.method, tc.path, tc.body)
		if rec.Code != 400 || decodeBody[errorBody](t, rec).Field != tc.field {
			t.Errorf("%s %s %s: %d %s, want 400 naming %s", tc.method, tc.path, tc.body, rec.Code, rec.Body, tc.field)
		}
	}
}

// Without authentication (a loopback API without tokens) the caller's
// word is all there is.
func TestActorWithoutTokens(t *testing.T) {
	f, bb := newRoleFixture(t, func(c *Config) { c.Token, c.Tokens = "", nil })
	wantStatus(t, f.do("DELETE", "/v1/blocks/45.83.0.21?actor=alice", "", "Authorization", ""), 200)
	bb.blocked[netip.MustParseAddr("45.83.0.21")] = true
	wantStatus(t, f.do("DELETE", "/v1/blocks/45.83.0.21", "", "Authorization", ""), 200)
	if !slices.Equal(bb.unblocked, []string{"45.83.0.21 alice ", "45.83.0.21 api@192.0.2.1 "}) {
		t.Errorf("unblocked %q", bb.unblocked)
	}
	// Nothing is rate limited either.
	for range DefaultTokenBurst + 10 {
		wantStatus(t, f.do("GET", "/v1/clients", "", "Authorization", ""), 200)
	}
}

func TestNewServerChecksTokens(t *testing.T) {
	backend := newFakeBackend()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"tokens on all interfaces", Config{Addr: ":8053", Backend: backend, Tokens: roleTokens()}, ""},
		{"two tokens of one name", Config{Addr: ":8053", Backend: backend, Tokens: []Token{NewToken("a", RoleRead, "x"), NewToken("a", RoleEvents, "y")}}, `two tokens are named "a"`},
		{"one token twice", Config{Addr: ":8053", Backend: backend, Tokens: []Token{NewToken("a", RoleRead, "x"), NewToken("b", RoleEvents, "x")}}, `"a" and "b" are the same token`},
		{"token_file's token in Tokens", Config{Addr: ":8053", Backend: backend, Token: "x", Tokens: []Token{NewToken("a", RoleRead, "x")}}, `token_file holds the token of "a"`},
		{"a token named token_file", Config{Addr: ":8053", Backend: backend, Token: "x", Tokens: []Token{NewToken("token_file", RoleRead, "y")}}, `names a token "token_file"`},
		{"bad role", Config{Addr: ":8053", Backend: backend, Tokens: []Token{NewToken("a", "admin", "x")}}, `role "admin"`},
		{"bad name", Config{Addr: ":8053", Backend: backend, Tokens: []Token{NewToken("a b", RoleRead, "x")}}, `may hold only letters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.cfg)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("NewServer: %v, want %q", err, tc.err)
			}
		})
	}
}
