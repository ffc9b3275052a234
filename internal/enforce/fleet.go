package enforce

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"golang.org/x/time/rate"
)

// A fleet of resolvers shares verdicts, tags, blocks, the allowlist, the
// events' reports and the API quota on Redis. Redis is never touched on the
// DNS path: only by the validation workers, the admin API and the fleet's
// own goroutines. While Redis is down every node keeps working on its local
// state, and resynchronises when Redis is back.

// Record kinds and message kinds on Redis.
const (
	fleetTags   = "tags"
	fleetBlocks = "blocks"
	fleetAllow  = "allow"

	msgEvent   = "event"
	msgUntag   = "untag"
	msgBlock   = "block"
	msgUnblock = "unblock"
	msgAllow   = "allow"
	msgUnallow = "unallow"
	msgVerdict = "verdict"
)

// fleetOp bounds the Redis work of one request or message.
const fleetOp = 2 * time.Second

// openFleet connects to Redis (or switches to another URL). Redis need not
// be up: the fleet starts degraded and catches up when it comes.
func (st *State) openFleet(cfg FleetConfig, log Logger) error {
	url := cfg.URL + " " + cfg.Prefix + " " + cfg.Node
	if cfg.URL == "" {
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
	f, err := fleet.Open(fleet.Config{URL: cfg.URL, Prefix: cfg.Prefix, Node: cfg.Node, Logf: log.Infof})
	if err != nil {
		return err
	}
	// Messages and reconnections go to the engine serving at the time.
	f.Subscribe(func(m fleet.Message) {
		if e := st.serving.Load(); e != nil && e.Running() {
			e.onFleetMessage(m)
		}
	})
	f.OnReconnect(func() {
		// Twice: the other nodes reconnect at about the same time, and what
		// one writes just before another subscribes again is caught by the
		// second pass.
		for i, wait := range []time.Duration{0, 2 * time.Second} {
			time.Sleep(wait)
			if e := st.serving.Load(); e != nil && e.Running() {
				if i == 0 {
					log.Infof("fleet: redis is back; resynchronising")
				}
				e.fleetSync()
			}
		}
	})
	st.fleet, st.fleetURL = f, url
	return nil
}

// fleetRemote is the second level of the verdict cache, with claims so
// that one node calls the API for an IP while the others wait for it.
type fleetRemote struct{ e *Engine }

// remote is the fleet's verdict cache, or nil for a single node.
func (e *Engine) remote() validate.Remote {
	if e.st.fleet == nil {
		return nil
	}
	return fleetRemote{e}
}

// Acquire implements validate.Remote.
func (r fleetRemote) Acquire(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool, func()) {
	noop := func() {}
	// A reload may drop `redis` while this engine's workers still run.
	f := r.e.st.fleet
	if f == nil || !f.Up() {
		return verdicts.Verdict{}, false, noop
	}
	if v, ok := r.get(ctx, ip); ok {
		return v, true, noop
	}
	claim := r.e.claimTTL()
	won, err := f.Claim(ctx, ip, claim)
	if err != nil {
		return verdicts.Verdict{}, false, noop
	}
	if won {
		return verdicts.Verdict{}, false, func() {
			ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
			defer cancel()
			f.Release(ctx, ip)
		}
	}
	// Another node is asking the API: wait for its verdict, up to its
	// claim; if it never comes, ask ourselves.
	wctx, cancel := context.WithTimeout(ctx, claim)
	defer cancel()
	data, ok, err := f.WaitVerdict(wctx, ip, 25*time.Millisecond)
	if err == nil && ok {
		var v verdicts.Verdict
		if json.Unmarshal(data, &v) == nil && v.IP.IsValid() {
			return v, true, noop
		}
	}
	return verdicts.Verdict{}, false, noop
}

func (r fleetRemote) get(ctx context.Context, ip netip.Addr) (verdicts.Verdict, bool) {
	f := r.e.st.fleet
	if f == nil {
		return verdicts.Verdict{}, false
	}
	data, ok, err := f.GetVerdict(ctx, ip)
	if err != nil || !ok {
		return verdicts.Verdict{}, false
	}
	var v verdicts.Verdict
	if json.Unmarshal(data, &v) != nil || !v.IP.IsValid() || !r.e.Now().Before(v.Expires) {
		return verdicts.Verdict{}, false
	}
	return v, true
}

// Store implements validate.Remote: the verdict lives on Redis as long as
// in the local cache. A suspicious one is announced too, so that every
// node's DNS path has it at once, blocked or not (its scope may reach
// only tagged clients, or nobody here but somebody there).
func (r fleetRemote) Store(ctx context.Context, v verdicts.Verdict) {
	f, ttl := r.e.st.fleet, v.Expires.Sub(r.e.Now())
	if f == nil || ttl <= 0 {
		return
	}
	if data, err := json.Marshal(v); err == nil {
		if f.PutVerdict(ctx, v.IP, data, ttl) == nil && v.Suspicious() {
			f.Publish(ctx, msgVerdict, data)
		}
	}
}

// claimTTL is how long a claim holds off the other nodes: one request's
// worth of attempts.
func (e *Engine) claimTTL() time.Duration {
	return 4*e.cfg.Timeout + 2*time.Second
}

// apiLimiter is the fleet-wide rate limit, falling back to this node's
// share while Redis is down.
func (e *Engine) apiLimiter() *fleet.Limiter {
	f := e.st.fleet
	r, burst := e.cfg.Rate, e.cfg.Burst
	if r <= 0 {
		r, burst = 2, 4 // criminalip.DefaultRate, DefaultBurst
	}
	nodes := 1
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	if n, err := f.Nodes(ctx); err == nil && n > 0 {
		nodes = n
	}
	cancel()
	fallback := rate.NewLimiter(rate.Limit(r/float64(nodes)), max(1, burst/nodes))
	return f.NewLimiter("api", r, burst, fallback)
}

func (e *Engine) publish(ctx context.Context, msgKind string, msg any) {
	f := e.st.fleet
	if f == nil || msgKind == "" {
		return
	}
	if data, err := json.Marshal(msg); err == nil {
		f.Publish(ctx, msgKind, data)
	}
}

// fleetEvent is an event as the fleet carries it (adminapi.Event encodes
// durations as text for people; here they travel as nanoseconds).
type fleetEvent struct {
	ID     string        `json:"id"`
	Client netip.Addr    `json:"client"`
	Type   string        `json:"type"`
	At     time.Time     `json:"at"`
	Window time.Duration `json:"window"`
	Watch  time.Duration `json:"watch"`
	Ref    string        `json:"ref"`
	// TagVersion is the fleet.Version of the tag the event made.
	TagVersion uint64 `json:"tag_version,omitempty"`
}

func toFleetEvent(id string, ev adminapi.Event, tagVersion uint64) fleetEvent {
	return fleetEvent{ID: id, Client: ev.Client, Type: ev.Type, At: ev.At, Window: ev.Window, Watch: ev.Watch, Ref: ev.Ref, TagVersion: tagVersion}
}

func (fe fleetEvent) event() adminapi.Event {
	return adminapi.Event{Client: fe.Client, Type: fe.Type, At: fe.At, Window: fe.Window, Watch: fe.Watch, Ref: fe.Ref}
}

// report is what one node found for an event.
type report struct {
	Node     string            `json:"node"`
	Accepted adminapi.Accepted `json:"accepted"`
	Found    []adminapi.Found  `json:"found"`
}

// putReport records this node's findings for an event on Redis.
func (e *Engine) putReport(id string, acc adminapi.Accepted, found []adminapi.Found) {
	f := e.st.fleet
	if f == nil {
		return
	}
	data, err := json.Marshal(report{Node: f.Node(), Accepted: acc, Found: found})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetOp)
	defer cancel()
	f.PutReport(ctx, id, data, 24*time.Hour)
}

