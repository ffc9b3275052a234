package adminapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// slowBackend is a Backend whose Submit costs work on the test clock.
type slowBackend struct {
	*fakeBackend
	clk  *testclock.Clock
	work time.Duration
}

func (b slowBackend) Submit(ev Event, id string) (Accepted, []Found) {
	b.clk.Advance(b.work)
	return b.fakeBackend.Submit(ev, id)
}

// TestEventIntakeIsPaced: with 10% of one CPU (a 10 ms bucket) and events
// that cost 10 ms each, two are taken at once and the third waits, its
// answer with it, until the budget has earned back the second's debt.
func TestEventIntakeIsPaced(t *testing.T) {
	clk := testclock.New(testNow)
	p := pace.New(pace.Config{Fraction: 0.1, Procs: func() int { return 1 }, Now: clk.Now, After: clk.After,
		CPU: func() (time.Duration, bool) { return clk.Now().Sub(testNow), true }}) // the test clock's work stands in for CPU time
	var backend *fakeBackend
	f := newFixture(t, func(c *Config) {
		backend = c.Backend.(*fakeBackend)
		c.Backend = slowBackend{fakeBackend: backend, clk: clk, work: 10 * time.Millisecond}
		c.Now, c.Pace = clk.Now, p
	})
	const body = `{"client":"10.1.2.3","type":"edr.malware"}`
	for range 2 {
		wantStatus(t, f.do("POST", "/v1/events", body), http.StatusAccepted)
	}
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() { answered <- f.do("POST", "/v1/events", body) }()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Timers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the third event did not wait for the budget")
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(backend.submissions()); n != 2 {
		t.Fatalf("%d events submitted while the third waits, want 2", n)
	}
	clk.Advance(91 * time.Millisecond) // 9 ms of debt at 10%
	select {
	case rec := <-answered:
		wantStatus(t, rec, http.StatusAccepted)
	case <-time.After(10 * time.Second):
		t.Fatal("the third event still waits once the budget allows it")
	}
	if got := p.Waited(pace.Event); got < 90*time.Millisecond {
		t.Fatalf("event wait %v, want about 90ms", got)
	}
}

// TestEventIntakeWaitIsBounded: an event waits for a spent budget no
// longer than intakeMaxWait, then is taken: a sender must never see the
// server's write timeout for a storm.
func TestEventIntakeWaitIsBounded(t *testing.T) {
	defer func(d time.Duration) { intakeMaxWait = d }(intakeMaxWait)
	intakeMaxWait = 20 * time.Millisecond
	clk := testclock.New(testNow) // never moved: the budget stays spent
	p := pace.New(pace.Config{Fraction: 0.1, Procs: func() int { return 1 }, Now: clk.Now, After: clk.After})
	p.Charge(pace.Event, time.Hour)
	f := newFixture(t, func(c *Config) { c.Now, c.Pace = clk.Now, p })
	wantStatus(t, f.do("POST", "/v1/events", `{"client":"10.1.2.3","type":"edr.malware"}`), http.StatusAccepted)
	if n := len(f.backend.submissions()); n != 1 {
		t.Fatalf("%d events submitted, want 1", n)
	}
}
