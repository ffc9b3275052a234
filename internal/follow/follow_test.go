package follow

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// collector gathers lines and lets a test wait for them.
type collector struct {
	mu    sync.Mutex
	lines []string
}

func (c *collector) add(b []byte) {
	c.mu.Lock()
	c.lines = append(c.lines, string(b))
	c.mu.Unlock()
}

func (c *collector) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.lines)
		c.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) || len(got) > len(want) {
			t.Fatalf("lines %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, path string, opts Options) (*collector, *Follower) {
	t.Helper()
	opts.Poll = 5 * time.Millisecond
	c := &collector{}
	f := New(path, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, c.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v", err)
		}
	})
	return c, f
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(s)
	fh.Close()
}

func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fw.log")
	appendTo(t, path, "old line, before the follower\n")
	c, f := start(t, path, Options{})
	// The follower starts at the end of the file, once it has opened it.
	deadline := time.Now().Add(10 * time.Second)
	for !f.Opened() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	appendTo(t, path, "one\n")
	c.waitFor(t, "one")
	appendTo(t, path, "two\r\nthr")
	c.waitFor(t, "one", "two")
	appendTo(t, path, "ee\n")
	c.waitFor(t, "one", "two", "three")

	// Rotation: the old file gets a last line, then a new file appears.
	appendTo(t, path, "last of the old file\n")
	c.waitFor(t, "one", "two", "three", "last of the old file")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", "written late to the old file\n")
	appendTo(t, path, "first of the new file\n")
	c.waitFor(t, "one", "two", "three", "last of the old file", "written late to the old file", "first of the new file")

	// Truncation in place (copytruncate).
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for f.Truncations.Load() == 0 && time.Now().Before(deadline) {
		appendTo(t, path, "")
		time.Sleep(5 * time.Millisecond)
	}
	appendTo(t, path, "after truncation\n")
	c.waitFor(t, "one", "two", "three", "last of the old file", "written late to the old file", "first of the new file", "after truncation")
}

func TestFollowFromStartAndMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	c, _ := start(t, path, Options{FromStart: true, MaxLine: 8})
	appendTo(t, path, "a\nlonger than eight\nb\n")
	c.waitFor(t, "a", "longer t", "b")
}

func BenchmarkFollow(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.log")
	fh, _ := os.Create(path)
	for i := range 100_000 {
		fmt.Fprintf(fh, "line %d SRC=10.0.0.1 DST=45.83.0.%d DPT=443\n", i, i%250)
	}
	fh.Close()
	for b.Loop() {
		n := 0
		ctx, cancel := context.WithCancel(context.Background())
		f := New(path, Options{FromStart: true, Poll: time.Millisecond})
		f.Run(ctx, func([]byte) {
			if n++; n == 100_000 {
				cancel()
			}
		})
	}
}
