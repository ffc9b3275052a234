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

// workDir is TestMain's temporary directory, for the binaries built later
// (fullbuild_test.go).
var workDir string

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
	dir, err := os.MkdirTemp("", "coredns-cip-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	workDir = dir
	if bin := os.Getenv("COREDNS_CIP_BIN"); bin != "" {
		binPath = bin
		return m.Run(), nil
	}

	binPath = filepath.Join(dir, "coredns-cip")
	// The curated plugin set: the full one takes minutes to compile, and
	// only fullbuild_test.go needs it.
	if err := buildBinary(binPath, "curated"); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// The identity the test builds carry, as the Makefile's -ldflags set it.
const (
	testVersion   = "v0.0.0-test"
	testCommit    = "0123456789abcdef0123456789abcdef01234567"
	testBuildDate = "2026-12-07T05:00:00Z"
)

// buildBinary builds cmd/coredns-cip to out with the build tags tags and
// the Makefile's -X variables set to the test values. Static and
// -trimpath, as `make static` builds it: CI's make demo and make
// package-test then reuse this build's compiled packages instead of
// compiling the curated set twice more.
func buildBinary(out, tags string) error {
	const v = "github.com/coredns-cip/coredns-cip/internal/version"
	ldflags := "-X " + v + ".Version=" + testVersion + " -X " + v + ".Commit=" + testCommit +
		" -X " + v + ".BuildDate=" + testBuildDate + " -X github.com/coredns/coredns/coremain.GitCommit=" + testCommit
	build := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o", out, "./cmd/coredns-cip")
	build.Dir = ".." // the module root; go test runs in the package directory
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build coredns-cip (tags %q): %v\n%s", tags, err, out)
	}
	return nil
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
