package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testlog"
)

// A Sync commits at once: the writer's tick is an hour away.
func TestWriterSyncCommitsAtOnce(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	w := s.NewWriter(time.Hour)
	defer w.Close()
	w.Put(KindTags, Record{Key: "10.0.0.1"})
	w.Put(KindBlocks, Record{Key: "203.0.113.7"})
	if err := w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := keys(mustLoad(t, s, KindTags)); len(got) != 1 {
		t.Errorf("tags after Sync = %v, want 10.0.0.1", got)
	}
	if got := keys(mustLoad(t, s, KindBlocks)); len(got) != 1 {
		t.Errorf("blocks after Sync = %v, want 203.0.113.7", got)
	}
	if err := w.Sync(context.Background()); err != nil {
		t.Errorf("Sync with nothing queued: %v", err)
	}
}

// Concurrent Syncs share commits: while one commit runs (a slow fsync
// here), the changes queued meanwhile go together in the next.
func TestWriterSyncSharesCommits(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	w := s.newWriter(time.Hour, func(ops []op) error {
		time.Sleep(2 * time.Millisecond) // a slow disk's fsync
		return s.apply(ops)
	})
	defer w.Close()
	const writers, rounds = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for g := range writers {
		wg.Go(func() {
			for i := range rounds {
				w.Put(KindTags, Record{Key: fmt.Sprintf("10.0.%d.%d", g, i)})
				errs <- w.Sync(context.Background())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(mustLoad(t, s, KindTags)); got != writers*rounds {
		t.Errorf("%d tags stored, want %d", got, writers*rounds)
	}
	w.mu.Lock()
	batches := w.gen - 1
	w.mu.Unlock()
	if batches*4 > writers*rounds {
		t.Errorf("%d commits for %d Syncs of %d concurrent writers: they did not share commits", batches, writers*rounds, writers)
	}
}

// A failing commit fails the Syncs waiting for it and makes Err say why,
// logged once however often it fails; the changes stay queued, and once
// writes succeed again a Sync commits them.
func TestWriterSyncReportsFailuresAndRecovers(t *testing.T) {
	var log testlog.Recorder
	s := openTest(t, t.TempDir(), Options{Logf: log.Logf})
	var mu sync.Mutex
	full := true
	w := s.newWriter(time.Hour, func(ops []op) error {
		mu.Lock()
		defer mu.Unlock()
		if full {
			return fmt.Errorf("state: write: %w", syscall.ENOSPC)
		}
		return s.apply(ops)
	})
	defer w.Close()

	for i := range 3 {
		w.Put(KindBlocks, Record{Key: fmt.Sprintf("203.0.113.%d", i)})
		if err := w.Sync(context.Background()); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Sync on a full disk: %v, want ENOSPC", err)
		}
	}
	if err := w.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Err on a full disk = %v, want ENOSPC", err)
	}
	if w.Failures() != 3 {
		t.Errorf("Failures = %d, want 3", w.Failures())
	}
	if n := len(log.Lines()); n != 1 || !log.Contains("writes failing") {
		t.Errorf("log = %q, want one line saying writes fail", log.String())
	}

	mu.Lock()
	full = false
	mu.Unlock()
	if err := w.Sync(context.Background()); err != nil {
		t.Fatalf("Sync once the disk has room: %v", err)
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err after a good commit = %v, want nil", err)
	}
	if got := keys(mustLoad(t, s, KindBlocks)); len(got) != 3 {
		t.Errorf("blocks once writes succeed = %v, want the three queued while they failed", got)
	}
	if !log.Contains("writes succeeding again") {
		t.Errorf("the recovery was not logged: %q", log.String())
	}
}

// A Sync waits for the commit that took its changes, even when nothing is
// pending any more, and gives up when its context ends.
func TestWriterSyncWaitsForTheCommitUnderWay(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	w := s.newWriter(time.Hour, func(ops []op) error {
		close(entered)
		<-release
		return s.apply(ops)
	})
	defer w.Close()
	w.Put(KindAllow, Record{Key: "example.org"})
	flushed := make(chan error)
	go func() { flushed <- w.Flush() }()
	<-entered // the change is taken: nothing is pending

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync while the commit of its change hangs: %v, want the deadline", err)
	}
	close(release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(context.Background()); err != nil {
		t.Errorf("Sync after the commit: %v", err)
	}
}

// A Sync after Close whose changes the last flush could not write gets
// ErrClosed rather than waiting for a commit that will never come.
func TestWriterSyncAfterClose(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	w := s.newWriter(time.Hour, func([]op) error { return errors.New("disk gone") })
	w.Put(KindAllow, Record{Key: "example.org"})
	if err := w.Close(); err == nil {
		t.Fatal("Close with a failing commit succeeded")
	}
	if err := w.Sync(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close = %v, want ErrClosed", err)
	}
}
