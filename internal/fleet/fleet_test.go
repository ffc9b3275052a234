package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("2001:db8::2")
)

func TestURL(t *testing.T) {
	tests := []struct {
		url     string
		cluster bool   // a ClusterClient, else a Client
		addr    string // the Client's address, if one
		err     string // part of the error, if any
	}{
		{url: "redis://localhost", addr: "localhost:6379"},
		{url: "redis://user:s3cret@10.0.0.1:6380/2", addr: "10.0.0.1:6380"},
		{url: "rediss://:s3cret@redis.example:6380", addr: "redis.example:6380"},
		{url: "unix:///run/redis/redis.sock?db=3", addr: "/run/redis/redis.sock"},
		{url: "redis://:s3cret@h1:6379,h2:6379,[2001:db8::1]", cluster: true},
		{url: "redis-sentinel://:s3cret@h1:26379,h2/mymaster?db=1&sentinel_password=s3cret2", addr: "FailoverClient"},

		{url: "", err: "no URL"},
		{url: "localhost:6379", err: "no scheme"},
		{url: "http://user:s3cret@h", err: "unknown scheme"},
		{url: "redis://user:s3cret@h/x", err: "invalid database number"},
		{url: "redis://user:s3cret@h?pool_sise=3", err: "unexpected option"},
		{url: "redis://user:s3/cret@h", err: "not a valid URL"},
		{url: "redis://user:s3cret@h:x", err: "not a valid URL"},
		{url: "redis://h1,h2/3", err: "only database 0"},
		{url: "redis://h1,,h2", err: `host ""`},
		{url: "redis-sentinel://:s3cret@h1,h2", err: "master name"},
		{url: "redis-sentinel://:s3cret@h1/m?password=s3cret", err: "option password is not accepted"},
		{url: "redis-sentinel:///mymaster", err: "no sentinel address"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			cfg := Config{URL: tt.url}
			for _, s := range []string{cfg.String(), fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg)} {
				if strings.Contains(s, "s3cret") {
					t.Errorf("the password shows in %q", s)
				}
			}
			// newClient is Open's first step, and does not dial.
			c, err := newClient(tt.url, time.Second)
			if tt.err != "" {
				if err == nil {
					c.Close()
					t.Fatalf("accepted, want an error with %q", tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q, want %q in it", err, tt.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the password shows in the error %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch c := c.(type) {
			case *redis.ClusterClient:
				if !tt.cluster {
					t.Errorf("a cluster client, want a client for %s", tt.addr)
				}
			case *redis.Client:
				if tt.cluster || c.Options().Addr != tt.addr {
					t.Errorf("a client for %s, want cluster %v / %s", c.Options().Addr, tt.cluster, tt.addr)
				}
			}
		})
	}
}

