package enforce

import (
	"testing"
	"time"
)

// The backoff doubles from retryFirst up to retryMax, jittered to between
// half and all of each step, and never overflows.
func TestRetryDelay(t *testing.T) {
	for n, step := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second} {
		for range 100 {
			if d := retryDelay(n); d < step/2 || d > step {
				t.Fatalf("retry %d waits %s, want %s to %s", n+1, d, step/2, step)
			}
		}
	}
	for _, n := range []int{6, 7, 30, 63, 1000} {
		if d := retryDelay(n); d < retryMax/2 || d > retryMax {
			t.Errorf("retry %d waits %s, want at most %s", n+1, d, retryMax)
		}
	}
}

// An event that tags nobody, or whose watch is over, retries for
// retryNoWatch; otherwise until its watch ends.
func TestRetryUntil(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	if got := retryUntil(now.Add(-time.Minute), 30*time.Minute, now); !got.Equal(now.Add(29 * time.Minute)) {
		t.Errorf("watch 30m: %v", got)
	}
	for _, w := range []time.Duration{0, 30 * time.Second} {
		if got := retryUntil(now.Add(-time.Minute), w, now); !got.Equal(now.Add(retryNoWatch)) {
			t.Errorf("watch %s: %v, want now+%s", w, got, retryNoWatch)
		}
	}
}
