// Package testlog records what code under test logs through a
// Logf(format, args...) hook, so a test can look for a line or wait for one.
package testlog

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recorder collects log lines; it is safe for concurrent use, and its zero
// value is ready. Pass the method value r.Logf as the hook.
type Recorder struct {
	mu    sync.Mutex
	lines []string
	// logged, when not nil, is closed by the next Logf: WaitFor's wake-up.
	logged chan struct{}
}

// Logf records one line.
func (r *Recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	if r.logged != nil {
		close(r.logged)
		r.logged = nil
	}
}

// Lines returns the lines recorded so far, oldest first.
func (r *Recorder) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// String returns the lines recorded so far, one per line, for messages.
func (r *Recorder) String() string {
	return strings.Join(r.Lines(), "\n")
}

// Contains reports whether a recorded line contains substr.
func (r *Recorder) Contains(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.findLocked(substr)
	return ok
}

// WaitFor returns the first line containing substr, waiting for it to be
// logged; it fails the test when none is within timeout. The timeout only
// bounds a broken test: WaitFor wakes on every new line, it does not poll.
func (r *Recorder) WaitFor(tb testing.TB, substr string, timeout time.Duration) string {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		line, ok := r.findLocked(substr)
		if r.logged == nil {
			r.logged = make(chan struct{})
		}
		logged := r.logged
		r.mu.Unlock()
		if ok {
			return line
		}
		select {
		case <-logged:
		case <-timer.C:
			tb.Fatalf("no log line containing %q within %v; logged:\n%s", substr, timeout, r)
			return ""
		}
	}
}

func (r *Recorder) findLocked(substr string) (string, bool) {
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			return l, true
		}
	}
	return "", false
}
