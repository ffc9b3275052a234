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

func TestAfter(t *testing.T) {
	c := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	soon, later := c.After(time.Second), c.After(time.Minute)
	if n := c.Timers(); n != 2 {
		t.Fatalf("Timers() = %d, want 2", n)
	}
	c.Advance(30 * time.Second)
	select {
	case at := <-soon:
		if !at.Equal(c.Now()) {
			t.Errorf("fired with %v, want %v", at, c.Now())
		}
	default:
		t.Fatal("a 1s timer did not fire after 30s")
	}
	select {
	case <-later:
		t.Fatal("a 1m timer fired after 30s")
	default:
	}
	if n := c.Timers(); n != 1 {
		t.Errorf("Timers() = %d, want 1", n)
	}
	c.Set(c.Now().Add(time.Hour))
	<-later
	select {
	case <-c.After(0):
	default:
		t.Error("After(0) did not fire at once")
	}
}
