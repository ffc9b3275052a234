package cipvalidate

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/events"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
	"github.com/coredns-cip/coredns-cip/internal/window"
)

// shared is the state that survives a `reload`: the clients' windows, the
// tags, the verdicts, the remembered names and the events. CoreDNS builds a
// new plugin instance on reload; the new one takes over this state (under
// the server block's key), with the new limits applied, before the old one
// shuts down.
type shared struct {
	key    string
	refs   int
	window *window.Store
	tags   *tags.Set
	cache  *verdicts.Cache
	names  *nameMemory
	events *events.Store
	blocks *blocks.Manager
	owner  *CIPValidate // the instance serving now, for tests and debugging

	stateDir  string
	store     *state.Store  // nil without `state`
	writer    *state.Writer // batches the store's writes off the DNS path
	auditPath string
	audit     *audit.Log // nil without an audit log

	fleetURL string
	fleet    *fleet.Fleet // nil without `redis`
	// serving is owner for the fleet's goroutines, which must not take
	// the registry lock (release closes the fleet while holding it).
	serving atomic.Pointer[CIPValidate]
}

// timeNow is the plugin's clock; tests move it to place answers in and out
// of an event's window.
var timeNow = time.Now

var registry = struct {
	sync.Mutex
	m map[string]*shared
}{m: map[string]*shared{}}

// acquire returns the state kept under key, creating it (and restoring it
// from the state directory) or applying cfg's limits to it.
func acquire(key string, cfg *config) (*shared, error) {
	registry.Lock()
	defer registry.Unlock()
	limits := window.Config{Retain: cfg.retain, PerClient: cfg.perClient, Total: cfg.total}
	st, ok := registry.m[key]
	if !ok {
		st = &shared{
			key:    key,
			window: window.New(limits),
			tags:   tags.New(cfg.tagNets, cfg.afterHours),
			cache:  verdicts.New(cfg.cacheSize, cfg.ttls),
			names:  newNameMemory(),
			events: events.NewStore(10_000),
			blocks: blocks.New(cfg.blockPolicy, cfg.staticAllow),
		}
	} else {
		st.window.SetLimits(limits)
		st.tags.SetStatic(cfg.tagNets, cfg.afterHours)
		st.cache.Resize(cfg.cacheSize, cfg.ttls)
		st.blocks.SetPolicy(cfg.blockPolicy, cfg.staticAllow)
	}
	if err := st.openStore(cfg.stateDir); err != nil {
		return nil, err
	}
	if err := st.openAudit(cfg.auditPath); err != nil {
		return nil, err
	}
	if err := st.openFleet(cfg); err != nil {
		return nil, err
	}
	registry.m[key] = st
	st.refs++
	return st, nil
}

// openStore opens (or switches to) the state directory and, the first
// time, restores what it holds.
func (st *shared) openStore(dir string) error {
	if dir == st.stateDir {
		return nil
	}
	st.closeStore()
	if dir == "" {
		return nil
	}
	store, err := state.Open(dir, state.Options{Logf: log.Warningf})
	if err != nil {
		return fmt.Errorf("%s: state: %w", pluginName, err)
	}
	st.store, st.writer, st.stateDir = store, store.NewWriter(0), dir
	st.restore(timeNow(), log.Infof)
	return nil
}

func (st *shared) closeStore() {
	if st.writer != nil {
		if err := st.writer.Close(); err != nil {
			log.Errorf("state: %v", err)
		}
	}
	if st.store != nil {
		st.store.Close()
	}
	st.store, st.writer, st.stateDir = nil, nil, ""
}

func (st *shared) openAudit(path string) error {
	if path == st.auditPath {
		return nil
	}
	if st.audit != nil {
		st.audit.Close()
		st.audit, st.auditPath = nil, ""
	}
	if path == "" {
		return nil
	}
	l, err := audit.Open(path)
	if err != nil {
		return fmt.Errorf("%s: audit: %w", pluginName, err)
	}
	st.audit, st.auditPath = l, path
	return nil
}

