// Package fleet shares state between the coredns-cip nodes (resolvers) of
// one deployment through Redis, so that they behave as one: one Criminal IP
// lookup per IP for the whole fleet, events and block decisions fanned out
// to every node, one API rate limit for all.
//
// Redis is a help, never a dependency. The package is called from worker
// goroutines and HTTP handlers, never from the DNS path, and every call is
// bounded by Config.Timeout. A circuit breaker keeps an outage cheap: the
// first operation that times out or loses its connection marks the fleet
// down, and from then on every data operation returns ErrDown at once,
// without touching the network, until a background PING (once a second)
// succeeds. Callers fall back to their local state while Up is false, and
// resynchronise from OnReconnect.
//
// Values are the caller's bytes (JSON, in practice): the package imports
// none of the packages whose records it carries.
//
// # Key layout
//
// With P the Config.Prefix ("cip:" by default):
//
//	P+"verdict:"+IP   string   a verdict; PX = the verdict's TTL
//	P+"claim:"+IP     string   the node looking IP up; PX = the claim's TTL
//	P+"rec:"+KIND     hash     KEY -> "EXPIRY:" + data, or "EXPIRY,VERSION:" + data
//	                           (PutNewer); EXPIRY in Unix ms, 0 = never; VERSION 16 hex digits
//	P+"event:"+ID     hash     NODE -> that node's report on event ID; PX = its TTL
//	P+"nodes"         zset     NODE -> Unix ms when its heartbeat lapses
//	P+"rate:"+NAME    string   the GCRA theoretical arrival time, Unix µs
//	P+"budget:"+START hash     the API budget of the period starting at START (budget.go)
//	P+"bus"           channel  the pub/sub bus: Message as JSON, Data in base64
//
// Every command and script touches a single key, so the layout works on a
// Redis Cluster as on a single server. Expiry times are read from the
// server's clock (TIME, inside scripts), so nodes with skewed clocks agree.
// The scripts need Redis 6.2 or later (HRANDFIELD).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrDown is returned, possibly wrapped, by every operation while Redis
// cannot be reached: at once while the circuit is open, or with the cause
// when an operation times out or loses its connection. Callers fall back
// to local state.
var ErrDown = errors.New("fleet: redis unavailable")

// Defaults for Config fields left zero, and the fixed intervals.
const (
	DefaultPrefix  = "cip:"
	DefaultTimeout = 200 * time.Millisecond

	// probeInterval is how often a down fleet PINGs Redis.
	probeInterval = time.Second
	// heartbeatInterval is how often a node refreshes its heartbeat, and
	// heartbeatTTL how long a heartbeat counts in Nodes.
	heartbeatInterval = 5 * time.Second
	heartbeatTTL      = 15 * time.Second
)

// Config configures Open.
type Config struct {
	// URL names the Redis deployment:
	//
	//	redis://[user:pass@]host[:port][/db][?opt=v...]     one server (port 6379)
	//	rediss://...                                         the same over TLS
	//	unix://[user:pass@]/path/to/redis.sock[?db=N]        one server, unix socket
	//	redis://[user:pass@]h1:6379,h2:6379[,...]            a Redis Cluster, from these seeds
	//	rediss://[user:pass@]h1:6379,h2:6379[,...]           the same over TLS
	//	redis-sentinel://[user:pass@]h1:26379,h2:26379[,...]/MASTER[?db=N]
	//	                                                     Sentinel; user:pass is the master's,
	//	                                                     sentinel_username and sentinel_password
	//	                                                     (query) are the sentinels' own
	//
	// A single host is a single server, two or more a Cluster. Special
	// characters in a password are percent-encoded. The query options of
	// go-redis's ParseURL, ParseClusterURL and ParseFailoverURL are
	// accepted (pool_size, protocol, skip_verify, ...), except the
	// timeouts and retries, which Timeout sets.
	URL string
	// Prefix starts every key and the bus channel; DefaultPrefix if empty.
	Prefix string
	// Node identifies this node; hostname-pid if empty.
	Node string
	// Timeout bounds every Redis operation; DefaultTimeout if zero.
	Timeout time.Duration
	// Logf, if set, receives the fleet's few log lines: Redis going down
	// and coming back, and undecodable bus messages.
	Logf func(format string, args ...any)
}

