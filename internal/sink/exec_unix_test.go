//go:build linux

package sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExecTimeoutKillsTheProgramsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	t.Setenv("CIP_TEST_PID", pidFile)
	// The background child keeps the output pipe open too: without a group
	// kill and WaitDelay, Apply would wait for it.
	prog := script(t, `sleep 60 &
echo $! >"$CIP_TEST_PID"
sleep 60
`)
	e, err := NewExec(prog, nil, ExecOptions{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Apply(context.Background(), []Change{block(9, "d-9")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Apply = %v, want a timeout", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hook did not record its child within the timeout: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("child pid %q: %v", b, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d is still running after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processGone reports whether pid no longer runs: it does not exist, or it
// is a zombie its new parent has not reaped yet (an orphan goes to pid 1,
// which in a container need not reap promptly, or at all).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z")
}