// onFleetMessage applies what another node did. It runs on the fleet's
// subscriber goroutine.
func (e *Engine) onFleetMessage(m fleet.Message) {
	switch m.Kind {
	case msgEvent:
		var fe fleetEvent
		if err := json.Unmarshal(m.Data, &fe); err != nil {
			e.log.Warningf("fleet: event from %s: %v", m.Origin, err)
			return
		}
		acc, found := e.submitEvent(fe.event(), fe.ID, false, fe.TagVersion)
		e.putReport(fe.ID, acc, found)
	case msgUntag:
		if c, ok := decodeTagChange(m.Data); ok && c.Removed != nil {
			e.applyTagChange(c)
			return
		}
		var ip netip.Addr // from a node that predates versions
		if json.Unmarshal(m.Data, &ip) == nil {
			e.untagLocal(ip)
		}
	case msgBlock, msgUnblock:
		var c blockChange
		if err := json.Unmarshal(m.Data, &c); err != nil {
			e.log.Warningf("fleet: %s from %s: %v", m.Kind, m.Origin, err)
			return
		}
		e.applyChange(c, e.Now())
	case msgVerdict:
		var v verdicts.Verdict
		if json.Unmarshal(m.Data, &v) == nil && v.IP.IsValid() && v.Suspicious() {
			e.adoptVerdict(v, nil, e.Now())
		}
	case msgAllow, msgUnallow:
		if c, ok := decodeAllowChange(m.Data); ok {
			e.applyAllowChange(c)
		}
	case msgBudget:
		e.onFleetBudget(m.Data)
	}
}

// fleetSync makes this node and Redis agree, at start and whenever Redis
// comes back: the blocks and the allowlist as syncBlocks and syncAllow
// say, and the tags as syncTags says.
func (e *Engine) fleetSync() {
	f := e.st.fleet
	if f == nil {
		return
	}
	now := e.Now()
	if e.budget != nil {
		e.budget.Refresh(now) // what this node spent while Redis was down
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.syncBlocks(ctx, f, now)
	e.syncAllow(ctx, f, now)
	e.syncTags(ctx, f, now)
	e.st.synced.Add(1)
}

// FleetSyncs returns how many times this node has resynchronised with the
// fleet: once at start, and twice each time Redis comes back.
func (st *State) FleetSyncs() uint64 { return st.synced.Load() }

// onRemoteVerdict runs for a verdict another node reached: this node
// remembers the name for DNS; the deciding node made the block, which
// arrives as a message.
func (e *Engine) onRemoteVerdict(v verdicts.Verdict, job validate.Job) {
	defer e.forgetRetry(v.IP)
	if v.Suspicious() && job.Name != "" && !e.AllowedName(job.Name) {
		e.st.names.Put(job.Name, v)
	}
}
