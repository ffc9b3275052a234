package sink

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// script writes an executable /bin/sh script to a fresh directory and
// returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh")
	}
	path := filepath.Join(t.TempDir(), "cip-hook")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExecPassesArgsAndEnvWithoutAShell(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "calls")
	pwned := filepath.Join(dir, "pwned")
	t.Setenv("CIP_TEST_OUT", out) // reaches the program: the parent's environment is kept
	prog := script(t, `{
	for a in "$@"; do printf 'arg=%s\n' "$a"; done
	printf 'env=%s|%s|%s|%s|%s\n' "$CIP_ACTION" "$CIP_IP" "$CIP_TTL" "$CIP_DECISION" "$CIP_CLIENT"
	echo --
} >>"$CIP_TEST_OUT"
`)
	args := []string{
		"{action}", "{ip}", "ttl={ttl}", "{decision}", "{reasons}", "{client}", "{event}", "{ref}",
		"a{ip}b{action}c", "{}",
		"x; touch " + pwned,
		"$(touch " + pwned + ")",
	}
	e, err := NewExec(prog, args, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	batch := []Change{
		{
			Action: Block, IP: netip.MustParseAddr("192.0.2.1"), Client: netip.MustParseAddr("10.0.0.9"),
			TTL: 90*time.Second + time.Millisecond, Decision: "d-1",
			Reasons: []string{"c2 server", "score 90"}, Event: "e-1", Ref: "CASE-7",
		},
		{Action: Unblock, IP: netip.MustParseAddr("2001:db8::1"), Decision: "d-2", TTL: time.Hour},
	}
	if err := e.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tail := []string{"arg={}", "arg=x; touch " + pwned, "arg=$(touch " + pwned + ")"}
	want := strings.Join(append(append([]string{
		"arg=block", "arg=192.0.2.1", "arg=ttl=91", "arg=d-1", "arg=c2 server; score 90", "arg=10.0.0.9", "arg=e-1", "arg=CASE-7",
		"arg=a192.0.2.1bblockc"}, tail...),
		"env=block|192.0.2.1|91|d-1|10.0.0.9", "--",
		"arg=unblock", "arg=2001:db8::1", "arg=ttl=0", "arg=d-2", "arg=", "arg=", "arg=", "arg=",
		"arg=a2001:db8::1bunblockc", tail[0], tail[1], tail[2],
		"env=unblock|2001:db8::1|0|d-2|", "--", "",
	), "\n")
	if got := string(b); got != want {
		t.Errorf("the program saw:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Error("an argument was interpreted by a shell")
	}
}

func TestExecScopePortAndClients(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "calls")
	t.Setenv("CIP_TEST_OUT", out)
	prog := script(t, `printf '%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$3" "$CIP_SCOPE" "$CIP_PORT" "$CIP_CLIENTS" >>"$CIP_TEST_OUT"
`)
	e, err := NewExec(prog, []string{"{scope}", "{port}", "{clients}"}, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, c1, c2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("2001:db8::9")
	batch := []Change{
		{Action: Block, IP: ip, Client: c1, Scope: ScopeTagged, Port: 443, Clients: []netip.Addr{c1, c2}, TTL: time.Hour, Decision: "d-1"},
		{Action: Block, IP: ip, Scope: ScopeEveryone, Clients: []netip.Addr{c1}, TTL: time.Hour, Decision: "d-2"},
		{Action: Unblock, IP: ip, Client: c1, Decision: "d-3"}, // no scope: a pair, as before scopes
		{Action: Unblock, IP: ip, Decision: "d-4"},             // no scope, no client: everyone
	}
	if err := e.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "tagged|443|10.0.0.9,2001:db8::9|tagged|443|10.0.0.9,2001:db8::9\n" +
		"everyone||10.0.0.9|everyone||10.0.0.9\n" +
		"tagged|||tagged||\n" +
		"everyone|||everyone||\n"
	if got := string(b); got != want {
		t.Errorf("the program saw:\n%s\nwant:\n%s", got, want)
	}
}

func TestExecFailure(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	t.Setenv("CIP_TEST_RAN", ran)
	t.Setenv("CIP_TEST_PRIVATE", "hunter2")
	prog := script(t, `echo "$CIP_IP" >>"$CIP_TEST_RAN"
if [ "$CIP_IP" = 192.0.2.7 ]; then echo "boom: rule exists" >&2; exit 3; fi
`)
	var mu sync.Mutex
	var logged []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	}
	e, err := NewExec(prog, nil, ExecOptions{Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	batch := []Change{block(7, "d-7"), block(8, "d-8")}
	err = e.Apply(context.Background(), batch)
	if err == nil {
		t.Fatal("Apply succeeded, want an error")
	}
	for _, s := range []string{"192.0.2.7", "exit status 3", "boom: rule exists"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("error %v does not unwrap to exit code 3", err)
	}
	if b, _ := os.ReadFile(ran); string(b) != "192.0.2.7\n" {
		t.Errorf("ran for %q, want the batch to stop at the failing change", b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !strings.Contains(logged[0], "boom") || strings.Contains(logged[0], "hunter2") {
		t.Errorf("logged %q, want one line with the output and no environment", logged)
	}
}

func TestExecTimeoutKillsTheProgram(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	t.Setenv("CIP_TEST_PID", pidFile)
	prog := script(t, `echo $$ >"$CIP_TEST_PID"
exec sleep 3600
`)
	e, err := NewExec(prog, nil, ExecOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Apply(context.Background(), []Change{block(9, "d-9")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "192.0.2.9") {
		t.Fatalf("Apply = %v, want a timeout naming the IP", err)
	}
	// Apply returned long before the program would have ended. If it got as
	// far as writing its pid, that process is gone.
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return // killed before it wrote it
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return // killed mid-write
	}
	if p, err := os.FindProcess(pid); err == nil {
		if err := p.Signal(syscall.Signal(0)); err == nil {
			t.Errorf("program %d still running after the timeout", pid)
		}
	}
}

func TestNewExecRejects(t *testing.T) {
	prog := script(t, "exit 0\n")
	dir := t.TempDir()
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		args       []string
		want       []string // in the error
	}{
		{"relative path", "bin/hook", nil, []string{"bin/hook", "not absolute"}},
		{"missing", filepath.Join(dir, "missing"), nil, []string{filepath.Join(dir, "missing"), "no such file"}},
		{"directory", dir, nil, []string{dir, "not a regular file"}},
		{"not executable", plain, nil, []string{plain, "not executable"}},
		{"unknown placeholder", prog, []string{"{ip}", "--ttl={tll}"}, []string{"{tll}", "argument 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewExec(tc.path, tc.args, ExecOptions{})
			if err == nil {
				t.Fatal("NewExec succeeded")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if _, err := NewExec(prog, []string{"{ip}", "{ttl}", "{action}", "{decision}", "{reasons}", "{client}", "{scope}", "{port}", "{clients}", "{event}", "{ref}", "{}", "{ not one }"}, ExecOptions{}); err != nil {
		t.Errorf("every documented placeholder: %v", err)
	}
}

// A range block reaches the program as its CIDR, for everyone.
func TestExecRangeBlock(t *testing.T) {
	out := filepath.Join(t.TempDir(), "calls")
	t.Setenv("CIP_TEST_OUT", out)
	prog := script(t, `printf '%s|%s|%s|%s\n' "$1" "$2" "$CIP_IP" "$CIP_SCOPE" >>"$CIP_TEST_OUT"
`)
	e, err := NewExec(prog, []string{"{ip}", "{scope}"}, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := netip.MustParsePrefix("45.83.0.0/24")
	if err := e.Apply(context.Background(), []Change{
		{Action: Block, Range: r, Scope: ScopeEveryone, TTL: time.Hour, Decision: "d-1"},
		{Action: Unblock, Range: r, Scope: ScopeEveryone, Decision: "d-1"},
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "45.83.0.0/24|everyone|45.83.0.0/24|everyone\n45.83.0.0/24|everyone|45.83.0.0/24|everyone\n"; got != want {
		t.Errorf("the program saw:\n%s\nwant:\n%s", got, want)
	}
}
