package adminapi

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
)

// blockBackend is a fakeBackend with blocks.
type blockBackend struct {
	*fakeBackend
	mu        sync.Mutex
	blocked   map[netip.Addr]bool
	unblocked []string // "ip actor why"
	allowed   []AllowRequest
}

func (b *blockBackend) Blocks() []BlockView {
	b.mu.Lock()
	defer b.mu.Unlock()
	views := []BlockView{}
	for ip := range b.blocked {
		views = append(views, BlockView{Block: blocks.Block{IP: ip}})
	}
	slices.SortFunc(views, func(a, b BlockView) int { return a.IP.Compare(b.IP) })
	return views
}

func (b *blockBackend) Unblock(ip netip.Addr, actor, why string) (Unblocked, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.blocked[ip] {
		return Unblocked{}, false
	}
	delete(b.blocked, ip)
	b.unblocked = append(b.unblocked, ip.String()+" "+actor+" "+why)
	return Unblocked{Block: blocks.Block{IP: ip}, Unblocked: true, Actor: actor, Why: why}, true
}

func (b *blockBackend) Allow(req AllowRequest) (Allowed, error) {
	a, err := blocks.ParseAllow(req.Value)
	if err != nil {
		return Allowed{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, req)
	a.Until, a.Reason, a.Actor = req.Until, req.Reason, req.Actor
	return Allowed{Allow: a, Lifted: []netip.Addr{}}, nil
}

func (b *blockBackend) Allowlist() []blocks.Allow {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []blocks.Allow{}
	for _, req := range b.allowed {
		out = append(out, blocks.Allow{Value: req.Value, Until: req.Until, Reason: req.Reason, Actor: req.Actor})
	}
	return out
}

func (b *blockBackend) RemoveAllow(v, _ string) bool { return v == "10.0.0.0/8" }

func (b *blockBackend) Blocklist() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ips []netip.Addr
	for ip := range b.blocked {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}

func newBlockFixture(t *testing.T) (*fixture, *blockBackend) {
	bb := &blockBackend{fakeBackend: newFakeBackend(), blocked: map[netip.Addr]bool{
		netip.MustParseAddr("45.83.0.21"): true, netip.MustParseAddr("2a0c::1"): true,
	}}
	f := newFixture(t, func(c *Config) { c.Backend, c.Tokens = bb, roleTokens() })
	return f, bb
}

func TestBlockRoutes(t *testing.T) {
	f, bb := newBlockFixture(t)

	rec := f.do("GET", "/v1/blocks", "")
	wantStatus(t, rec, 200)
	if got := decodeBody[[]map[string]any](t, rec); len(got) != 2 || got[0]["ip"] != "45.83.0.21" {
		t.Errorf("blocks %v", got)
	}

	rec = f.do("GET", "/v1/blocklist.txt", "")
	wantStatus(t, rec, 200)
	if rec.Body.String() != "45.83.0.21\n2a0c::1\n" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("EDL %q (%s)", rec.Body, rec.Header().Get("Content-Type"))
	}
	// Firewalls poll with a read token as ?token= instead of a header; a
	// wrong one is refused, and so is an operator's (testToken).
	if rec := f.do("GET", "/v1/blocklist.txt?token="+readToken, "", "Authorization", ""); rec.Code != 200 {
		t.Errorf("EDL with a read ?token=: %d", rec.Code)
	}
	if rec := f.do("GET", "/v1/blocklist.txt?token="+testToken, "", "Authorization", ""); rec.Code != 403 {
		t.Errorf("EDL with an operator ?token=: %d", rec.Code)
	}
	if rec := f.do("GET", "/v1/blocklist.txt?token=wrong", "", "Authorization", ""); rec.Code != 401 {
		t.Errorf("EDL with a wrong ?token=: %d", rec.Code)
	}
	if rec := f.do("GET", "/v1/blocks?token="+readToken, "", "Authorization", ""); rec.Code != 401 {
		t.Errorf("?token= accepted outside the EDL: %d", rec.Code)
	}

	rec = f.do("DELETE", "/v1/blocks/45.83.0.21?actor=alice&reason=false+positive", "")
	wantStatus(t, rec, 200)
	if len(bb.unblocked) != 1 || bb.unblocked[0] != "45.83.0.21 token_file (on behalf of alice) false positive" {
		t.Errorf("unblock recorded %v", bb.unblocked)
	}
	wantStatus(t, f.do("DELETE", "/v1/blocks/45.83.0.21", ""), 404)
	if rec := f.do("DELETE", "/v1/blocks/not-an-ip", ""); rec.Code != 400 || decodeBody[errorBody](t, rec).Field != "ip" {
		t.Errorf("bad ip: %d %s", rec.Code, rec.Body)
	}
	// Without ?actor=, the X-Actor header names whom the operator acts for;
	// with neither the actor is the token's name.
	f.do("POST", "/v1/allow", `{"value":"45.83.0.22"}`, "X-Actor", "bob")
	bb.blocked[netip.MustParseAddr("45.83.0.30")] = true
	f.do("DELETE", "/v1/blocks/45.83.0.30", "")
	if last := bb.unblocked[len(bb.unblocked)-1]; last != "45.83.0.30 token_file " {
		t.Errorf("default actor: %q", last)
	}
	if bb.allowed[0].Actor != "token_file (on behalf of bob)" {
		t.Errorf("X-Actor: %+v", bb.allowed[0])
	}
}

