package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

func runCheckTest(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = check(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

var withKey = map[string]string{"CIP_API_KEY": fakeapitest.Key}

// TestCheckManifest runs check over every verdict fixture: exit status and
// JSON output follow the manifest.
func TestCheckManifest(t *testing.T) {
	_, url := fakeapitest.Start(t)
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict == "error" {
			continue
		}
		t.Run(e.File, func(t *testing.T) {
			out, errOut, code := runCheckTest(t, withKey, "--ip", e.IP, "--api-url", url)
			wantCode := exitClean
			if e.Suspicious {
				wantCode = exitSuspicious
			}
			if code != wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, wantCode, errOut)
			}
			var res struct {
				IP         string                            `json:"ip"`
				Port       *int                              `json:"port"`
				Suspicious bool                              `json:"suspicious"`
				Reasons    []struct{ Factor, Detail string } `json:"reasons"`
				Score      string                            `json:"score"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			var got []string
			for _, r := range res.Reasons {
				got = append(got, r.Factor)
			}
			want := slices.Clone(e.Reasons)
			slices.Sort(got)
			slices.Sort(want)
			if res.IP != e.IP || res.Port != nil || res.Suspicious != e.Suspicious || !slices.Equal(got, want) || res.Score == "" {
				t.Errorf("output %+v, want ip %s suspicious %v reasons %v and a score", res, e.IP, e.Suspicious, want)
			}
			if res.Reasons == nil {
				t.Error(`"reasons" is null, want a list`)
			}
		})
	}
}

func TestCheckPretty(t *testing.T) {
	_, url := fakeapitest.Start(t)
	out, _, code := runCheckTest(t, withKey, "--ip", "45.83.0.71", "--port", "22", "--api-url", url, "--pretty")
	if code != exitSuspicious || !strings.HasPrefix(out, "[SUSPICIOUS] 45.83.0.71:22\n") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	if lines := strings.Count(out, "\n - "); lines != 10 {
		t.Errorf("%d reason lines, want 10 (the report's 9 and the port's):\n%s", lines, out)
	}
	for _, want := range []string{" - SCORE: inbound Critical, outbound Dangerous [everyone]\n", " - SSH_OPENSSH: OpenSSH on port 22 [tagged]\n",
		" - SSH_OPENSSH: destination port 22 (SSH) [tagged]\n", " - ANON_TOR: issues.is_tor; category tor [everyone]\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = runCheckTest(t, withKey, "--ip", "45.83.0.10", "--api-url", url, "--pretty")
	if code != exitClean || !strings.HasPrefix(out, "[OK] 45.83.0.10\n") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestCheckHints(t *testing.T) {
	_, url := fakeapitest.Start(t)
	out, _, code := runCheckTest(t, withKey, "--ip", "45.83.0.10", "--port", "2222", "--product", "OpenSSH", "--api-url", url)
	if code != exitSuspicious || !strings.Contains(out, `"SSH_OPENSSH"`) || !strings.Contains(out, `"port":2222`) {
		t.Errorf("clean IP with an OpenSSH hint: exit %d, %s", code, out)
	}
}

func TestCheckDumpJSON(t *testing.T) {
	_, url := fakeapitest.Start(t)
	out, _, code := runCheckTest(t, withKey, "--ip", "45.83.0.21", "--api-url", url, "--dump-json", "--pretty")
	if code != exitSuspicious || !strings.Contains(out, `"user_search_count"`) || !strings.Contains(out, "[SUSPICIOUS] 45.83.0.21") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestCheckRefusesWithoutCalling(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--ip", "10.0.0.1"}, withKey, "RFC 1918"},
		{[]string{"--ip", "192.0.2.5"}, withKey, "documentation"},
		{[]string{"--ip", "fe80::1"}, withKey, "link-local"},
		{[]string{"--ip", "not-an-ip"}, withKey, "not an IP address"},
		{[]string{}, withKey, "--ip is required"},
		{[]string{"--ip", "45.83.0.10", "--port", "70000"}, withKey, "--port"},
		{[]string{"--ip", "45.83.0.10", "--factors", "score,geo"}, withKey, `"geo"`},
		{[]string{"--ip", "45.83.0.10", "--score-levels", "huge"}, withKey, `"huge"`},
		{[]string{"--ip", "45.83.0.10"}, nil, "no API key"},
		{[]string{"--ip", "45.83.0.10", "extra"}, withKey, "unexpected argument"},
	}
	for _, tc := range tests {
		_, errOut, code := runCheckTest(t, tc.env, append(tc.args, "--api-url", url)...)
		if code != exitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("check %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if fake.Calls() != 0 {
		t.Errorf("API called %d times for refused input", fake.Calls())
	}
}

func TestCheckKeyfile(t *testing.T) {
	_, url := fakeapitest.Start(t, fakeapitest.WithKey("file-key"))
	dir := t.TempDir()
	path := filepath.Join(dir, "criminalip_api_key.json")
	if err := os.WriteFile(path, []byte(`{"api_key": "file-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// The keyfile wins over the environment.
	if _, errOut, code := runCheckTest(t, map[string]string{"CIP_API_KEY": "env-key"}, "--ip", "45.83.0.10", "--keyfile", path, "--api-url", url); code != exitClean {
		t.Fatalf("with --keyfile: exit %d, %s", code, errOut)
	}
	_, errOut, code := runCheckTest(t, map[string]string{"CIP_API_KEY": "env-key"}, "--ip", "45.83.0.10", "--api-url", url)
	if code != exitError || !strings.Contains(errOut, "api key refused") || strings.Contains(errOut, "env-key") {
		t.Errorf("wrong key: exit %d, stderr %q; want 2, 'api key refused', no key", code, errOut)
	}
}

func TestCheckAPIErrors(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	fake.Fault(fakeapi.ModeBadKey, -1)
	_, errOut, code := runCheckTest(t, withKey, "--ip", "45.83.0.10", "--api-url", url)
	if code != exitError || !strings.Contains(errOut, "api key refused") || fake.Calls() != 1 {
		t.Errorf("bad key: exit %d after %d calls, stderr %q", code, fake.Calls(), errOut)
	}
	fake.ClearFaults()
	fake.Fault(fakeapi.ModeMalformed, -1)
	_, errOut, code = runCheckTest(t, withKey, "--ip", "45.83.0.10", "--api-url", url)
	if code != exitError || !strings.Contains(errOut, "bad response") {
		t.Errorf("malformed: exit %d, stderr %q", code, errOut)
	}
}

func TestCheckHelp(t *testing.T) {
	_, errOut, code := runCheckTest(t, nil, "-h")
	if code != exitClean || !strings.Contains(errOut, "Exit status: 0 clean, 1 suspicious, 2 error") || !strings.Contains(errOut, "-keyfile") {
		t.Errorf("help: exit %d, %s", code, errOut)
	}
}
