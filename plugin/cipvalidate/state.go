package cipvalidate

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/events"
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
	owner  *CIPValidate // the instance serving now, for tests and debugging
}

// timeNow is the plugin's clock; tests move it to place answers in and out
// of an event's window.
var timeNow = time.Now

var registry = struct {
	sync.Mutex
	m map[string]*shared
}{m: map[string]*shared{}}

// acquire returns the state kept under key, creating it or applying cfg's
// limits to it.
func acquire(key string, cfg *config) *shared {
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
		}
		registry.m[key] = st
	} else {
		st.window.SetLimits(limits)
		st.tags.SetStatic(cfg.tagNets, cfg.afterHours)
		st.cache.Resize(cfg.cacheSize, cfg.ttls)
	}
	st.refs++
	return st
}

// release drops a reference; the last one frees the state.
func (st *shared) release() {
	registry.Lock()
	defer registry.Unlock()
	st.refs--
	if st.refs == 0 {
		delete(registry.m, st.key)
	}
}

// sweepEvery is how often expired window entries, tags and names go.
const sweepEvery = 15 * time.Second

// start runs on OnStartup: it takes the shared state, starts the worker
// pool, the sweeper and the event API.
func (c *CIPValidate) start() error {
	c.st = acquire(c.key, c.cfg)
	registry.Lock()
	c.st.owner = c
	registry.Unlock()
	client, err := criminalip.New(criminalip.Config{
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
		Now:       timeNow,
	})
	c.queue.Start()

	c.stopSweep = make(chan struct{})
	c.sweepDone.Add(1)
	go c.sweeper()

	if err := c.startEvents(); err != nil {
		c.shutdown()
		return err
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
	err := c.stopEvents()
	if c.stopSweep != nil {
		close(c.stopSweep)
		c.sweepDone.Wait()
		c.stopSweep = nil
	}
	if c.queue != nil {
		c.queue.Stop()
	}
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
		windowEntries.Set(float64(c.st.window.Len()))
		windowEvicted.Set(float64(c.st.window.Evicted()))
		taggedClients.Set(float64(c.st.tags.Count(now)))
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
