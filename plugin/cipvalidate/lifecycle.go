package cipvalidate

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/enforce"

	"github.com/coredns/coredns/plugin/forward"
)

// instances is the plugin instance serving each server block, for tests
// and debugging.
var instances sync.Map // key -> *CIPValidate

// start runs on OnStartup: the engine takes the shared state (restoring
// it at the first start) and starts its workers and hooks; then the
// event API opens.
func (c *CIPValidate) start() error {
	ec := c.cfg.engineConfig()
	ec.ControlPlane = c.upstreams()
	eng := enforce.New(c.key, ec)
	if err := eng.Start(); err != nil {
		return fmt.Errorf("%s: %w", pluginName, err)
	}
	c.eng = eng
	c.names = eng.State().Names()
	instances.Store(c.key, c)
	c.decisions = newDecisionLog()
	c.sinkA, c.sinkAAAA = net.IP(c.cfg.sink4.AsSlice()), net.IP(c.cfg.sink6.AsSlice())
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

// upstreams are the addresses the server block's forward plugin sends
// queries to: blocking one would cut the clients off DNS.
func (c *CIPValidate) upstreams() []string {
	if c.server == nil {
		return nil
	}
	f, ok := c.server.Handler("forward").(*forward.Forward)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range f.List() {
		out = append(out, p.Addr())
	}
	return out
}

// startEvents opens the event API, if configured. It also runs when a
// reload fails, to reopen the listener the old instance closed.
func (c *CIPValidate) startEvents() error {
	if c.cfg.eventsAddr == "" || c.eng == nil {
		return nil
	}
	srv, err := adminapi.NewServer(adminapi.Config{
		Addr:    c.cfg.eventsAddr,
		Tokens:  c.cfg.eventsAccess.Tokens,
		TLS:     c.cfg.eventsAccess.TLS,
		Backend: c.eng.API(),
		Store:   c.eng.State().Events(),
		Logf:    log.Infof,
		Now:     c.eng.Now,
		Pace:    c.eng.Pacer(),
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", pluginName, err) // it says "events: …"
	}
	c.api = srv
	scheme := "http"
	if c.cfg.eventsAccess.TLS != nil {
		scheme = "https"
	}
	log.Infof("event API listening on %s://%s", scheme, srv.Addr())
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
		c.decisions.flush(c.eng.Now(), 0) // the repeats not yet written
	}
	if c.eng != nil {
		c.eng.Stop()
	}
	instances.CompareAndDelete(c.key, c)
	return err
}

// sweeper writes the aggregated decision lines and trims the EDE memo;
// the engine sweeps its own state.
func (c *CIPValidate) sweeper() {
	defer c.sweepDone.Done()
	t := time.NewTicker(decisionLogEvery / 4)
	defer t.Stop()
	for {
		select {
		case <-c.stopSweep:
			return
		case <-t.C:
			c.decisions.flush(c.eng.Now(), decisionLogEvery)
			c.ede.trim()
		}
	}
}
