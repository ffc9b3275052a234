package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
)

// token new prints a token and a line that loads as that token, with
// only the token's hash in it.
func TestTokenNew(t *testing.T) {
	var out, errb bytes.Buffer
	if code := tokenRun([]string{"new", "siem", "events"}, nil, &out, &errb); code != 0 {
		t.Fatalf("token new: exit %d: %s", code, &errb)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(lines[1], lines[0]) || !strings.HasPrefix(lines[1], "siem events sha256:") {
		t.Fatalf("token new printed %q, want the token, then its line without it", out.String())
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(lines[1]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	toks, err := adminapi.LoadTokens(path)
	if err != nil || len(toks) != 1 || toks[0] != adminapi.NewToken("siem", adminapi.RoleEvents, lines[0]) {
		t.Errorf("the line loads as %+v, %v; want siem's token", toks, err)
	}
}

// token new --file adds the line to the file, and nothing when the file
// would then not load.
func TestTokenNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	newToken := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := tokenRun(append([]string{"new", "--file", path}, args...), nil, &out, &errb)
		return code, strings.TrimSpace(out.String()), errb.String()
	}
	code, ops, errOut := newToken("ops", "operator")
	if code != 0 || len(ops) != 43 {
		t.Fatalf("token new --file (a new file): exit %d, stdout %q, stderr %q; want the token alone", code, ops, errOut)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the new file: %v, %v; want mode 0600", info.Mode(), err)
	}
	// A file whose last line has no newline.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fmt.Fprintf(f, "# edited by hand")
	f.Close()
	code, reader, errOut := newToken("fw", "read")
	if code != 0 {
		t.Fatalf("token new --file (a second token): exit %d, %s", code, errOut)
	}
	before, _ := os.ReadFile(path)
	if code, _, errOut := newToken("ops", "read"); code != exitError || !strings.Contains(errOut, `name "ops" is already on line 1`) {
		t.Errorf("a second ops: exit %d, stderr %q; want 2 and the name", code, errOut)
	}
	for _, args := range [][]string{{"x", "admin"}, {"a b", "read"}} {
		if code, _, _ := newToken(args...); code != exitError {
			t.Errorf("token new %q: exit %d, want 2", args, code)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Errorf("a refused token changed the file:\n%s\nwas:\n%s", after, before)
	}
	toks, err := adminapi.LoadTokens(path)
	want := []adminapi.Token{adminapi.NewToken("ops", adminapi.RoleOperator, ops), adminapi.NewToken("fw", adminapi.RoleRead, reader)}
	if err != nil || len(toks) != 2 || toks[0] != want[0] || toks[1] != want[1] {
		t.Errorf("the file loads as %+v, %v; want ops and fw", toks, err)
	}
}

func TestTokenHash(t *testing.T) {
	var out, errb bytes.Buffer
	if code := tokenRun([]string{"hash"}, strings.NewReader("an-existing-token\n"), &out, &errb); code != 0 || out.String() != adminapi.HashSecret("an-existing-token")+"\n" {
		t.Errorf("token hash: exit %d, %q %q", code, &out, &errb)
	}
	errb.Reset()
	if code := tokenRun([]string{"hash"}, strings.NewReader("two words"), &out, &errb); code != exitError || !strings.Contains(errb.String(), "no spaces") {
		t.Errorf("token hash of two words: exit %d, %q", code, &errb)
	}
	if code := tokenRun([]string{"nonsense"}, nil, &out, &errb); code != exitError {
		t.Errorf("token nonsense: exit %d", code)
	}
}

// blocks with tokens of each role against a server with a tokens file:
// the events token cannot list, the read token lists but cannot allow,
// the operator allows and the audit names it and whom it acted for.
func TestBlocksWithRoles(t *testing.T) {
	cipvalidate.RegisterDirective()
	_, fakeURL := fakeapitest.Start(t)
	dir := t.TempDir()
	secret := map[string]string{}
	var lines []string
	for _, tok := range []struct{ name, role string }{{"siem", "events"}, {"fw", "read"}, {"ops", "operator"}} {
		secret[tok.name] = adminapi.NewSecret()
		lines = append(lines, adminapi.TokenLine(tok.name, adminapi.Role(tok.role), secret[tok.name]))
		if err := os.WriteFile(filepath.Join(dir, tok.name), []byte(secret[tok.name]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIP_ROLES_KEY", fakeapitest.Key)
	events := freeLoopbackAddr(t)
	coretest.Start(t, fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key {$CIP_ROLES_KEY}
        api_url %s
        events %s tokens %s
    }
    whoami
}
`, fakeURL, events, tokens))
	env := func(k string) string { return map[string]string{"USER": "alice"}[k] }
	blocks := func(token string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		args = append(args, "--api", "http://"+events, "--token-file", filepath.Join(dir, token))
		code := blocksCmd(context.Background(), args, &out, &errb, env)
		return code, out.String(), errb.String()
	}
	if code, _, errOut := blocks("siem", "list"); code != exitError || !strings.Contains(errOut, "403 Forbidden") || !strings.Contains(errOut, "role events") {
		t.Errorf("blocks list with the events token: exit %d, %q; want 2 and a 403", code, errOut)
	}
	if code, out, errOut := blocks("fw", "list"); code != 0 || !strings.Contains(out, "0 active block(s)") {
		t.Errorf("blocks list with the read token: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := blocks("fw", "allow", "45.83.0.99"); code != exitError || !strings.Contains(errOut, "403 Forbidden") {
		t.Errorf("blocks allow with the read token: exit %d, %q; want 2 and a 403", code, errOut)
	}
	if code, _, errOut := blocks("fw", "unblock", "45.83.0.99"); code != exitError || !strings.Contains(errOut, "403 Forbidden") {
		t.Errorf("blocks unblock with the read token: exit %d, %q; want 2 and a 403", code, errOut)
	}
	if code, out, errOut := blocks("ops", "allow", "45.83.0.99", "--reason", "vendor"); code != 0 || !strings.Contains(out, "allowlisted 45.83.0.99") {
		t.Fatalf("blocks allow with the operator token: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := blocks("fw", "allowlist"); code != 0 || !strings.Contains(out, `"actor":"ops (on behalf of alice)"`) {
		t.Errorf("the allowlist entry: exit %d, %s; want the actor ops (on behalf of alice)", code, out)
	}
	for _, s := range secret {
		if code, out, errOut := blocks("ops", "list"); code != 0 || strings.Contains(out+errOut, s) {
			t.Errorf("blocks list shows a token: %q %q", out, errOut)
		}
	}
}

// The blocks client waits out a 429's Retry-After and tries again, up to
// 3 times.
func TestBlocksRetries429(t *testing.T) {
	var refusals atomic.Int32
	refusals.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if refusals.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintln(w, `{"error":"token \"ops\" is over its rate limit"}`)
			return
		}
		fmt.Fprintln(w, `[]`)
	}))
	t.Cleanup(srv.Close)
	var out, errb bytes.Buffer
	if code := blocksCmd(context.Background(), []string{"list", "--api", srv.URL}, &out, &errb, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), "0 active block(s)") {
		t.Errorf("blocks list after two 429s: exit %d, %q %q", code, &out, &errb)
	}
	refusals.Store(4)
	errb.Reset()
	if code := blocksCmd(context.Background(), []string{"list", "--api", srv.URL}, &out, &errb, func(string) string { return "" }); code != exitError || !strings.Contains(errb.String(), "429 Too Many Requests: token \"ops\" is over its rate limit") {
		t.Errorf("blocks list after four 429s: exit %d, %q; want 2 and the 429", code, &errb)
	}
}