func TestAllowRoute(t *testing.T) {
	f, bb := newBlockFixture(t)
	rec := f.do("POST", "/v1/allow", `{"value":"45.83.0.21","until":"24h","reason":"vendor CDN","actor":"carol"}`)
	wantStatus(t, rec, 201)
	got := bb.allowed[0]
	if got.Value != "45.83.0.21" || !got.Until.Equal(testNow.Add(24*time.Hour)) || got.Reason != "vendor CDN" || got.Actor != "token_file (on behalf of carol)" {
		t.Errorf("allow request %+v", got)
	}
	rec = f.do("POST", "/v1/allow", `{"value":"example.com","until":"`+testNow.Add(time.Hour).Format(time.RFC3339)+`"}`)
	wantStatus(t, rec, 201)
	if !bb.allowed[1].Until.Equal(testNow.Add(time.Hour)) {
		t.Errorf("RFC 3339 until: %+v", bb.allowed[1])
	}
	rec = f.do("POST", "/v1/allow", `{"value":"cdn.example","until":"30d"}`) // days, as the CLI and the Corefile count
	wantStatus(t, rec, 201)
	if !bb.allowed[2].Until.Equal(testNow.Add(30 * 24 * time.Hour)) {
		t.Errorf("until 30d: %+v", bb.allowed[2])
	}

	for _, tc := range []struct{ body, field string }{
		{`{}`, "value"},
		{`{"value":""}`, "value"},
		{`{"value":42}`, "value"},
		{`{"value":"bad value"}`, "value"},
		{`{"value":"x.example","until":"soon"}`, "until"},
		{`{"value":"x.example","until":"-1h"}`, "until"},
		{`{"value":"x.example","until":"2000-01-01T00:00:00Z"}`, "until"},
		{`{"value":"x.example","color":"red"}`, "color"},
		{`{"value":"x.example","reason":"` + strings.Repeat("r", 600) + `"}`, "reason"},
	} {
		rec := f.do("POST", "/v1/allow", tc.body)
		if rec.Code != 400 || decodeBody[errorBody](t, rec).Field != tc.field {
			t.Errorf("POST %s: %d %s, want 400 naming %q", tc.body, rec.Code, rec.Body, tc.field)
		}
	}
	wantStatus(t, f.do("GET", "/v1/allow", ""), 200)
	wantStatus(t, f.do("DELETE", "/v1/allow/10.0.0.0/8", ""), 200)
	wantStatus(t, f.do("DELETE", "/v1/allow/nothing.example", ""), 404)
}

