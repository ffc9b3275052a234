// Package enforce is the decision engine: everything that happens between a
// verdict and a firewall. It decides blocks (allowlist, TTL, escalation),
// lifts them (unblock, allow, expiry), persists them, audits them, pushes
// them to the hooks, restores them at start and keeps a fleet of resolvers
// in agreement on Redis. It also takes the evidence that leads to verdicts:
// events (backtracking a client's window), connection records and the
// validation queue behind them, and it is the typed backend of the admin
// API.
//
// The DNS plugin, the command line and the admin API all drive one Engine.
// Nothing here knows DNS messages or CoreDNS: the plugin records answers and
// asks the engine what it knows, and rewrites answers itself.
package enforce

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/syslogin"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Config is what an Engine needs: the rules of one cipvalidate block.
type Config struct {
	// The Criminal IP API and the validation queue.
	APIKey    criminalip.APIKey
	APIURL    string
	Rate      float64 // requests per second; 0: criminalip.DefaultRate
	Burst     int
	Timeout   time.Duration
	Policy    risk.Policy
	Workers   int
	QueueSize int
	// CPU is the share of the CPUs (runtime.GOMAXPROCS) the validation
	// workers and the event intake may take (`validate_cpu`); 0 means
	// pace.DefaultFraction, < 0 no budget.
	CPU float64

	// The clients' windows and tags.
	Window     time.Duration // default backtrack window of an event
	Watch      time.Duration // default tag time of an event
	Retain     time.Duration // how long answers are remembered
	PerClient  int
	Total      int
	TagNets    []netip.Prefix
	AfterHours *tags.Schedule
	// Budget is the API budget (`budget`); nil: calls are not counted.
	Budget *budget.Config

	// The verdict cache.
	CacheSize int
	TTLs      verdicts.TTLs

	// What is never validated or blocked.
	Exclude      []netip.Prefix
	AllowNets    []netip.Prefix
	AllowDomains []string // fully qualified, lower case
	StaticAllow  []blocks.Allow

	// Shared is how many domains make an IP shared infrastructure (a CDN or
	// hosting front), blocked by tagged pairs and rewritten by name only,
	// never IP-wide; 0 turns the rule off.
	Shared int

	// Blocks and where they go.
	BlockPolicy blocks.Policy // Monitor: decide and audit, push nothing
	Hooks       []HookSpec
	StateDir    string // "" keeps state in memory only
	StateStrict bool   // refuse to start on an empty or corrupt state file
	AuditPath   string // "" none, "stdout", or a file
	// Audit is the audit file's format and the syslog destinations; its
	// Path is ignored for AuditPath.
	Audit audit.Spec
	// Reconcile is how often the hooks are checked against the live
	// blocks; 0: DefaultReconcile.
	Reconcile time.Duration

	// History is how long a decision is kept after it ends; 0:
	// DefaultHistory.
	History time.Duration

	// A fleet on Redis; URL "" is a single node.
	Redis FleetConfig

	// ControlPlane lists more hosts (names, IPs, host:port) that are never
	// blocked or rewritten, such as the server block's upstream resolvers;
	// the API, webhook and Redis hosts always are.
	ControlPlane []string

	// Connection records.
	PortsNot      []uint16
	CriticalPorts []uint16
	Connlogs      []ConnlogSpec

	// Log receives the engine's few log lines; nil discards them.
	Log Logger
	// Observer counts what happens; nil counts nothing.
	Observer Observer
	// Now is the clock of the State, when this engine creates it (tests,
	// simulations); nil means time.Now.
	Now func() time.Time
}

// FleetConfig is a `redis` line.
type FleetConfig struct {
	URL, Prefix, Node string
}

// ConnlogSpec is a connection log to follow.
type ConnlogSpec struct {
	Path   string
	Format connlog.Format
	// Alerts is the least severe IDS alert that tags its internal
	// endpoint (connlog.ParseAlerts); 0: alert records are connections only.
	Alerts int
	// Syslog, if set, receives the log as syslog instead of following
	// Path (`connlog syslog`).
	Syslog *syslogin.Spec
}

