package test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

// startFakeAPICommand runs `coredns-cip fakeapi` on a free loopback port and
// returns its base URL; the process is stopped by PID at cleanup. Only the
// tests of that sub-command use it: the others start the fake in process,
// with fakeapitest.Start.
func startFakeAPICommand(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"fakeapi", "--listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		const prefix = "fakeapi listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("fakeapi did not start: %q, stderr %s", line, stderr.String())
		}
		return strings.Fields(strings.TrimPrefix(line, prefix))[0]
	case <-time.After(30 * time.Second):
		t.Fatalf("fakeapi printed nothing within 30s; stderr %s", stderr.String())
	}
	return ""
}

func fakeCalls(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/_fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		Calls int `json:"calls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.Calls
}

// TestCheckAgainstFakeAPIBinary is the acceptance: the real binary,
// its fakeapi sub-command on the shared fixtures, and check's exit codes.
func TestCheckAgainstFakeAPIBinary(t *testing.T) {
	url := startFakeAPICommand(t, "--fixtures", fixtures.Dir(t))
	env := []string{"CIP_API_KEY=e2e-key", "PATH=/usr/bin:/bin"}

	out, errOut, code := runEnv(t, env, "check", "--ip", "45.83.0.71", "--api-url", url, "--pretty")
	if code != 1 || !strings.HasPrefix(out, "[SUSPICIOUS] 45.83.0.71") {
		t.Fatalf("45.83.0.71: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var want []string
	for _, e := range fixtures.Manifest(t) {
		if e.IP == "45.83.0.71" {
			want = e.Reasons
		}
	}
	if len(want) != 9 {
		t.Fatalf("manifest gives %d reasons for 45.83.0.71, the issue expects 9", len(want))
	}
	for _, f := range want {
		if !strings.Contains(out, " - "+f+": ") {
			t.Errorf("reason %s missing from:\n%s", f, out)
		}
	}
	if n := strings.Count(out, "\n - "); n != len(want) {
		t.Errorf("%d reason lines, want %d", n, len(want))
	}

	before := fakeCalls(t, url)
	_, errOut, code = runEnv(t, env, "check", "--ip", "10.0.0.1", "--api-url", url)
	if code != 2 || !strings.Contains(errOut, "not a public IP") {
		t.Errorf("10.0.0.1: exit %d, stderr %q; want 2 and a clear refusal", code, errOut)
	}
	if after := fakeCalls(t, url); after != before {
		t.Errorf("10.0.0.1 cost %d API calls, want 0", after-before)
	}

	out, errOut, code = runEnv(t, env, "check", "--ip", "45.83.0.10", "--api-url", url)
	if code != 0 {
		t.Errorf("45.83.0.10: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("default output is not JSON: %v: %q", err, out)
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"ip", "port", "reasons", "score", "suspicious"}) {
		t.Errorf("output keys = %v", keys)
	}
}

// TestCheckWithEmbeddedFixtures runs the fake API with no --fixtures, as the
// demo does, and checks the key is never echoed.
func TestCheckWithEmbeddedFixtures(t *testing.T) {
	url := startFakeAPICommand(t, "--key", "right-key")
	env := []string{"CIP_API_KEY=wrong-key-zz9", "PATH=/usr/bin:/bin"}
	out, errOut, code := runEnv(t, env, "check", "--ip", "45.83.0.52", "--api-url", url)
	if code != 2 || !strings.Contains(errOut, "api key refused") {
		t.Fatalf("wrong key: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(out+errOut, "wrong-key-zz9") {
		t.Errorf("the key appears in the output: %q %q", out, errOut)
	}
	env[0] = "CIP_API_KEY=right-key"
	out, _, code = runEnv(t, env, "check", "--ip", "45.83.0.52", "--api-url", url)
	if code != 1 || !strings.Contains(out, `"ANON_TOR"`) {
		t.Errorf("embedded tor fixture: exit %d, %q", code, out)
	}
}