// An entry broader than a /8 (IPv4) or a /32 (IPv6), or a bare public
// suffix, would lift blocks across much of the Internet: it is refused
// with 400 naming value, and reaches the Backend only with "force": true.
func TestAllowTooBroad(t *testing.T) {
	for _, tc := range []struct {
		value string
		broad bool
	}{
		{"0.0.0.0/0", true},
		{"45.0.0.0/7", true},
		{"::/0", true},
		{"2a00::/12", true},
		{"com", true},
		{"COM.", true},
		{"co.uk", true},
		{"github.io", true},
		{"45.0.0.0/8", false},
		{"2a0c::/32", false},
		{"45.83.0.21", false},
		{"example.co.uk", false},
		{"cdn.example.com", false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			f, bb := newBlockFixture(t)
			rec := f.do("POST", "/v1/allow", fmt.Sprintf(`{"value":%q}`, tc.value))
			if !tc.broad {
				wantStatus(t, rec, 201)
				return
			}
			if e := decodeBody[errorBody](t, rec); rec.Code != 400 || e.Field != "value" || !strings.Contains(e.Error, `"force": true`) {
				t.Errorf("POST %s: %d %s, want 400 naming value and saying how to force it", tc.value, rec.Code, rec.Body)
			}
			if len(bb.allowed) != 0 {
				t.Errorf("the Backend got %+v", bb.allowed)
			}
			wantStatus(t, f.do("POST", "/v1/allow", fmt.Sprintf(`{"value":%q,"force":true}`, tc.value)), 201)
			if len(bb.allowed) != 1 || !bb.allowed[0].Force {
				t.Errorf("forced: the Backend got %+v", bb.allowed)
			}
		})
	}
	f, _ := newBlockFixture(t)
	if rec := f.do("POST", "/v1/allow", `{"value":"com","force":"yes"}`); rec.Code != 400 || decodeBody[errorBody](t, rec).Field != "force" {
		t.Errorf(`"force":"yes": %d %s, want 400 naming force`, rec.Code, rec.Body)
	}
}

// A Backend without blocks has no block routes.
func TestNoBlockRoutesWithoutBlockBackend(t *testing.T) {
	f := newFixture(t, nil)
	if rec := f.do("GET", "/v1/blocks", ""); rec.Code != 404 {
		t.Errorf("GET /v1/blocks: %d", rec.Code)
	}
}

// An operator's text cannot forge a log line or hide itself: newlines,
// control and bidi characters reach the backend and the log escaped.
func TestAdminTextSanitised(t *testing.T) {
	f, bb := newBlockFixture(t)
	rec := f.do("DELETE", "/v1/blocks/45.83.0.21?actor=alice%0a%5BINFO%5D+forged&reason=fp%1b%5B2J%E2%80%AE", "")
	wantStatus(t, rec, 200)
	if want := `45.83.0.21 token_file (on behalf of alice\n[INFO] forged) fp\x1b[2J\u202e`; len(bb.unblocked) != 1 || bb.unblocked[0] != want {
		t.Errorf("unblock recorded %q, want %q", bb.unblocked, want)
	}
	rec = f.do("POST", "/v1/allow", `{"value":"45.83.0.40","reason":"cdn\r\nX","actor":"bob\u2066"}`)
	wantStatus(t, rec, 201)
	if got := bb.allowed[len(bb.allowed)-1]; got.Reason != `cdn\r\nX` || got.Actor != `token_file (on behalf of bob\u2066)` {
		t.Errorf("allow request %+v", got)
	}
	logs := f.logs.all()
	if strings.Contains(logs, "\n[INFO]") || strings.ContainsAny(logs, "\x1b\r\u202e\u2066") {
		t.Errorf("log holds raw operator text: %q", logs)
	}
}
