package validate_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/fixtures"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// conditionTimeout bounds waits for something that must happen; it is never
// reached unless the behaviour under test is broken.
const conditionTimeout = 10 * time.Second

var decisionID = regexp.MustCompile(`^cip-[0-9a-f]{12}$`)

// unknownIP is a public IP without a fixture: the fake calls it clean.
func unknownIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{45, 83, 1, byte(i)}) }

// newFake starts the fake API on loopback with the fixtures and a client for
// it: no rate limit, one attempt, tiny backoffs.
func newFake(t *testing.T) (*fakeapi.Server, *criminalip.Client) {
	t.Helper()
	fake, url := fakeapitest.Start(t)
	c, err := criminalip.New(criminalip.Config{APIKey: fakeapitest.Key, BaseURL: url, Rate: -1, MaxAttempts: 1,
		BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return fake, c
}

// newQueue starts a queue that is stopped when the test ends.
func newQueue(t *testing.T, cfg validate.Config) *validate.Queue {
	t.Helper()
	if cfg.Cache == nil {
		cfg.Cache = verdicts.New(0, verdicts.TTLs{})
	}
	q := validate.New(cfg)
	q.Start()
	t.Cleanup(q.Stop)
	return q
}

// wait is Wait bounded by conditionTimeout, failing the test on a timeout.
func wait(t *testing.T, q *validate.Queue, ip netip.Addr) verdicts.Verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeout)
	defer cancel()
	v, ok := q.Wait(ctx, ip)
	if !ok {
		t.Fatalf("no verdict for %s", ip)
	}
	return v
}

// within runs f and fails the test if it does not return: it is how tests
// check that calls meant never to block do not.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(conditionTimeout):
		t.Fatalf("%s blocked", what)
	}
}

func factors(v verdicts.Verdict) []string {
	out := make([]string, 0, len(v.Reasons))
	for _, r := range v.Reasons {
		out = append(out, string(r.Factor))
	}
	slices.Sort(out)
	return out
}

// TestManifestVerdicts validates every fixture IP over real HTTP and
// compares each verdict with the manifest.
func TestManifestVerdicts(t *testing.T) {
	fake, client := newFake(t)
	var fresh atomic.Int32
	// The zero Policy stands for risk.DefaultPolicy, which the manifest
	// describes.
	q := newQueue(t, validate.Config{Client: client, OnVerdict: func(verdicts.Verdict, validate.Job) { fresh.Add(1) }})

	var ips []netip.Addr
	for _, e := range fixtures.Manifest(t) {
		if e.IP == "" {
			continue
		}
		ip := netip.MustParseAddr(e.IP)
		ips = append(ips, ip)
		if r := q.Submit(validate.Job{IP: ip, Priority: validate.High}); r != validate.Queued {
			t.Errorf("%s: Submit = %v, want queued", e.File, r)
		}
	}
	i := 0
	for _, e := range fixtures.Manifest(t) {
		if e.IP == "" {
			continue
		}
		v := wait(t, q, ips[i])
		i++
		want := slices.Clone(e.Reasons)
		slices.Sort(want)
		if string(v.Outcome) != e.Verdict || v.Suspicious() != e.Suspicious || !slices.Equal(factors(v), want) {
			t.Errorf("%s: %s %v, manifest says %s %v", e.File, v.Outcome, factors(v), e.Verdict, want)
		}
		if v.Suspicious() != decisionID.MatchString(v.Decision) {
			t.Errorf("%s: %s verdict with decision %q", e.File, v.Outcome, v.Decision)
		}
		if v.IP != ips[i-1] || v.Checked.IsZero() || !v.Expires.After(v.Checked) {
			t.Errorf("%s: verdict %+v", e.File, v)
		}
	}
	for _, ip := range ips {
		if r := q.Submit(validate.Job{IP: ip}); r != validate.Cached {
			t.Errorf("Submit(%s) after its verdict = %v, want cached", ip, r)
		}
	}
	if n := fake.Calls(); n != len(ips) {
		t.Errorf("%d API calls for %d IPs", n, len(ips))
	}

	// Hints never reach the cached verdict: an IP the API finds clean stays
	// clean when the connection that asked went to the SSH port (the
	// engine turns the hint into that connection's finding).
	ssh := unknownIP(22)
	q.Submit(validate.Job{IP: ssh, Hints: risk.Hints{Port: 22}})
	if v := wait(t, q, ssh); v.Outcome != verdicts.Clean || len(v.Reasons) != 0 {
		t.Errorf("port 22 hint: %s %v, want a clean verdict: the port is not the IP's", v.Outcome, factors(v))
	}

	q.Stop() // OnVerdict runs after the waiters are released; Stop waits for it
	if n := int(fresh.Load()); n != len(ips)+1 {
		t.Errorf("OnVerdict called %d times for %d IPs", n, len(ips)+1)
	}
}