// openFleet connects to Redis (or switches to another URL). Redis need not
// be up: the fleet starts degraded and catches up when it comes.
func (st *shared) openFleet(cfg *config) error {
	url := cfg.redisURL + " " + cfg.redisPrefix + " " + cfg.redisNode
	if cfg.redisURL == "" {
		url = ""
	}
	if url == st.fleetURL {
		return nil
	}
	if st.fleet != nil {
		st.fleet.Close()
		st.fleet, st.fleetURL = nil, ""
	}
	if url == "" {
		return nil
	}
	fleet.RouteLogs(log.Debugf)
	f, err := fleet.Open(fleet.Config{URL: cfg.redisURL, Prefix: cfg.redisPrefix, Node: cfg.redisNode, Logf: log.Infof})
	if err != nil {
		return fmt.Errorf("%s: redis: %w", pluginName, err)
	}
	// Messages and reconnections go to the instance serving at the time.
	f.Subscribe(func(m fleet.Message) {
		if o := st.serving.Load(); o != nil && o.ready.Load() {
			o.onFleetMessage(m)
		}
	})
	f.OnReconnect(func() {
		// Twice: the other nodes reconnect at about the same time, and what
		// one writes just before another subscribes again is caught by the
		// second pass.
		for i, wait := range []time.Duration{0, 2 * time.Second} {
			time.Sleep(wait)
			if o := st.serving.Load(); o != nil && o.ready.Load() {
				if i == 0 {
					log.Infof("fleet: redis is back; resynchronising")
				}
				o.fleetSync()
			}
		}
	})
	st.fleet, st.fleetURL = f, url
	return nil
}

// release drops a reference; the last one closes and frees the state.
func (st *shared) release() {
	registry.Lock()
	defer registry.Unlock()
	st.refs--
	if st.refs == 0 {
		if st.fleet != nil {
			st.fleet.Close()
		}
		st.closeStore()
		if st.audit != nil {
			st.audit.Close()
		}
		delete(registry.m, st.key)
	}
}

// sweepEvery is how often expired window entries, tags and names go.
const sweepEvery = 15 * time.Second

// start runs on OnStartup: it takes the shared state, starts the worker
// pool, the sweeper and the event API.
func (c *CIPValidate) start() error {
	st, err := acquire(c.key, c.cfg)
	if err != nil {
		return err
	}
	c.st = st
	registry.Lock()
	c.st.owner = c
	registry.Unlock()
	c.st.serving.Store(c)
	var limiter criminalip.Limiter
	if c.st.fleet != nil {
		limiter = c.apiLimiter()
	}
	client, err := criminalip.New(criminalip.Config{
		Limiter: limiter,
		APIKey:  c.cfg.apiKey,
		BaseURL: c.cfg.apiURL,
		Timeout: c.cfg.timeout,
		Rate:    c.cfg.rate,
		Burst:   c.cfg.burst,
		Observe: func(a criminalip.Attempt) {
			apiCalls.WithLabelValues(a.Outcome).Inc()
			apiLatency.Observe(a.Duration.Seconds())
		},
	})
	if err != nil {
		c.st.release()
		c.st = nil
		return fmt.Errorf("%s: %w", pluginName, err)
	}
	c.client = client
	c.queue = validate.New(validate.Config{
		Client:    client,
		Cache:     c.st.cache,
		Policy:    c.cfg.policy,
		Workers:   c.cfg.workers,
		QueueSize: c.cfg.queueSize,
		OnVerdict: c.onVerdict,
		OnRemote:  c.onRemoteVerdict,
		Remote:    c.remote(),
		Now:       timeNow,
	})
	c.queue.Start()

	if len(c.cfg.hooks) > 0 {
		sinks, closeSinks, err := c.buildSinks()
		if err != nil {
			c.shutdown()
			return fmt.Errorf("%s: %w", pluginName, err)
		}
		c.closeSinks = closeSinks
		// Timeout covers one batch; an exec hook runs its program once per
		// change of the batch.
		c.dispatcher = sink.NewDispatcher(sink.Config{Sinks: sinks, OnResult: c.onHookResult, Timeout: time.Minute})
		c.dispatcher.Start()
		c.resync(timeNow())
	}
	c.fleetSync()

	c.decisions = newDecisionLog()
	c.sinkA, c.sinkAAAA = net.IP(c.cfg.sink4.AsSlice()), net.IP(c.cfg.sink6.AsSlice())
	c.stopSweep = make(chan struct{})
	c.sweepDone.Add(1)
	go c.sweeper()

	if err := c.startEvents(); err != nil {
		c.shutdown()
		return err
	}
	if err := c.startConnlogs(); err != nil {
		c.shutdown()
		return fmt.Errorf("%s: connlog: %w", pluginName, err)
	}
	c.ready.Store(true)
	return nil
}

