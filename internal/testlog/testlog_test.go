package testlog_test

import (
	"slices"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testlog"
)

func TestRecorder(t *testing.T) {
	var r testlog.Recorder
	r.Logf("state: %s is corrupt", "blocks.db")
	r.Logf("writes failing: %v", "disk full")
	if got, want := r.Lines(), []string{"state: blocks.db is corrupt", "writes failing: disk full"}; !slices.Equal(got, want) {
		t.Errorf("Lines() = %q, want %q", got, want)
	}
	if !r.Contains("corrupt") || r.Contains("restored") {
		t.Errorf("Contains: corrupt %v, restored %v; want true, false", r.Contains("corrupt"), r.Contains("restored"))
	}
	if got := r.String(); got != "state: blocks.db is corrupt\nwrites failing: disk full" {
		t.Errorf("String() = %q", got)
	}
}

// TestWaitForALineLoggedLater: WaitFor returns the line another goroutine
// logs after the wait began.
func TestWaitForALineLoggedLater(t *testing.T) {
	var r testlog.Recorder
	go func() {
		r.Logf("noise")
		r.Logf("block pushed for %s", "45.83.0.21")
	}()
	if got := r.WaitFor(t, "block pushed", 10*time.Second); got != "block pushed for 45.83.0.21" {
		t.Errorf("WaitFor = %q", got)
	}
	if got := r.WaitFor(t, "noise", 10*time.Second); got != "noise" {
		t.Errorf("WaitFor on a line already there = %q", got)
	}
}

// fatalTB records what fails a test, instead of failing this one.
type fatalTB struct {
	testing.TB
	failed string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) { f.failed = format }

func TestWaitForFailsTheTestAfterTheTimeout(t *testing.T) {
	var r testlog.Recorder
	r.Logf("something else")
	tb := &fatalTB{TB: t}
	if got := r.WaitFor(tb, "never logged", time.Millisecond); got != "" || tb.failed == "" {
		t.Errorf("WaitFor = %q, failed %q; want \"\" and the test failed", got, tb.failed)
	}
}
