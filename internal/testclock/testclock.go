// Package testclock is the clock tests hand to code that takes a
// func() time.Time (and a func(time.Duration) <-chan time.Time to wait
// on): it stands still until the test moves it.
package testclock

import (
	"sync"
	"time"
)

// Clock is a settable time source, safe for concurrent use. The zero value
// reads the zero time; New starts it elsewhere.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
}

// timer is a channel of After waiting for the clock to reach at.
type timer struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock reading start.
func New(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's time; pass the method value c.Now as a time source.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward (backward when negative) and returns the
// new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
	return c.now
}

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.fireLocked()
}

// After stands in for time.After: the channel receives the clock's time
// once Advance or Set has moved it d or more past now (at once if d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	c.fireLocked()
	return ch
}

// Timers is how many channels of After wait to fire, so that a test can
// wait for the code under test to wait before it moves the clock.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *Clock) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}