// TestErrorFixtures replays each error fixture with every HTTP status the
// manifest lists: the verdict is an error of the right kind, never clean.
func TestErrorFixtures(t *testing.T) {
	// How the fake serves each error fixture's body with a given status.
	modes := map[string]map[int]fakeapi.Mode{
		"auth":  {401: fakeapi.ModeBadKey, 200: fakeapi.ModeBadKey200},
		"quota": {429: fakeapi.Mode429, 200: fakeapi.ModeQuota200},
		"parse": {200: fakeapi.ModeMalformed},
	}
	kinds := map[string]criminalip.ErrorKind{
		"auth":  criminalip.Kind(criminalip.ErrBadKey),
		"quota": criminalip.Kind(criminalip.ErrQuota),
		"parse": criminalip.Kind(criminalip.ErrBadResponse),
	}
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict != "error" {
			continue
		}
		for _, status := range e.HTTPStatus {
			t.Run(fmt.Sprintf("%s/%d", e.File, status), func(t *testing.T) {
				mode, ok := modes[e.ErrorKind][status]
				if !ok {
					t.Fatalf("no fake mode for error_kind %q served as %d", e.ErrorKind, status)
				}
				fake, client := newFake(t)
				fake.Fault(mode, -1)
				q := newQueue(t, validate.Config{Client: client})
				ip := unknownIP(1)
				q.Submit(validate.Job{IP: ip})
				v := wait(t, q, ip)
				if v.Outcome != verdicts.Error || v.Error != kinds[e.ErrorKind] || v.Decision != "" {
					t.Errorf("verdict %s %q, want error %q", v.Outcome, v.Error, kinds[e.ErrorKind])
				}
				if e.CacheAsClean != nil && !*e.CacheAsClean {
					if cached, _ := q.Wait(context.Background(), ip); cached.Outcome == verdicts.Clean {
						t.Error("error cached as clean")
					}
				}
			})
		}
	}
}

// TestAPIErrorCachedNotClean: an API outage gives an error verdict that is
// cached for the error TTL, so the API is not asked again meanwhile, and
// then asked again.
func TestAPIErrorCachedNotClean(t *testing.T) {
	fake, client := newFake(t)
	fake.Fault(fakeapi.Mode5xx, -1)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := testclock.New(now)
	cache := verdicts.New(0, verdicts.TTLs{Error: 30 * time.Second})
	q := newQueue(t, validate.Config{Client: client, Cache: cache, Now: clock.Now})

	ip := netip.MustParseAddr("45.83.0.21") // a Critical score, were the API up
	q.Submit(validate.Job{IP: ip})
	v := wait(t, q, ip)
	if v.Outcome != verdicts.Error || v.Error != criminalip.KindTransient || !v.Expires.Equal(now.Add(30*time.Second)) {
		t.Fatalf("verdict %+v, want a transient error for 30s", v)
	}
	if _, ok := cache.Suspicious(ip, now); ok {
		t.Error("error verdict reported suspicious")
	}
	if r := q.Submit(validate.Job{IP: ip}); r != validate.Cached {
		t.Errorf("Submit during the error TTL = %v, want cached", r)
	}
	if n := fake.CallsFor(ip.String()); n != 1 {
		t.Errorf("%d API calls during the error TTL, want 1", n)
	}
	st := q.Stats()
	if st.APIErrors["transient"] != 1 || st.Verdicts["error"] != 1 || st.Verdicts["clean"] != 0 {
		t.Errorf("stats %+v", st)
	}

	fake.ClearFaults()
	clock.Advance(30 * time.Second)
	if r := q.Submit(validate.Job{IP: ip}); r != validate.Queued {
		t.Fatalf("Submit after the error TTL = %v, want queued", r)
	}
	if v := wait(t, q, ip); v.Outcome != verdicts.Suspicious {
		t.Errorf("after the outage: %s, want suspicious", v.Outcome)
	}
}