// String describes c with the URL's credentials redacted.
func (c Config) String() string {
	return fmt.Sprintf("fleet %s prefix %q node %q timeout %s", redact(c.URL), c.Prefix, c.Node, c.Timeout)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// Fleet is this node's connection to the fleet's shared state. It is safe
// for concurrent use.
type Fleet struct {
	rdb     redis.UniversalClient
	url     string // redacted
	prefix  string
	node    string
	timeout time.Duration
	logf    func(format string, args ...any)
	clock   *Clock

	up       atomic.Bool // read lock-free; changed under mu by setUp
	failures atomic.Uint64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // monitor and subscriber
	cbs    sync.WaitGroup // OnReconnect callbacks

	mu          sync.Mutex
	closed      bool
	upCh        chan struct{} // closed while up, replaced when going down
	onReconnect []func()
	handlers    []func(Message)
	ps          *redis.PubSub // the subscriber's, for Close to interrupt
	subscribed  chan struct{} // closed while the bus subscription is live
	isSub       bool          // subscribed is closed
}

// Open connects to the Redis that cfg.URL names, trying it once for at
// most cfg.Timeout. Only a malformed configuration is an error: if Redis
// cannot be reached, the Fleet starts down and comes up when the
// background probe first succeeds.
func Open(cfg Config) (*Fleet, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Node == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		cfg.Node = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	rdb, err := newClient(cfg.URL, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		rdb:        rdb,
		url:        redact(cfg.URL),
		prefix:     cfg.Prefix,
		node:       cfg.Node,
		timeout:    cfg.Timeout,
		logf:       cfg.Logf,
		clock:      NewClock(cfg.Node),
		upCh:       make(chan struct{}),
		subscribed: make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if err := f.ping(); err != nil {
		f.logf("fleet: redis at %s unavailable, running on local state: %v", f.url, err)
	} else {
		f.setUp(true)
		f.heartbeat()
	}
	f.wg.Add(1)
	go f.monitor()
	return f, nil
}

// Close stops the background goroutines, waits for running OnReconnect
// callbacks, removes this node from the heartbeat set and closes the
// connections. Operations after Close return ErrDown.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	ps := f.ps
	f.mu.Unlock()

	if f.Up() {
		ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
		f.rdb.ZRem(ctx, f.prefix+"nodes", f.node)
		cancel()
	}
	f.cancel()
	if ps != nil {
		_ = ps.Close() // interrupts the subscriber's read
	}
	f.wg.Wait()
	f.cbs.Wait()
	f.setUp(false)
	return f.rdb.Close()
}

// Up reports the last known health of Redis: false from the first failed
// operation until the background probe succeeds.
func (f *Fleet) Up() bool { return f.up.Load() }

// OnReconnect registers fn to be called, in a goroutine of its own, each
// time Redis comes back after being down (including the first time, if
// Open started down), so that the caller can resynchronise. When it is
// called, the bus subscription (see Subscribe) is already live again, so a
// resync that reads after it misses no message. fn must not call Close.
func (f *Fleet) OnReconnect(fn func()) {
	f.mu.Lock()
	f.onReconnect = append(f.onReconnect, fn)
	f.mu.Unlock()
}

// Errors returns how many operations were tried and failed: timeouts,
// connection errors and error replies, background ones (heartbeat, bus
// subscription) included. Calls refused while the circuit is open are not
// counted; Up reports those.
func (f *Fleet) Errors() uint64 { return f.failures.Load() }

// Node returns this node's id.
func (f *Fleet) Node() string { return f.node }

// Clock is this node's clock for the Versions of PutNewer.
func (f *Fleet) Clock() *Clock { return f.clock }

// do runs one Redis operation under the circuit breaker and the timeout.
// fn returns nil for a missing key (redis.Nil).
func (f *Fleet) do(ctx context.Context, op string, fn func(context.Context) error) error {
	if !f.up.Load() {
		return ErrDown
	}
	tctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	err := fn(tctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("fleet: %s: %w", op, ctx.Err()) // the caller gave up, Redis is not to blame
	}
	f.failures.Add(1)
	var reply redis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("fleet: %s: %w", op, err) // Redis answered: it is up
	}
	f.markDown(op, err)
	return fmt.Errorf("fleet: %s: %w: %w", op, ErrDown, err)
}