func TestVerdicts(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()

	if _, ok, err := a.GetVerdict(ctx, ip1); ok || err != nil {
		t.Fatalf("GetVerdict before any Put: ok %v, err %v", ok, err)
	}
	if err := a.PutVerdict(ctx, ip1, []byte(`{"outcome":"clean"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	mapped := netip.AddrFrom16(ip1.As16()) // ::ffff:192.0.2.1, the same IP
	data, ok, err := b.GetVerdict(ctx, mapped)
	if err != nil || !ok || string(data) != `{"outcome":"clean"}` {
		t.Fatalf("GetVerdict on the other node: %q, %v, %v", data, ok, err)
	}
	if err := b.DeleteVerdict(ctx, ip1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.GetVerdict(ctx, ip1); ok {
		t.Error("the verdict is still there after DeleteVerdict")
	}

	if err := a.PutVerdict(ctx, ip2, []byte("short"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.GetVerdict(ctx, ip2); !ok {
		t.Fatal("the verdict is missing right after PutVerdict")
	}
	eventually(t, 5*time.Second, "the verdict has not expired", func() bool {
		_, ok, err := b.GetVerdict(ctx, ip2)
		return !ok && err == nil
	})

	if err := a.PutVerdict(ctx, netip.Addr{}, nil, time.Hour); err == nil {
		t.Error("PutVerdict accepted the zero IP")
	}
}

func TestClaims(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()

	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, f := range []*Fleet{a, b, a, b} {
		wg.Go(func() {
			won, err := f.Claim(ctx, ip1, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if won {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims won, want 1", wins.Load())
	}
	winner, loser := a, b
	if won, _ := a.Claim(ctx, ip2, time.Minute); !won {
		t.Fatal("a cannot claim a free IP")
	}
	if won, _ := b.Claim(ctx, ip2, time.Minute); won {
		t.Fatal("b won a claim that a holds")
	}

	// A release by the node that does not hold the claim changes nothing.
	if err := loser.Release(ctx, ip2); err != nil {
		t.Fatal(err)
	}
	if won, _ := loser.Claim(ctx, ip2, time.Minute); won {
		t.Fatal("the loser's Release freed the winner's claim")
	}

	// The loser waits for the winner's verdict.
	got := make(chan []byte, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		data, ok, err := loser.WaitVerdict(wctx, ip2, 20*time.Millisecond)
		if err != nil || !ok {
			t.Errorf("WaitVerdict: ok %v, err %v", ok, err)
		}
		got <- data
	}()
	time.Sleep(100 * time.Millisecond)
	if err := winner.PutVerdict(ctx, ip2, []byte("verdict"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := winner.Release(ctx, ip2); err != nil {
		t.Fatal(err)
	}
	if data := <-got; string(data) != "verdict" {
		t.Errorf("WaitVerdict returned %q", data)
	}
	if won, _ := loser.Claim(ctx, ip2, time.Minute); !won {
		t.Error("the claim is still held after the winner's Release")
	}

	// A claim that lapses without a verdict ends the wait, so that the
	// waiter can look the IP up itself.
	ip3 := netip.MustParseAddr("198.51.100.3")
	if won, _ := winner.Claim(ctx, ip3, 300*time.Millisecond); !won {
		t.Fatal("cannot claim a free IP")
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if data, ok, err := loser.WaitVerdict(wctx, ip3, 20*time.Millisecond); ok || err != nil {
		t.Errorf("WaitVerdict on a lapsed claim: %q, %v, %v; want no verdict and no error", data, ok, err)
	}
}

func TestRecords(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()

	put := func(kind, key, data string, ttl time.Duration) {
		t.Helper()
		if err := a.Put(ctx, kind, key, []byte(data), ttl); err != nil {
			t.Fatal(err)
		}
	}
	list := func(kind string) string {
		t.Helper()
		m, err := b.List(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(m) // fmt sorts map keys
	}
	put("block", "192.0.2.1", `{"ip":"192.0.2.1"}`, time.Hour)
	put("block", "192.0.2.2", "b:2", 300*time.Millisecond)
	put("allow", "192.0.2.1", "forever", 0)
	put("tag", "10.0.0.1", "", time.Hour)

	if got, want := list("block"), `map[192.0.2.1:[123 34 105 112 34 58 34 49 57 50 46 48 46 50 46 49 34 125] 192.0.2.2:[98 58 50]]`; got != want {
		t.Errorf("blocks: %s, want %s", got, want)
	}
	if got, want := list("allow"), "map[192.0.2.1:[102 111 114 101 118 101 114]]"; got != want {
		t.Errorf("allowlist: %s, want %s", got, want)
	}
	if got, want := list("tag"), "map[10.0.0.1:[]]"; got != want {
		t.Errorf("tags: %s, want %s", got, want)
	}
	if got := list("unused"); got != "map[]" {
		t.Errorf("a kind never used: %s", got)
	}

	eventually(t, 5*time.Second, "the 300ms block is still listed", func() bool {
		return !strings.Contains(list("block"), "192.0.2.2")
	})
	if err := b.Delete(ctx, "block", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if got := list("block"); got != "map[]" {
		t.Errorf("blocks after Delete: %s", got)
	}
	if got := list("allow"); got == "map[]" {
		t.Error("the record without expiry is gone")
	}
	put("allow", "192.0.2.1", "replaced", 0)
	if got := list("allow"); got != "map[192.0.2.1:[114 101 112 108 97 99 101 100]]" {
		t.Errorf("Put did not replace the record: %s", got)
	}
}

// TestPutNewer: a versioned record is replaced only by a later version,
// whichever node writes it and in whichever order; a record without a
// version (Put) is older than every versioned one; an expired record
// counts as none.
func TestPutNewer(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()
	putNewer := func(f *Fleet, v Version, data string, ttl time.Duration) bool {
		t.Helper()
		stored, err := f.PutNewer(ctx, "block", "192.0.2.1", v, []byte(data), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	record := func() Record {
		t.Helper()
		recs, err := b.ListRecords(ctx, "block")
		if err != nil {
			t.Fatal(err)
		}
		return recs["192.0.2.1"]
	}

	if err := a.Put(ctx, "block", "192.0.2.1", []byte("legacy"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if r := record(); string(r.Data) != "legacy" || r.Version != 0 {
		t.Fatalf("a record stored by Put: %+v", r)
	}
	now := time.Now()
	v1 := a.Clock().Stamp(now)
	v2 := b.Clock().Stamp(now) // another node, the same millisecond
	v3 := a.Clock().Stamp(now)
	if !(v1 < v3) || v1 == v2 {
		t.Fatalf("versions %s %s %s: want distinct, and a's in order", v1, v2, v3)
	}
	if !putNewer(a, v1, "one", time.Hour) {
		t.Error("a versioned record did not replace an unversioned one")
	}
	later, earlier := max(v2, v3), min(v2, v3)
	if !putNewer(b, later, "later", time.Hour) {
		t.Error("a later version was not stored")
	}
	if putNewer(a, earlier, "earlier", time.Hour) || putNewer(a, later, "same", time.Hour) {
		t.Error("an earlier or equal version replaced a later one")
	}
	if r := record(); string(r.Data) != "later" || r.Version != later {
		t.Errorf("the record is %+v, want %q at %s", r, "later", later)
	}
	if list, _ := b.List(ctx, "block"); string(list["192.0.2.1"]) != "later" {
		t.Errorf("List: %q", list)
	}

	// A version far ahead expires; then an older one may be stored.
	if !putNewer(a, Version(1)<<62, "far ahead, short", 200*time.Millisecond) {
		t.Fatal("a version far ahead was not stored")
	}
	eventually(t, 5*time.Second, "the expired record still wins", func() bool { return putNewer(a, v1, "after expiry", time.Hour) })
}

// TestClock: a Clock's Versions follow the wall clock, increase even when
// it stands still or goes back, and pass every Version observed.
func TestClock(t *testing.T) {
	c := NewClock("a")
	now := time.UnixMilli(1_800_000_000_000)
	v1 := c.Stamp(now)
	if !v1.Time().Equal(now) {
		t.Errorf("Time() = %s, want %s", v1.Time(), now)
	}
	v2 := c.Stamp(now)
	v3 := c.Stamp(now.Add(-time.Hour))
	if !(v1 < v2 && v2 < v3) {
		t.Errorf("a standing or backward clock: %s %s %s, want increasing", v1, v2, v3)
	}
	ahead := NewClock("b").Stamp(now.Add(time.Minute))
	c.Observe(ahead)
	if v := c.Stamp(now); v <= ahead {
		t.Errorf("after observing %s, Stamp = %s", ahead, v)
	}
	if v := c.Stamp(now.Add(2 * time.Minute)); !v.Time().Equal(now.Add(2 * time.Minute)) {
		t.Errorf("the wall clock ahead again: %s at %s", v, v.Time())
	}
	if s := Version(0xab).String(); s != "00000000000000ab" {
		t.Errorf("String() = %q", s)
	}
}

func TestBus(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()

	got := map[string]chan Message{"a": make(chan Message, 100), "b": make(chan Message, 100)}
	a.Subscribe(func(m Message) { got["a"] <- m })
	b.Subscribe(func(m Message) { got["b"] <- m })

	const n = 50
	for i := range n {
		if err := a.Publish(ctx, "block", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, "unblock", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		select {
		case m := <-got["b"]:
			if want := (Message{Kind: "block", Origin: "a", Data: fmt.Appendf(nil, "%d", i)}); fmt.Sprint(m) != fmt.Sprint(want) {
				t.Fatalf("message %d on b: %+v, want %+v", i, m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never reached b", i)
		}
	}
	select {
	case m := <-got["a"]:
		if m.Origin != "b" || m.Kind != "unblock" || string(m.Data) != "from b" {
			t.Errorf("a received %+v, want b's unblock (and none of its own messages)", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's message never reached a")
	}
	time.Sleep(100 * time.Millisecond)
	if len(got["a"]) != 0 || len(got["b"]) != 0 {
		t.Errorf("a node received its own messages: %d on a, %d on b", len(got["a"]), len(got["b"]))
	}
}

func TestReports(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()

	if err := a.PutReport(ctx, "ev1", []byte("a saw 2"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.PutReport(ctx, "ev1", []byte("b saw 0"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.PutReport(ctx, "ev2", []byte("other"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	reports, err := a.Reports(ctx, "ev1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%s", reports), "map[a:a saw 2 b:b saw 0]"; got != want {
		t.Errorf("reports: %s, want %s", got, want)
	}
	eventually(t, 5*time.Second, "the reports outlived their TTL", func() bool {
		r, err := a.Reports(ctx, "ev2")
		return err == nil && len(r) == 0
	})
}

func TestNodes(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	ctx := context.Background()
	if n, err := a.Nodes(ctx); n != 2 || err != nil {
		t.Fatalf("Nodes: %d, %v; want 2", n, err)
	}
	b.Close()
	if n, err := a.Nodes(ctx); n != 1 || err != nil {
		t.Errorf("Nodes after one Close: %d, %v; want 1", n, err)
	}
}

// TestLimiter runs two nodes, each with several goroutines, against one
// fleet-wide limit for a couple of seconds, and counts the grants.
func TestLimiter(t *testing.T) {
	s := startRedis(t)
	a, b := s.open("a"), s.open("b")
	const perSecond, burst = 40.0, 4
	limiters := []*Limiter{
		a.NewLimiter("api", perSecond, burst, nil),
		b.NewLimiter("api", perSecond, burst, nil),
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	var granted atomic.Int64
	var wg sync.WaitGroup
	for _, l := range limiters {
		for range 4 {
			wg.Go(func() {
				for l.Wait(ctx) == nil {
					granted.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	limit := perSecond*elapsed + burst
	t.Logf("%d grants in %.2fs, limit %.0f", granted.Load(), elapsed, limit)
	if got := float64(granted.Load()); got > limit*1.1 {
		t.Errorf("%.0f grants in %.2fs, more than the fleet's %.0f (+10%%)", got, elapsed, limit)
	}
	if got := float64(granted.Load()); got < limit/2 {
		t.Errorf("%.0f grants in %.2fs, far below the fleet's %.0f: the limiter starves", got, elapsed, limit)
	}
}

// TestOutage stops Redis under two nodes, checks that they fail fast and
// fall back, restarts it on the same socket and checks that they recover.
func TestOutage(t *testing.T) {
	s := startRedis(t)
	before := runtime.NumGoroutine()
	open := func(node string) *Fleet {
		f, err := Open(Config{URL: s.url(), Node: node, Logf: t.Logf}) // the default timeout
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open("a"), open("b")
	ctx := context.Background()
	reconnected := map[string]chan struct{}{"a": make(chan struct{}, 10), "b": make(chan struct{}, 10)}
	a.OnReconnect(func() { reconnected["a"] <- struct{}{} })
	b.OnReconnect(func() { reconnected["b"] <- struct{}{} })
	received := make(chan Message, 10)
	b.Subscribe(func(m Message) { received <- m })
	fallback := rate.NewLimiter(rate.Every(time.Hour), 1)
	limiter := a.NewLimiter("api", 1000, 1, fallback)

	s.stop()

	// Never stall: each call fails within a bound, the first one included
	// (it finds the connection gone), and from then on the circuit is open.
	calls := map[string]func() error{
		"GetVerdict": func() error { _, _, err := a.GetVerdict(ctx, ip1); return err },
		"PutVerdict": func() error { return a.PutVerdict(ctx, ip1, []byte("v"), time.Hour) },
		"Claim":      func() error { _, err := a.Claim(ctx, ip1, time.Minute); return err },
		"Release":    func() error { return a.Release(ctx, ip1) },
		"Put":        func() error { return a.Put(ctx, "block", "k", []byte("v"), 0) },
		"List":       func() error { _, err := a.List(ctx, "block"); return err },
		"PutNewer":   func() error { _, err := a.PutNewer(ctx, "block", "k", 1, []byte("v"), 0); return err },
		"Publish":    func() error { return a.Publish(ctx, "event", []byte("e")) },
		"Reports":    func() error { _, err := a.Reports(ctx, "ev"); return err },
		"Nodes":      func() error { _, err := a.Nodes(ctx); return err },
	}
	for _, name := range []string{"GetVerdict", "PutVerdict", "Claim", "Release", "Put", "List", "PutNewer", "Publish", "Reports", "Nodes"} {
		start := time.Now()
		err := calls[name]()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %s with Redis down", name, took)
		}
		if !errors.Is(err, ErrDown) {
			t.Errorf("%s: %v, want ErrDown", name, err)
		}
	}
	if a.Up() {
		t.Error("a is up with Redis down")
	}
	if a.Errors() == 0 {
		t.Error("no failed operation counted")
	}
	eventually(t, 5*time.Second, "b, whose subscription broke, is still up", func() bool { return !b.Up() })

	// The limiter falls back to the local one: its single token goes, and
	// the next request waits on it, not on Redis.
	if err := limiter.Wait(ctx); err != nil {
		t.Fatalf("Limiter.Wait with Redis down: %v", err)
	}
	if tokens := fallback.Tokens(); tokens >= 1 {
		t.Errorf("the fallback limiter was not used: %.2f tokens left", tokens)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := limiter.Wait(short); err == nil {
		t.Error("the second request passed an empty fallback limiter")
	}

	s.start()
	for _, node := range []string{"a", "b"} {
		select {
		case <-reconnected[node]:
		case <-time.After(10 * time.Second):
			t.Fatalf("OnReconnect of %s not called after Redis came back", node)
		}
	}
	if !a.Up() || !b.Up() {
		t.Fatalf("after OnReconnect: a up %v, b up %v", a.Up(), b.Up())
	}
	if err := a.PutVerdict(ctx, ip1, []byte("v"), time.Hour); err != nil {
		t.Errorf("PutVerdict after the reconnect: %v", err)
	}
	if err := limiter.Wait(ctx); err != nil {
		t.Errorf("Limiter.Wait after the reconnect: %v", err)
	}
	// b's subscription is live again by the time its OnReconnect runs.
	if err := a.Publish(ctx, "event", []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-received:
		if string(m.Data) != "after" {
			t.Errorf("b received %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a message published after the reconnect never reached b")
	}

	a.Close()
	b.Close()
	noLeaks(t, before)
}

// TestStartDown opens a Fleet before its Redis exists: Open succeeds, the
// fleet runs down, and comes up when Redis starts.
func TestStartDown(t *testing.T) {
	s := startRedis(t)
	before := runtime.NumGoroutine() // the server's, which runs again at the end
	s.stop()
	f, err := Open(Config{URL: s.url(), Node: "a", Logf: t.Logf})
	if err != nil {
		t.Fatalf("Open with Redis down: %v", err)
	}
	defer f.Close()
	if f.Up() {
		t.Fatal("up without Redis")
	}
	if _, _, err := f.GetVerdict(context.Background(), ip1); !errors.Is(err, ErrDown) {
		t.Errorf("GetVerdict: %v, want ErrDown", err)
	}
	reconnected := make(chan struct{}, 1)
	f.OnReconnect(func() { reconnected <- struct{}{} })

	s.start()
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("OnReconnect not called once Redis started")
	}
	if n, err := f.Nodes(context.Background()); n != 1 || err != nil {
		t.Errorf("Nodes: %d, %v; want this node", n, err)
	}
	f.Close()
	noLeaks(t, before)
}
