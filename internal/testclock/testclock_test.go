package testclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := testclock.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	if got := c.Advance(time.Minute); !got.Equal(start.Add(time.Minute)) || !c.Now().Equal(got) {
		t.Errorf("Advance(1m) = %v, Now() = %v; want %v", got, c.Now(), start.Add(time.Minute))
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("after Set, Now() = %v, want %v", got, start)
	}
}

// TestConcurrentUse is for the race detector: readers and writers at once.
func TestConcurrentUse(t *testing.T) {
	var c testclock.Clock
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(time.Time{}.Add(400 * time.Second)) {
		t.Errorf("after 400 one-second steps, Now() = %v", got)
	}
}
