package cipvalidate

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/miekg/dns"
)

// The tokens of TestE2ETokenRoles.
const (
	siemToken   = "siem-token-0123456789"
	readerToken = "reader-token-0123456789"
	opsToken    = "ops-token-0123456789"
)

// A Corefile with `events ... tokens PATH`: each token does what its role
// allows, on a real block of a real server. An events token posts the
// event but cannot read the blocks; a read token reads them but cannot
// unblock, and is the only one the EDL takes as ?token=; an operator
// unblocks, and the audit log names it and whom it acted for. A reload
// reads the tokens file again.
func TestE2ETokenRoles(t *testing.T) {
	RegisterDirective()
	fake, apiURL := fakeapitest.Start(t, fakeapitest.WithKey("e2e-key"))
	dir := t.TempDir()
	db, tokens, auditLog := filepath.Join(dir, "db.example.org"), filepath.Join(dir, "tokens"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(db, []byte(e2eZone), 0o600); err != nil {
		t.Fatal(err)
	}
	writeTokens := func(lines ...string) {
		if err := os.WriteFile(tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTokens("siem events "+adminapi.HashSecret(siemToken), "reader read "+adminapi.HashSecret(readerToken), "ops operator "+opsToken)
	t.Setenv("CIP_E2E_KEY", "e2e-key")
	corefile := fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key {$CIP_E2E_KEY}
        api_url %s
        events 127.0.0.1:0 tokens %s
        audit %s
    }
    cache
    file %s example.org
}
`, apiURL, tokens, auditLog, db)
	inst, udp, _ := coretest.Start(t, corefile)
	e := &e2e{t: t, fake: fake, inst: inst, dnsAddr: udp, corefile: corefile, clock: testclock.New(time.Now())}
	e.apiBase = "http://" + e.owner().api.Addr()
	as := func(token string) *e2e { e.token = token; return e }

	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	as(siemToken).postEvent("127.0.0.2", time.Now(), "5m")
	if code := as(siemToken).api("GET", "/v1/blocks", nil, nil); code != http.StatusForbidden {
		t.Errorf("GET /v1/blocks with the events token: %d, want 403", code)
	}
	as(readerToken).waitBlock("45.83.0.21", "127.0.0.2")

	if code := as(readerToken).api("DELETE", "/v1/blocks/45.83.0.21?reason=fp", nil, nil); code != http.StatusForbidden {
		t.Errorf("DELETE /v1/blocks with the read token: %d, want 403", code)
	}
	if !slices.ContainsFunc(as(readerToken).blocks(), func(b scopedBlock) bool { return b.IP == "45.83.0.21" }) {
		t.Error("the read token's unblock lifted the block")
	}
	if r := e.query("127.0.0.2", "bad.example.org", dns.TypeA); edeOf(r) == nil {
		t.Errorf("not rewritten after the read token's unblock: %v", r)
	}

	edl := func(token string) (int, string) {
		resp, err := http.Get(e.apiBase + "/v1/blocklist.txt?token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := edl(opsToken); code != http.StatusForbidden || strings.Contains(body, "45.83.0.21") {
		t.Errorf("EDL with the operator token in the URL: %d %q, want 403", code, body)
	}
	if code, body := edl(readerToken); code != http.StatusOK || body != "45.83.0.21\n" {
		t.Errorf("EDL with the read token in the URL: %d %q", code, body)
	}

	if code := as(opsToken).api("DELETE", "/v1/blocks/45.83.0.21?on_behalf_of=alice&reason=fp", nil, nil); code != http.StatusOK {
		t.Fatalf("DELETE /v1/blocks with the operator token: %d", code)
	}
	eventually(t, "the unblock's audit line", func() bool {
		data, _ := os.ReadFile(auditLog)
		return strings.Contains(string(data), `"kind":"unblock","decision"`) && strings.Contains(string(data), `"actor":"ops (on behalf of alice)"`)
	})

	// A reload reads the tokens file again: the reader's token is gone.
	writeTokens("ops operator " + adminapi.HashSecret(opsToken))
	e.inst = coretest.Reload(t, e.inst, corefile)
	e.apiBase = "http://" + e.owner().api.Addr()
	if code := as(readerToken).api("GET", "/v1/blocks", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the removed token after a reload: %d, want 401", code)
	}
	if code := as(opsToken).api("GET", "/v1/blocks", nil, nil); code != http.StatusOK {
		t.Errorf("the kept token after a reload: %d, want 200", code)
	}
}

// `events ... tokens PATH` loads the file when the Corefile is parsed; a
// bad line is an error on the events line naming the file and its line.
func TestParseEventsTokens(t *testing.T) {
	dir := t.TempDir()
	tokenFile, tokens := filepath.Join(dir, "token"), filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte("legacy-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("siem events "+adminapi.HashSecret(siemToken)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseString(t, fmt.Sprintf("cipvalidate {\n api_key k\n events 0.0.0.0:8053 tokens %s token_file %s\n}", tokens, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := []adminapi.Token{adminapi.NewToken("siem", adminapi.RoleEvents, siemToken), adminapi.NewToken("token_file", adminapi.RoleOperator, "legacy-token")}; !slices.Equal(cfg.eventsAccess.Tokens, want) {
		t.Errorf("tokens %+v, want %+v", cfg.eventsAccess.Tokens, want)
	}
	if err := os.WriteFile(tokens, []byte("# ops\nops admin "+adminapi.HashSecret(opsToken)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tail := range []string{"tokens " + tokens, "tokens"} {
		_, err = parseString(t, "cipvalidate {\n api_key k\n events 127.0.0.1:0 "+tail+"\n}")
		want := "events: tokens " + tokens + `:2: role "admin" is not events, read or operator`
		if tail == "tokens" {
			want = "events: tokens has no value; syntax is events ADDRESS [tokens PATH]"
		}
		if err == nil || !strings.Contains(err.Error(), "Testfile:3 - Error during parsing: "+want) {
			t.Errorf("events 127.0.0.1:0 %s: %v, want %q on line 3", tail, err, want)
		}
	}
}
