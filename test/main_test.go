// Package test holds end-to-end tests against the real coredns-cip binary.
package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binPath is the coredns-cip binary under test, built once by TestMain (or
// taken from $COREDNS_CIP_BIN, to test a binary built elsewhere).
var binPath string

// runTimeout bounds one run of the binary.
const runTimeout = time.Minute

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	if bin := os.Getenv("COREDNS_CIP_BIN"); bin != "" {
		binPath = bin
		return m.Run(), nil
	}

	dir, err := os.MkdirTemp("", "coredns-cip-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)

	binPath = filepath.Join(dir, "coredns-cip")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/coredns-cip")
	build.Dir = ".." // the module root; go test runs in the package directory
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build coredns-cip: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// run runs the binary with args and returns what it printed and its exit
// code. It fails the test if the binary cannot start or runs past runTimeout.
func run(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv is run with the environment env (nil: this process's).
func runEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("coredns-cip %s: still running after %s\nstderr:\n%s", strings.Join(args, " "), runTimeout, errOut.String())
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("coredns-cip %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), exitCode
}