// markDown opens the circuit after a failure of op.
func (f *Fleet) markDown(op string, err error) {
	if f.setUp(false) {
		f.logf("fleet: redis at %s unavailable (%s: %v), running on local state", f.url, op, err)
	}
}

// setUp records the health of Redis and reports whether it changed.
func (f *Fleet) setUp(up bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up.Load() == up || up && f.closed {
		return false
	}
	f.up.Store(up)
	if up {
		close(f.upCh)
	} else {
		f.upCh = make(chan struct{})
	}
	return true
}

// ping checks Redis, bypassing the circuit breaker.
func (f *Fleet) ping() error {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	return f.rdb.Ping(ctx).Err()
}

// monitor refreshes the heartbeat while up and probes Redis while down.
func (f *Fleet) monitor() {
	defer f.wg.Done()
	heartbeat := time.NewTicker(heartbeatInterval)
	defer heartbeat.Stop()
	probe := time.NewTicker(probeInterval)
	defer probe.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-heartbeat.C:
			if f.Up() {
				f.heartbeat()
			}
		case <-probe.C:
			if !f.Up() && f.ping() == nil && f.setUp(true) {
				f.reconnected()
			}
		}
	}
}

// reconnected runs when Redis comes back: it announces this node, waits
// (boundedly) for the bus subscription to be live again, and then calls
// the OnReconnect callbacks.
func (f *Fleet) reconnected() {
	f.logf("fleet: redis at %s is back", f.url)
	f.heartbeat()
	f.mu.Lock()
	subscribed, subscribing := f.subscribed, len(f.handlers) > 0
	fns := slices.Clone(f.onReconnect)
	f.mu.Unlock()
	if subscribing {
		f.wait(subscribed, 2*f.timeout)
	}
	if f.ctx.Err() != nil {
		return // closing
	}
	for _, fn := range fns {
		f.cbs.Add(1)
		go func() {
			defer f.cbs.Done()
			fn()
		}()
	}
}

// wait waits for ch to be closed, for at most d or until Close.
func (f *Fleet) wait(ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-f.ctx.Done():
	}
}

// heartbeatScript adds ARGV[1] to the node set until ARGV[2] ms from now,
// and drops the nodes whose heartbeat has lapsed.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// heartbeat announces this node for heartbeatTTL.
func (f *Fleet) heartbeat() {
	_ = f.do(f.ctx, "heartbeat", func(ctx context.Context) error {
		return heartbeatScript.Run(ctx, f.rdb, []string{f.prefix + "nodes"}, f.node, heartbeatTTL.Milliseconds()).Err()
	})
}

// nodesScript counts the nodes whose heartbeat has not lapsed.
var nodesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// Nodes returns how many nodes, this one included, have sent a heartbeat
// in the last 15 seconds. Nodes heartbeat every 5 seconds while Redis is
// up, and leave the count on Close.
//
// The heartbeats are one sorted set rather than a key per node, so that
// counting them is one command, not a SCAN of the whole keyspace (which
// holds a key per cached verdict) on every Cluster master.
func (f *Fleet) Nodes(ctx context.Context) (int, error) {
	var n int64
	err := f.do(ctx, "nodes", func(ctx context.Context) (err error) {
		n, err = nodesScript.Run(ctx, f.rdb, []string{f.prefix + "nodes"}).Int64()
		return err
	})
	return int(n), err
}