// Logger is the engine's log; CoreDNS's plugin logger is one.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Debugf(string, ...any)   {}
func (nopLogger) Infof(string, ...any)    {}
func (nopLogger) Warningf(string, ...any) {}
func (nopLogger) Errorf(string, ...any)   {}

// Engine runs the decision lifecycle on a State. One Engine serves one
// plugin instance (or one command-line run); on a reload the new instance's
// Engine takes over the State before the old one stops.
type Engine struct {
	cfg Config
	key string
	log Logger
	obs Observer
	st  *State

	client     *criminalip.Client
	queue      *validate.Queue
	pacer      *pace.Pacer                     // nil with `validate_cpu off`
	dispatcher atomic.Pointer[sink.Dispatcher] // nil without hooks
	hookNames  []string                        // the sinks' names, for the decision history
	notifiers  atomic.Pointer[[]*noticeHook]   // the hooks told of the budget's notices (budget.go)
	closeSinks func()
	connlogs   *connlogRunner // nil without connlogs
	control    *controlPlane
	bg         sync.WaitGroup // background work Stop waits for

	// stopReconcile ends the reconciler of the hooks (reconcile.go).
	stopReconcile chan struct{}
	reconcileDone sync.WaitGroup

	// hookSet is what this engine recorded in the State's hookSet, and
	// prevHookSet what it replaced, to put back should Start fail after.
	hookSet, prevHookSet *string

	// apiFailure is the kind of the last API failure while it says the
	// API is unavailable ("" otherwise): `fail closed` then refuses tagged
	// clients' unvalidated answers.
	apiFailure atomic.Value   // criminalip.ErrorKind
	budget     *budget.Budget // nil without `budget` (budget.go)
	running    atomic.Bool

	retries retryTracker // the IPs of events until they have a verdict
	alerts  alertsSeen   // the clients of recent IDS alert events (alerts.go)

	stopSweep chan struct{}
	sweepDone sync.WaitGroup
	stopOnce  sync.Once
}

// New returns an Engine for cfg whose state lives under key (a server
// block's identity, so that a reload finds it). It starts nothing.
func New(key string, cfg Config) *Engine {
	e := &Engine{cfg: cfg, key: key, log: cfg.Log, obs: cfg.Observer}
	if e.log == nil {
		e.log = nopLogger{}
	}
	if e.obs == nil {
		e.obs = nopObserver{}
	}
	return e
}

// Now is the engine's clock: the State's, which tests may set.
func (e *Engine) Now() time.Time {
	if e.st == nil {
		return time.Now()
	}
	return e.st.now()
}

// SetClock replaces the clock of the engine's State (tests, simulations).
func (e *Engine) SetClock(now func() time.Time) { e.st.SetClock(now) }

// Running reports whether Start succeeded and Stop has not run.
func (e *Engine) Running() bool { return e.running.Load() }

// Queue is the validation queue, for statistics.
func (e *Engine) Queue() *validate.Queue { return e.queue }

// State is the engine's shared state.
func (e *Engine) State() *State { return e.st }

// Start takes the State (restoring it from the state directory the first
// time), starts the validation workers, the hooks (pushing the live blocks
// to them unless a previous engine on the State gave them to the same hook
// lines), the fleet sync, the connection logs and the sweeper.
func (e *Engine) Start() error {
	st, err := Acquire(e.key, e.cfg, e.log)
	if err != nil {
		return err
	}
	e.st = st
	st.serving.Store(e)
	e.startControlPlane()
	if err := e.startValidation(); err != nil {
		e.Stop()
		return err
	}
	if err := e.startHooks(); err != nil {
		e.Stop()
		return err
	}
	e.fleetSync()
	e.stopSweep = make(chan struct{})
	e.sweepDone.Add(1)
	go e.sweeper()
	if err := e.startConnlogs(); err != nil {
		e.st.hookSet.CompareAndSwap(e.hookSet, e.prevHookSet) // the serving engine's hooks are still the old ones
		e.Stop()
		return fmt.Errorf("connlog: %w", err)
	}
	e.running.Store(true)
	return nil
}