// A Recheck job (a retry after a failure) asks the API again while an
// error verdict is cached, and replaces it; a clean or suspicious verdict
// still answers it from the cache.
func TestRecheckBypassesCachedError(t *testing.T) {
	fake, client := newFake(t)
	fake.Fault(fakeapi.Mode5xx, 1)
	cache := verdicts.New(0, verdicts.TTLs{Error: time.Hour})
	fresh := make(chan verdicts.Verdict, 4)
	q := newQueue(t, validate.Config{Client: client, Cache: cache,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { fresh <- v }})

	ip := netip.MustParseAddr("45.83.0.21")
	q.Submit(validate.Job{IP: ip})
	if v := <-fresh; v.Outcome != verdicts.Error {
		t.Fatalf("first verdict %+v, want an error", v)
	}
	if r := q.Submit(validate.Job{IP: ip}); r != validate.Cached {
		t.Fatalf("Submit with the error cached = %v, want cached", r)
	}
	if r := q.Submit(validate.Job{IP: ip, Recheck: true}); r != validate.Queued {
		t.Fatalf("Recheck with the error cached = %v, want queued", r)
	}
	select {
	case v := <-fresh:
		if v.Outcome != verdicts.Suspicious {
			t.Fatalf("recheck verdict %+v, want suspicious", v)
		}
	case <-time.After(conditionTimeout):
		t.Fatal("no verdict for the recheck")
	}
	if v, ok := cache.Get(ip, time.Now()); !ok || v.Outcome != verdicts.Suspicious {
		t.Errorf("cache holds %+v, want the suspicious verdict", v)
	}
	if r := q.Submit(validate.Job{IP: ip, Recheck: true}); r != validate.Cached {
		t.Errorf("Recheck with a suspicious verdict cached = %v, want cached", r)
	}
	if n := fake.CallsFor(ip.String()); n != 2 {
		t.Errorf("%d API calls, want 2", n)
	}
}

func TestDeduplication(t *testing.T) {
	fake, client := newFake(t)
	fake.SetDelay(20 * time.Millisecond) // so that most Submits find it in flight
	q := newQueue(t, validate.Config{Client: client})
	ip := netip.MustParseAddr("45.83.0.71")

	const n = 50
	results := make(chan validate.Result, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeout)
	defer cancel()
	for i := range n {
		wg.Go(func() {
			results <- q.Submit(validate.Job{IP: ip, Priority: validate.Priority(i % 2)})
			if _, ok := q.Wait(ctx, ip); !ok {
				t.Errorf("no verdict for %s", ip)
			}
		})
	}
	wg.Wait()
	close(results)
	count := map[validate.Result]int{}
	for r := range results {
		count[r]++
	}
	if count[validate.Queued] != 1 || count[validate.Dropped] != 0 {
		t.Errorf("results %v, want one queued and the rest in flight or cached", count)
	}
	if calls := fake.CallsFor(ip.String()); calls != 1 {
		t.Errorf("%d API calls for %d Submits of one IP", calls, n)
	}
	st := q.Stats()
	if st.Submitted["queued"] != 1 || st.Submitted["in_flight"]+st.Submitted["cached"] != n-1 {
		t.Errorf("stats %+v", st.Submitted)
	}
}

// gate lets a test hold the first Report call until it has queued more.
type gate struct {
	validate.Reporter
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func newGate(r validate.Reporter) *gate {
	return &gate{Reporter: r, started: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.started)
		<-g.release
	}
	return g.Reporter.Report(ctx, ip)
}