// startEvents opens the event API, if configured. It also runs when a
// reload fails, to reopen the listener the old instance closed.
func (c *CIPValidate) startEvents() error {
	if c.cfg.eventsAddr == "" || c.st == nil {
		return nil
	}
	srv, err := events.NewServer(events.Config{
		Addr:    c.cfg.eventsAddr,
		Token:   c.cfg.eventsToken,
		Backend: backend{c},
		Store:   c.st.events,
		Logf:    log.Infof,
		Now:     timeNow,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", pluginName, err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("%s: %w", pluginName, err)
	}
	c.api = srv
	log.Infof("event API listening on %s", srv.Addr())
	return nil
}

// stopEvents closes the event API; on reload it runs before the new
// instance opens its own on the same address.
func (c *CIPValidate) stopEvents() error {
	if c.api == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.api.Stop(ctx)
	c.api = nil
	return err
}

// shutdown runs on OnShutdown (after a reload's new instance has started,
// or at exit): it stops what start started and hands the state back.
func (c *CIPValidate) shutdown() error {
	var err error
	c.shutdownOnce.Do(func() { err = c.stop() })
	return err
}

func (c *CIPValidate) stop() error {
	c.ready.Store(false)
	c.stopConnlogs()
	err := c.stopEvents()
	if c.stopSweep != nil {
		close(c.stopSweep)
		c.sweepDone.Wait()
		c.stopSweep = nil
		c.decisions.flush(timeNow(), 0) // the repeats not yet written
	}
	if c.queue != nil {
		c.queue.Stop()
	}
	c.stopDispatcher()
	if c.client != nil {
		c.client.Close()
	}
	if c.st != nil {
		c.st.release()
	}
	return err
}

// sweeper drops expired state and refreshes the gauges.
func (c *CIPValidate) sweeper() {
	defer c.sweepDone.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		now := timeNow()
		c.st.window.Sweep(now)
		c.st.tags.Sweep(now)
		c.st.names.Sweep(now)
		c.st.cache.Sweep(now)
		c.decisions.flush(now, decisionLogEvery)
		c.ede.trim()
		c.expireBlocks(now)
		if c.st.store != nil {
			if _, err := c.st.store.Sweep(); err != nil {
				log.Warningf("state: sweep: %v", err)
			}
		}
		windowEntries.Set(float64(c.st.window.Len()))
		windowEvicted.Set(float64(c.st.window.Evicted()))
		taggedClients.Set(float64(c.st.tags.Count(now)))
		if f := c.st.fleet; f != nil {
			fleetUp.Set(map[bool]float64{true: 1, false: 0}[f.Up()])
			fleetErrors.Set(float64(f.Errors()))
		}
		high, low := c.queue.Depth()
		queueDepth.WithLabelValues("high").Set(float64(high))
		queueDepth.WithLabelValues("low").Set(float64(low))
		select {
		case <-c.stopSweep:
			return
		case <-t.C:
		}
	}
}
