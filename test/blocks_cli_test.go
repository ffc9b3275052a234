package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// TestBlocksCLI drives `coredns-cip blocks` against a running server.
func TestBlocksCLI(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "2h"})
	blocks := srv.blockBoth()
	env := cliEnv()
	blocksCLI := func(args ...string) (string, string, int) {
		t.Helper()
		return runEnv(t, env, append([]string{"blocks", "--api", srv.api}, args...)...)
	}

	out, errOut, code := blocksCLI("list")
	if code != 0 {
		t.Fatalf("blocks list: exit %d, stderr %q", code, errOut)
	}
	for _, ip := range []string{badIP, torIP} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
			f := strings.Fields(line)
			return len(f) > 1 && f[0] == ip && f[1] == blocks[ip].Decision
		}) {
			t.Errorf("blocks list has no line starting %s %s:\n%s", ip, blocks[ip].Decision, out)
		}
	}
	if !strings.Contains(out, "2 active block(s)") {
		t.Errorf("blocks list does not end with the count of 2:\n%s", out)
	}

	out, errOut, code = blocksCLI("list", "--json")
	var list []blockView
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("blocks list --json: exit %d (stderr %q), not a JSON list of blocks (%v): %q", code, errOut, err, out)
	}
	var listed []string
	for _, b := range list {
		listed = append(listed, b.IP)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, []string{badIP, torIP}) {
		t.Errorf("blocks list --json lists %v, want %s and %s", listed, badIP, torIP)
	}

	out, errOut, code = blocksCLI("unblock", badIP, "--reason", "false positive", "--actor", "alice")
	if code != 0 || !strings.Contains(out, "unblocked "+badIP) {
		t.Fatalf("blocks unblock %s: exit %d, stdout %q, stderr %q", badIP, code, out, errOut)
	}
	if _, still := srv.blocks()[badIP]; still {
		t.Errorf("GET /v1/blocks still lists %s after blocks unblock", badIP)
	}
	if !slices.ContainsFunc(srv.auditEntries(), func(e auditEntry) bool {
		return e.Kind == "unblock" && e.IP == badIP && e.Decision == blocks[badIP].Decision && e.Actor == "alice" && e.Detail == "false positive"
	}) {
		t.Errorf("audit.log has no unblock of %s by alice for a false positive", badIP)
	}
	_, errOut, code = blocksCLI("unblock", badIP, "--actor", "alice")
	if code != 1 || !strings.Contains(errOut, badIP+" is not blocked") {
		t.Errorf("blocks unblock %s again: exit %d, stderr %q; want 1 and %q", badIP, code, errOut, badIP+" is not blocked")
	}
	// The name is answered again: DNS forgot the verdict with the block.
	if got := answerA(t, queryA(t, srv.dnsAddr, taggedClient, badName)); !slices.Equal(got, []string{badIP}) {
		t.Errorf("%s from %s after the unblock: A %v, want %s", badName, taggedClient, got, badIP)
	}

	out, errOut, code = blocksCLI("allow", torIP, "--until", "1h", "--reason", "vendor", "--actor", "alice")
	if code != 0 || !strings.Contains(out, "lifted the blocks of "+torIP) {
		t.Errorf("blocks allow %s: exit %d, stdout %q, stderr %q; want 0 and the block lifted", torIP, code, out, errOut)
	}
	if _, still := srv.blocks()[torIP]; still {
		t.Errorf("GET /v1/blocks still lists %s after blocks allow", torIP)
	}

	out, errOut, code = blocksCLI("allow", "not..valid")
	if code != 2 || !strings.Contains(errOut, "not..valid") {
		t.Errorf("blocks allow not..valid: exit %d, stdout %q, stderr %q; want 2 and an error naming the value", code, out, errOut)
	}
	// An entry that would lift every block needs --force.
	out, errOut, code = blocksCLI("allow", "0.0.0.0/0", "--reason", "oops")
	if code != 2 || !strings.Contains(errOut, "value") {
		t.Errorf("blocks allow 0.0.0.0/0: exit %d, stdout %q, stderr %q; want 2 and an error naming the value", code, out, errOut)
	}
	out, errOut, code = blocksCLI("allow", "0.0.0.0/0", "--reason", "maintenance window", "--force")
	if code != 0 || !strings.Contains(out, "allowlisted 0.0.0.0/0") {
		t.Errorf("blocks allow 0.0.0.0/0 --force: exit %d, stdout %q, stderr %q; want it allowlisted", code, out, errOut)
	}
}

// TestBlocksCLIToken runs blocks against an event API that wants a token,
// and against no API at all.
func TestBlocksCLIToken(t *testing.T) {
	const token = "s3cret-token-e2e"
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, token: token})
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, token+"\n")

	out, errOut, code := runEnv(t, cliEnv(), "blocks", "--api", srv.api, "list")
	if code != 2 || !strings.Contains(errOut, "401") {
		t.Errorf("blocks list without the token: exit %d, stdout %q, stderr %q; want 2 and a 401", code, out, errOut)
	}

	out, errOut, code = runEnv(t, cliEnv(), "blocks", "--api", srv.api, "--token-file", tokenFile, "list")
	if code != 0 || !strings.Contains(out, "0 active block(s)") {
		t.Errorf("blocks list --token-file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, errOut, code = runEnv(t, append(cliEnv(), "CIP_TOKEN="+token), "blocks", "--api", srv.api, "list")
	if code != 0 || !strings.Contains(out, "0 active block(s)") {
		t.Errorf("blocks list with CIP_TOKEN: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(out+errOut, token) {
		t.Errorf("the token appears in the output: %q %q", out, errOut)
	}

	closed := "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))
	out, errOut, code = runEnv(t, cliEnv(), "blocks", "--api", "http://"+closed, "list")
	if code != 2 || !strings.Contains(errOut, closed) || !strings.Contains(errOut, "connection refused") {
		t.Errorf("blocks list --api at a closed port: exit %d, stdout %q, stderr %q; want 2 and the refused address", code, out, errOut)
	}
}

// cliEnv is this process's environment without the CIP_ variables, which
// would otherwise choose the blocks command's API and token.
func cliEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CIP_") })
}
