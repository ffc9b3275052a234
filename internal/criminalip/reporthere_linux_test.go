package criminalip_test

import (
	"context"
	"errors"
	"net/http/httptrace"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
)

// TestReportHere: ReportHere makes the call on the calling goroutine (the
// HTTP trace's hooks that run on the calling goroutine see the caller's
// locked thread), shares it with Report's callers for the same IP, and
// refuses a private IP without calling.
func TestReportHere(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	fake.SetDelay(200 * time.Millisecond)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	caller := unix.Gettid()
	var hookTid atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GetConn: func(string) { hookTid.Store(int64(unix.Gettid())) },
	})
	others := make(chan error, 10)
	go func() {
		time.Sleep(50 * time.Millisecond) // while ReportHere's call is under way
		for range cap(others) {
			go func() { _, err := c.Report(context.Background(), clean); others <- err }()
		}
	}()
	rep, err := c.ReportHere(ctx, clean)
	if err != nil || rep.IP != clean.String() {
		t.Fatalf("ReportHere = %v, %v", rep, err)
	}
	if got := hookTid.Load(); got != int64(caller) {
		t.Errorf("the call ran on thread %d, not the caller's %d", got, caller)
	}
	for range cap(others) {
		if err := <-others; err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.CallsFor(clean.String()); got > 2 {
		t.Errorf("API calls for %s = %d: Report's callers did not share ReportHere's call", clean, got)
	}
	if _, err := c.ReportHere(context.Background(), netip.MustParseAddr("10.0.0.1")); !errors.Is(err, criminalip.ErrNotPublic) {
		t.Errorf("ReportHere(10.0.0.1) = %v, want ErrNotPublic", err)
	}
}

// recordingMeter records the calls a Meter gets.
type recordingMeter struct{ calls []string }

func (m *recordingMeter) Wait()    { m.calls = append(m.calls, "wait") }
func (m *recordingMeter) Compute() { m.calls = append(m.calls, "compute") }

// TestReportHereTellsTheMeter: ReportHere tells a Meter in its context
// when the call waits (the rate limit, the HTTP exchange) and when it
// computes again, in pairs; Report, whose call runs on a goroutine of its
// own, tells it nothing.
func TestReportHereTellsTheMeter(t *testing.T) {
	_, c := newFake(t, criminalip.Config{})
	m := &recordingMeter{}
	if _, err := c.ReportHere(criminalip.WithMeter(context.Background(), m), clean); err != nil {
		t.Fatal(err)
	}
	if len(m.calls) < 4 || len(m.calls)%2 != 0 {
		t.Fatalf("meter calls %v; want wait/compute pairs for the rate limit and the exchange", m.calls)
	}
	for i, call := range m.calls {
		if want := []string{"wait", "compute"}[i%2]; call != want {
			t.Fatalf("meter calls %v: not in wait, compute pairs", m.calls)
		}
	}
	other := &recordingMeter{}
	if _, err := c.Report(criminalip.WithMeter(context.Background(), other), netip.MustParseAddr("45.83.0.11")); err != nil {
		t.Fatal(err)
	}
	if len(other.calls) != 0 {
		t.Fatalf("Report told the meter %v; its call runs on another goroutine", other.calls)
	}
}