func (e *Engine) startValidation() error {
	var limiter criminalip.Limiter
	if e.st.fleet != nil {
		limiter = e.apiLimiter()
	}
	if e.cfg.CPU >= 0 {
		e.pacer = pace.New(pace.Config{Fraction: e.cfg.CPU})
	}
	client, err := criminalip.New(criminalip.Config{
		Limiter: limiter,
		APIKey:  e.cfg.APIKey,
		BaseURL: e.cfg.APIURL,
		Timeout: e.cfg.Timeout,
		Rate:    e.cfg.Rate,
		Burst:   e.cfg.Burst,
		Observe: e.observeAPI,
		// The workers' calls at once, each keeping its connection.
		Concurrency: e.cfg.Workers,
		WrapConn:    e.meterWrites(),
	})
	if err != nil {
		return err
	}
	e.client = client
	e.queue = validate.New(validate.Config{
		Client:    client,
		Cache:     e.st.cache,
		Policy:    e.cfg.Policy,
		Workers:   e.cfg.Workers,
		QueueSize: e.cfg.QueueSize,
		OnVerdict: e.onVerdict,
		OnRemote:  e.onRemoteVerdict,
		Remote:    e.remote(),
		Now:       e.Now,
		Budget:    e.startBudget(),
		Pace:      e.pacer,
	})
	e.queue.Start()
	return nil
}

// meterWrites is the API connections' wrapper under the CPU budget: the
// transport's writes are the validations' work too.
func (e *Engine) meterWrites() func(net.Conn) net.Conn {
	if e.pacer == nil {
		return nil
	}
	return e.pacer.MeterWrites
}

func (e *Engine) startHooks() error {
	if len(e.cfg.Hooks) == 0 {
		e.takeHookSet() // no hooks is a hook set too: adding one later resyncs it
		return nil
	}
	sinks, closeSinks, err := BuildSinks(e.cfg.Hooks)
	if err != nil {
		return err
	}
	e.closeSinks = closeSinks
	var notifiers []*noticeHook
	for _, s := range sinks {
		e.hookNames = append(e.hookNames, s.Name())
		if n, ok := s.(notifier); ok && n.WantsNotices() {
			notifiers = append(notifiers, &noticeHook{notifier: n})
		}
	}
	e.notifiers.Store(&notifiers)
	// Timeout covers one batch; an exec hook runs its program once per
	// change of the batch.
	d := sink.NewDispatcher(sink.Config{Sinks: sinks, Ledgers: e.st.hookLedgers.of(e.cfg.Hooks),
		Journals: e.st.journals(e.cfg.Hooks), OnResult: e.onHookResult, Timeout: time.Minute})
	d.Start()
	e.dispatcher.Store(d)
	e.startReconciler()
	// A reload builds a new engine each time: pushing every live block to
	// every hook again on each one would repeat thousands of runs for
	// nothing. Only hooks that have not been given them yet get them.
	if e.takeHookSet() {
		e.resync(e.Now())
	}
	// What a hook had not acknowledged when the process stopped or was
	// killed is owed to it. At a reload the previous engine, still
	// running, delivers its own queue (the first reconcile picks up what
	// it could not), so only a State no engine serves yet resends.
	if e.prevHookSet == nil {
		if n := e.resendPending(d); n > 0 {
			e.log.Infof("hooks: %d change(s) not acknowledged before the start queued again", n)
		}
	}
	return nil
}

// takeHookSet records this engine's hook set as the State's and reports
// whether the live blocks must be pushed: the State is new or restored,
// the hook lines changed, or an engine stopped with changes undelivered.
func (e *Engine) takeHookSet() bool {
	set := hookSetOf(e.cfg.Hooks)
	e.hookSet = &set
	e.prevHookSet = e.st.hookSet.Swap(e.hookSet)
	return e.prevHookSet == nil || *e.prevHookSet != set
}