// TestHighBeforeLow holds the only worker on a first job, queues Low jobs
// then High ones, and checks the order in which the verdicts come.
func TestHighBeforeLow(t *testing.T) {
	_, client := newFake(t)
	g := newGate(client)
	var mu sync.Mutex
	var order []string
	var promoted validate.Job
	done := make(chan struct{}, 16)
	q := newQueue(t, validate.Config{Client: g, Workers: 1, OnVerdict: func(v verdicts.Verdict, j validate.Job) {
		mu.Lock()
		order = append(order, j.Name)
		if j.Name == "L2" {
			promoted = j
		}
		mu.Unlock()
		done <- struct{}{}
	}})

	ip := map[string]netip.Addr{}
	submit := func(name string, p validate.Priority) validate.Result {
		if _, ok := ip[name]; !ok {
			ip[name] = unknownIP(len(ip) + 1)
		}
		return q.Submit(validate.Job{IP: ip[name], Priority: p, Name: name})
	}
	submit("L0", validate.Low)
	<-g.started
	for _, name := range []string{"L1", "L2", "L3"} {
		submit(name, validate.Low)
	}
	submit("H1", validate.High)
	submit("H2", validate.High)
	if r := submit("L2", validate.High); r != validate.InFlight {
		t.Errorf("High Submit of an IP queued Low = %v, want in flight", r)
	}
	submit("H3", validate.High)
	if h, l := q.Depth(); h != 4 || l != 2 {
		t.Errorf("Depth = %d high, %d low; want 4 and 2", h, l)
	}
	close(g.release)
	for range 7 {
		select {
		case <-done:
		case <-time.After(conditionTimeout):
			t.Fatalf("verdicts so far: %v", order)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"L0", "H1", "H2", "L2", "H3", "L1", "L3"}; !slices.Equal(order, want) {
		t.Errorf("verdict order %v, want %v", order, want)
	}
	if promoted.Priority != validate.High {
		t.Errorf("the promoted job reached OnVerdict as %+v, want its High Submit", promoted)
	}
	if h, l := q.Depth(); h != 0 || l != 0 {
		t.Errorf("Depth after draining = %d, %d", h, l)
	}
}

// blocker is a Reporter that holds every call until released, or until the
// queue cancels it.
type blocker struct {
	started chan netip.Addr
	release chan struct{}
	calls   atomic.Int32
}

func newBlocker() *blocker {
	return &blocker{started: make(chan netip.Addr, 64), release: make(chan struct{})}
}

func (b *blocker) Report(ctx context.Context, ip netip.Addr) (*criminalip.Report, error) {
	b.calls.Add(1)
	b.started <- ip
	select {
	case <-b.release:
		return &criminalip.Report{IP: ip.String()}, nil
	case <-ctx.Done():
		return nil, &criminalip.Error{Class: criminalip.ErrTransient, IP: ip.String(), Err: ctx.Err()}
	}
}

func (b *blocker) waitStarted(t *testing.T) netip.Addr {
	t.Helper()
	select {
	case ip := <-b.started:
		return ip
	case <-time.After(conditionTimeout):
		t.Fatal("no Report call started")
	}
	return netip.Addr{}
}

func TestQueueFull(t *testing.T) {
	b := newBlocker()
	q := newQueue(t, validate.Config{Client: b, Workers: 1, QueueSize: 2})
	q.Submit(validate.Job{IP: unknownIP(1)})
	b.waitStarted(t) // the only worker is busy from here on

	for _, tc := range []struct {
		ip       int
		priority validate.Priority
		want     validate.Result
	}{
		{2, validate.Low, validate.Queued},
		{3, validate.Low, validate.Queued},
		{4, validate.Low, validate.Dropped},
		{5, validate.High, validate.Queued},
		{6, validate.High, validate.Queued},
		{7, validate.High, validate.Dropped},
		{3, validate.High, validate.InFlight}, // High is full: stays queued Low
		{1, validate.Low, validate.InFlight},
	} {
		within(t, "Submit", func() {
			if r := q.Submit(validate.Job{IP: unknownIP(tc.ip), Priority: tc.priority}); r != tc.want {
				t.Errorf("Submit %s priority %d = %v, want %v", unknownIP(tc.ip), tc.priority, r, tc.want)
			}
		})
	}
	if h, l := q.Depth(); h != 2 || l != 2 {
		t.Errorf("Depth = %d, %d; want 2, 2", h, l)
	}
	if _, ok := q.Wait(context.Background(), unknownIP(4)); ok {
		t.Error("Wait for a dropped IP returned a verdict")
	}

	close(b.release)
	for _, i := range []int{1, 2, 3, 5, 6} {
		if v := wait(t, q, unknownIP(i)); v.Outcome != verdicts.Clean {
			t.Errorf("%s: %s", unknownIP(i), v.Outcome)
		}
	}
	if r := q.Submit(validate.Job{IP: unknownIP(4)}); r != validate.Queued {
		t.Errorf("Submit once there is room = %v, want queued", r)
	}
	wait(t, q, unknownIP(4))
	if n := b.calls.Load(); n != 6 {
		t.Errorf("%d Report calls, want 6", n)
	}
	st := q.Stats()
	if st.Submitted["dropped"] != 2 || st.Submitted["queued"] != 6 || st.Submitted["in_flight"] != 2 || st.Verdicts["clean"] != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestWaitCancelled(t *testing.T) {
	b := newBlocker()
	q := newQueue(t, validate.Config{Client: b, Workers: 1})
	ip := unknownIP(1)
	q.Submit(validate.Job{IP: ip})
	b.waitStarted(t)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	within(t, "Wait with a cancelled context", func() {
		if _, ok := q.Wait(cancelled, ip); ok {
			t.Error("Wait with a cancelled context returned a verdict")
		}
	})
	within(t, "Wait for an IP nobody asked about", func() {
		if _, ok := q.Wait(context.Background(), unknownIP(2)); ok {
			t.Error("Wait for an unknown IP returned a verdict")
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan bool)
	go func() {
		_, ok := q.Wait(ctx, ip)
		got <- ok
	}()
	cancel()
	select {
	case ok := <-got:
		if ok {
			t.Error("Wait returned a verdict after its context was cancelled")
		}
	case <-time.After(conditionTimeout):
		t.Fatal("Wait did not return when its context was cancelled")
	}
	close(b.release)
}

func TestNotPublic(t *testing.T) {
	b := newBlocker()
	q := newQueue(t, validate.Config{Client: b})
	for _, s := range []string{"10.0.0.1", "127.0.0.1", "100.64.0.1", "192.0.2.1", "::1", "fe80::1", "::ffff:192.168.1.1", "224.0.0.1"} {
		if r := q.Submit(validate.Job{IP: netip.MustParseAddr(s), Priority: validate.High}); r != validate.Dropped {
			t.Errorf("Submit(%s) = %v, want dropped", s, r)
		}
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("%d Report calls for non-public IPs", n)
	}
}

// refuser is a Reporter that refuses every IP as not public.
type refuser struct{}

func (refuser) Report(_ context.Context, ip netip.Addr) (*criminalip.Report, error) {
	return nil, &criminalip.Error{Class: criminalip.ErrNotPublic, IP: ip.String()}
}

func TestRefusedAsNotPublicIsNotCached(t *testing.T) {
	cache := verdicts.New(0, verdicts.TTLs{})
	var fresh atomic.Int32
	q := newQueue(t, validate.Config{Client: refuser{}, Cache: cache,
		OnVerdict: func(verdicts.Verdict, validate.Job) { fresh.Add(1) }})
	ip := unknownIP(1)
	q.Submit(validate.Job{IP: ip})
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeout)
	defer cancel()
	if v, ok := q.Wait(ctx, ip); ok {
		t.Errorf("verdict %+v for a refused IP", v)
	}
	if cache.Len() != 0 || fresh.Load() != 0 {
		t.Errorf("refused IP: %d cached, %d OnVerdict calls", cache.Len(), fresh.Load())
	}
	if st := q.Stats(); st.Discarded != 1 || st.Verdicts["error"] != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestStop: workers return, calls in flight are cancelled, queued jobs are
// discarded and their waiters released, and no goroutine is left behind.
func TestStop(t *testing.T) {
	cache := verdicts.New(0, verdicts.TTLs{}) // its sweeper outlives the queue by design
	before := runtime.NumGoroutine()

	b := newBlocker()
	var fresh atomic.Int32
	q := validate.New(validate.Config{Client: b, Cache: cache, Workers: 2,
		OnVerdict: func(verdicts.Verdict, validate.Job) { fresh.Add(1) }})
	q.Start()
	for i := 1; i <= 5; i++ {
		q.Submit(validate.Job{IP: unknownIP(i)})
	}
	running := b.waitStarted(t)
	b.waitStarted(t)

	waiters := make(chan bool, 2)
	for _, ip := range []netip.Addr{running, unknownIP(5)} {
		go func() {
			_, ok := q.Wait(context.Background(), ip)
			waiters <- ok
		}()
	}
	within(t, "Stop", q.Stop)
	for range 2 {
		select {
		case ok := <-waiters:
			if ok {
				t.Error("a waiter got a verdict from a stopped queue")
			}
		case <-time.After(conditionTimeout):
			t.Fatal("Stop left a waiter waiting")
		}
	}
	within(t, "second Stop", q.Stop)
	if r := q.Submit(validate.Job{IP: unknownIP(9)}); r != validate.Dropped {
		t.Errorf("Submit after Stop = %v, want dropped", r)
	}
	if h, l := q.Depth(); h != 0 || l != 0 || cache.Len() != 0 || fresh.Load() != 0 {
		t.Errorf("after Stop: depth %d/%d, %d cached, %d verdicts", h, l, cache.Len(), fresh.Load())
	}
	if st := q.Stats(); st.Discarded != 5 {
		t.Errorf("Discarded = %d, want 5 (2 cancelled, 3 queued)", st.Discarded)
	}

	deadline := time.Now().Add(conditionTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Stop:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func TestStopBeforeStart(t *testing.T) {
	q := validate.New(validate.Config{Client: newBlocker(), Cache: verdicts.New(0, verdicts.TTLs{})})
	q.Submit(validate.Job{IP: unknownIP(1)})
	q.Stop()
	q.Start()
	if r := q.Submit(validate.Job{IP: unknownIP(2)}); r != validate.Dropped {
		t.Errorf("Submit to a stopped queue = %v, want dropped", r)
	}
	if st := q.Stats(); st.Discarded != 1 {
		t.Errorf("Discarded = %d, want 1", st.Discarded)
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[validate.Result]string{validate.Queued: "queued", validate.Cached: "cached",
		validate.InFlight: "in_flight", validate.Dropped: "dropped"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", int(r), r.String(), want)
		}
	}
}

func BenchmarkSubmitCached(b *testing.B) {
	cache := verdicts.New(0, verdicts.TTLs{})
	q := validate.New(validate.Config{Client: newBlocker(), Cache: cache})
	ip := unknownIP(1)
	cache.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Clean}, time.Now())
	job := validate.Job{IP: ip, Client: netip.MustParseAddr("10.1.2.3"), Name: "example.com."}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if q.Submit(job) != validate.Cached {
				b.Fatal("not cached")
			}
		}
	})
}

// A job the budget refuses makes no call and leaves nothing cached: the IP
// is asked about again when seen after the reset. A quota error from the
// API exhausts the budget until the reset.
func TestBudgetRefusesWithoutCaching(t *testing.T) {
	fake, client := newFake(t)
	clock := testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	b := budget.New(budget.Config{Limit: 1, Period: budget.Day, Loc: time.UTC}, budget.Saved{}, clock.Now())
	cache := verdicts.New(0, verdicts.TTLs{})
	// A refused job is not cached, so Wait can miss it once it is done:
	// the verdicts are read as the worker hands them out.
	got := make(chan verdicts.Verdict, 8)
	q := newQueue(t, validate.Config{Client: client, Cache: cache, Now: clock.Now, Budget: b,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { got <- v }})
	verdictOf := func(ip netip.Addr) verdicts.Verdict {
		t.Helper()
		q.Submit(validate.Job{IP: ip})
		deadline := time.After(conditionTimeout)
		for {
			select {
			case v := <-got:
				if v.IP == ip {
					return v
				}
			case <-deadline:
				t.Fatalf("no verdict for %s", ip)
			}
		}
	}

	if v := verdictOf(unknownIP(1)); v.Outcome != verdicts.Clean {
		t.Fatalf("first call: %+v, want clean", v)
	}
	if v := verdictOf(unknownIP(2)); v.Outcome != verdicts.Error || v.Error != criminalip.KindBudget {
		t.Fatalf("past the budget: %+v, want a budget error", v)
	}
	if fake.Calls() != 1 || cache.Has(unknownIP(2), clock.Now()) {
		t.Fatalf("past the budget: %d calls, cached %v; want 1 call, nothing cached", fake.Calls(), cache.Has(unknownIP(2), clock.Now()))
	}

	clock.Advance(24 * time.Hour)
	fake.Fault(fakeapi.Mode429, 1)
	verdictOf(unknownIP(2))
	if st := b.Status(clock.Now()); !st.Exhausted || st.Remaining != 0 {
		t.Errorf("after a quota error: %+v, want exhausted", st)
	}
	if v := verdictOf(unknownIP(3)); v.Error != criminalip.KindBudget || fake.Calls() != 2 {
		t.Errorf("after a quota error: %+v and %d calls; want a budget error and no call", v, fake.Calls())
	}
}