// Stop stops what Start started, flushes the hooks for a moment and hands
// the State back. It is safe to call more than once.
func (e *Engine) Stop() {
	e.stopOnce.Do(func() {
		e.running.Store(false)
		e.stopConnlogs()
		if e.stopSweep != nil {
			close(e.stopSweep)
			e.sweepDone.Wait()
		}
		e.stopRetries()
		if e.queue != nil {
			e.queue.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if e.StopHooks(ctx) != nil && e.st != nil {
			// Changes were lost with the queues: the next engine to
			// start pushes every live block again.
			e.st.hookSet.Store(nil)
		}
		cancel()
		if e.client != nil {
			e.client.Close()
		}
		e.bg.Wait()
		if e.st != nil {
			e.st.serving.CompareAndSwap(e, nil)
			e.st.release()
		}
	})
}

// StopHooks flushes the hooks' queues until ctx ends and closes them;
// later changes go nowhere. It returns an error if changes were left.
func (e *Engine) StopHooks(ctx context.Context) error {
	d := e.dispatcher.Swap(nil) // later changes go nowhere
	if d == nil {
		return nil
	}
	e.stopReconciler()
	err := d.Stop(ctx)
	if err != nil {
		e.log.Warningf("hooks: %v", err)
	}
	if e.closeSinks != nil {
		e.closeSinks()
		e.closeSinks = nil
	}
	return err
}

// grew returns how much a running total grew since it was last reported,
// and records it. The last report lives in the State, which survives a
// reload, so a new engine does not count the whole total again; a total
// that restarted (a new fleet connection) counts from zero.
func grew(last *atomic.Uint64, total uint64) uint64 {
	prev := last.Swap(total)
	if total < prev {
		return total
	}
	return total - prev
}

// sweepEvery is how often expired window entries, tags, names, verdicts
// and blocks go.
const sweepEvery = 15 * time.Second

// sweeper drops expired state and reports the gauges.
func (e *Engine) sweeper() {
	defer e.sweepDone.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		e.Sweep(e.Now())
		select {
		case <-e.stopSweep:
			return
		case <-t.C:
		}
	}
}

// Sweep drops what expired by now, lifts expired blocks and reports the
// gauges. The sweeper calls it; tests call it to move time on.
func (e *Engine) Sweep(now time.Time) {
	st := e.st
	st.window.Sweep(now)
	st.tags.Sweep(now)
	st.names.Sweep(now)
	st.cache.Sweep(now)
	st.tombs.sweep(now)
	st.hookJournal.sweep(now)
	e.ExpireBlocks(now)
	e.histSweep(now)
	if st.store != nil {
		// While commits fail the writer has said so once; a sweep fails
		// on the same disk every 15s.
		if _, err := st.store.Sweep(); err != nil && st.writer.Err() == nil {
			e.log.Warningf("%v", err) // it says "state: sweep: …"
		}
	}
	s := Stats{
		WindowEntries: st.window.Len(),
		Tagged:        st.tags.Count(now),
		BlocksActive:  len(st.blocks.Active(now)),
	}
	r := &st.reported
	s.WindowEvicted = grew(&r.evicted, st.window.Evicted())
	s.WindowEvictedProtected = grew(&r.protected, st.window.EvictedProtected())
	s.EventsEvicted = grew(&r.eventsEvicted, st.events.Evicted())
	s.EventsBytes = st.events.Bytes()
	if st.audit != nil {
		s.Auditing, s.AuditErrors = true, grew(&r.auditErrors, st.audit.Errors())
		s.AuditDropped = st.audit.Dropped()
	}
	if w := st.writer; w != nil {
		s.Stateful, s.StateWritable = true, w.Err() == nil
		s.StateWriteErrors = grew(&r.stateErrors, w.Failures())
	}
	if f := st.fleet; f != nil {
		s.Fleet, s.FleetUp = true, f.Up()
		s.FleetErrors = grew(&r.fleetErrors, f.Errors())
	}
	s.QueueHigh, s.QueueLow = e.queue.Depth()
	if d := e.dispatcher.Load(); d != nil {
		s.HookPending = map[string]int{}
		for name, h := range d.Stats() {
			s.HookPending[name] = h.Queued
		}
	}
	e.obs.Swept(s)
}
