package enforce

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
	"github.com/coredns-cip/coredns-cip/internal/window"
)

// Record kinds of the state directory.
const (
	kindBlocks   state.Kind = "blocks"
	kindHistory  state.Kind = "history"
	kindAllow    state.Kind = "allow"
	kindTags     state.Kind = "tags"
	kindVerdicts state.Kind = "verdicts"
	kindLifts    state.Kind = "lifts"    // a fleet's unblocks, see fleetblocks.go
	kindUnallows state.Kind = "unallows" // a fleet's allowlist removals
)

// State is what survives a reload: the clients' windows, the tags, the
// verdicts, the remembered names, the events, the blocks, and the open
// state directory, audit log and fleet. CoreDNS builds a new plugin
// instance on reload; its Engine takes this State over (under the server
// block's key), with the new limits applied, before the old one stops.
type State struct {
	key    string
	refs   int
	clock  atomic.Pointer[func() time.Time]
	window *window.Store
	tags   *tags.Set
	cache  *verdicts.Cache
	names  *NameMemory
	events *adminapi.Store
	blocks *blocks.Manager
	tombs  tombstones // a fleet's unblocks and allowlist removals
	hist   *history   // every block decision, kept for the retention

	stateDir  string
	store     *state.Store  // nil without a state directory
	writer    *state.Writer // batches the store's writes off the DNS path
	recordMu  sync.Mutex    // see record
	auditSpec audit.Spec
	audit     *audit.Log // nil without an audit log

	fleetURL string
	fleet    *fleet.Fleet // nil without `redis`
	// serving is the Engine serving now, for the fleet's goroutines.
	serving atomic.Pointer[Engine]
	synced  atomic.Uint64 // fleetSync passes done
	// reported are the running totals last reported to the Observer.
	reported struct {
		evicted, protected, eventsEvicted, fleetErrors, auditErrors, stateErrors atomic.Uint64
	}
	// hookSet is the hook set (hookSetOf) whose hooks have been given every
	// live block; nil until an engine has done it (a new or restored State),
	// so that a reload with the same hooks pushes nothing again.
	hookSet atomic.Pointer[string]
	// hookLedgers are what each hook line acknowledged (see hooks.go).
	hookLedgers hookLedgers
	// hookJournal is what exec and webhook hooks have not acknowledged
	// (see hookjournal.go).
	hookJournal hookJournal
	// api and hookHealth are the API's and the hooks' health for
	// GET /v1/status (status.go).
	api        apiHealth
	hookHealth hookHealth
	// budget is the API budget of the engine serving, carried over a
	// reload so that it grants no fresh period (budget.go).
	budget atomic.Pointer[budget.Budget]
}

var registry = struct {
	sync.Mutex
	m map[string]*State
}{m: map[string]*State{}}

// Acquire returns the State kept under key, creating it (and restoring it
// from the state directory) or applying cfg's limits to it. Every Acquire
// is paired with a release (Engine.Stop does it).
func Acquire(key string, cfg Config, log Logger) (*State, error) {
	registry.Lock()
	defer registry.Unlock()
	// Keep: the window a default event backtracks is spared by the total cap.
	limits := window.Config{Retain: cfg.Retain, PerClient: cfg.PerClient, Total: cfg.Total, Keep: cfg.Window}
	st, ok := registry.m[key]
	cfg.StaticAllow = stampCreated(cfg.StaticAllow, time.Now().Round(0))
	if !ok {
		tagged := tags.New(cfg.TagNets, cfg.AfterHours)
		limits.Protect = tagged.Tagged
		st = &State{
			key:    key,
			window: window.New(limits),
			tags:   tagged,
			cache:  verdicts.New(cfg.CacheSize, cfg.TTLs),
			names:  NewNameMemory(),
			events: adminapi.NewStore(10_000),
			blocks: blocks.New(cfg.BlockPolicy, cfg.StaticAllow),
			tombs:  newTombstones(),
			hist:   newHistory(cfg.History),
		}
		st.SetClock(time.Now)
		if cfg.Now != nil {
			st.SetClock(cfg.Now)
		}
	} else {
		limits.Protect = st.tags.Tagged
		st.window.SetLimits(limits)
		st.tags.SetStatic(cfg.TagNets, cfg.AfterHours)
		st.cache.Resize(cfg.CacheSize, cfg.TTLs)
		st.blocks.SetPolicy(cfg.BlockPolicy, cfg.StaticAllow)
		st.hist.setKeep(cfg.History)
	}
	if err := st.openStore(cfg.StateDir, cfg.StateStrict, log); err != nil {
		return nil, err
	}
	spec := cfg.Audit
	spec.Path = cfg.AuditPath
	if err := st.openAudit(spec); err != nil {
		return nil, err
	}
	if err := st.openFleet(cfg.Redis, log); err != nil {
		return nil, err
	}
	registry.m[key] = st
	st.refs++
	return st, nil
}

// stampCreated gives the Corefile's allowlist entries the time they were
// loaded (an entry kept across a reload keeps its first one: see
// blocks.Manager.SetPolicy).
func stampCreated(static []blocks.Allow, now time.Time) []blocks.Allow {
	out := slices.Clone(static)
	for i := range out {
		if out[i].Created.IsZero() {
			out[i].Created = now
		}
	}
	return out
}

// Held reports how many States are held, for tests that check a shutdown
// frees everything.
func Held() int {
	registry.Lock()
	defer registry.Unlock()
	return len(registry.m)
}

// SetClock replaces the clock every part of the State reads.
func (st *State) SetClock(now func() time.Time) { st.clock.Store(&now) }

func (st *State) now() time.Time { return (*st.clock.Load())() }

// Window is the clients' answer windows.
func (st *State) Window() *window.Store { return st.window }

// Tags is the set of tagged clients.
func (st *State) Tags() *tags.Set { return st.tags }

// Cache is the verdict cache.
func (st *State) Cache() *verdicts.Cache { return st.cache }

// Names is the memory of names that led to suspicious infrastructure.
func (st *State) Names() *NameMemory { return st.names }

// Blocks is the block and allowlist manager.
func (st *State) Blocks() *blocks.Manager { return st.blocks }

// Events is the store of recent events.
func (st *State) Events() *adminapi.Store { return st.events }

// Fleet is the fleet's Redis connection, or nil for a single node.
func (st *State) Fleet() *fleet.Fleet { return st.fleet }

// Auditing reports whether an audit log is open, so that callers on the
// DNS path can skip building entries nobody writes.
func (st *State) Auditing() bool { return st.audit != nil }

// openStore opens (or switches to) the state directory and, the first
// time, restores what it holds.
func (st *State) openStore(dir string, strict bool, log Logger) error {
	if dir == st.stateDir {
		return nil
	}
	st.closeStore(log)
	if dir == "" {
		return nil
	}
	store, err := state.Open(dir, state.Options{Logf: log.Warningf, Now: st.now, Strict: strict})
	if err != nil {
		return err
	}
	st.store, st.writer, st.stateDir = store, store.NewWriter(0), dir
	st.restore(st.now(), log)
	st.hookSet.Store(nil) // the hooks have not seen the blocks just restored
	return nil
}

func (st *State) closeStore(log Logger) {
	if st.writer != nil {
		if err := st.writer.Close(); err != nil {
			log.Errorf("%v", err) // it says "state: …"
		}
	}
	if st.store != nil {
		st.store.Close()
	}
	st.store, st.writer, st.stateDir = nil, nil, ""
}

func (st *State) openAudit(spec audit.Spec) error {
	if spec.Equal(st.auditSpec) {
		return nil
	}
	if st.audit != nil {
		st.audit.Close()
		st.audit, st.auditSpec = nil, audit.Spec{}
	}
	if spec.Empty() {
		return nil
	}
	l, err := audit.OpenSpec(spec)
	if err != nil {
		return err
	}
	st.audit, st.auditSpec = l, spec
	return nil
}

// release drops a reference; the last one closes and frees the state.
func (st *State) release() {
	registry.Lock()
	defer registry.Unlock()
	st.refs--
	if st.refs == 0 {
		if st.fleet != nil {
			st.fleet.Close()
		}
		st.closeStore(nopLogger{})
		if st.audit != nil {
			st.audit.Close()
		}
		delete(registry.m, st.key)
	}
}

// loadAll decodes every record of kind in the state directory, skipping
// (and logging) those that do not decode.
func loadAll[T any](st *State, kind state.Kind, log Logger) []T {
	recs, err := st.store.Load(kind)
	if err != nil {
		log.Warningf("%v", err) // it says "state: load KIND: …"
		return nil
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		var v T
		if err := json.Unmarshal(r.Data, &v); err != nil {
			log.Warningf("state: skipping a %s record %q: %v", kind, r.Key, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

// restore loads the state directory into fresh state.
func (st *State) restore(now time.Time, log Logger) {
	allow := loadAll[blocks.Allow](st, kindAllow, log)
	st.blocks.Restore(loadAll[blocks.Block](st, kindBlocks, log), loadAll[blocks.History](st, kindHistory, log), allow, now)
	st.tombs.restore(loadAll[lift](st, kindLifts, log), loadAll[unallow](st, kindUnallows, log), now)
	st.tombs.restoreUntags(loadAll[untag](st, kindUntags, log), now)
	st.hookJournal.restore(loadAll[pendingChange](st, kindHookPending, log), now)
	st.restoreHistory(loadAll[histRecord](st, kindDecisions, log), now, log)
	for _, t := range loadAll[tags.Tag](st, kindTags, log) {
		if t.Until.After(now) {
			st.tags.TagVersion(t.Client, t.Since, t.Until, t.Ref, t.Event, t.Version)
		}
	}
	for _, v := range loadAll[verdicts.Verdict](st, kindVerdicts, log) {
		if v.Expires.After(now) {
			st.putVerdict(v, now)
		}
	}
	log.Infof("state: restored %d blocks, %d allowlist entries, %d tagged clients, %d suspicious verdicts",
		len(st.blocks.Active(now)), len(allow), st.tags.Count(now), len(st.cache.SuspiciousList(now)))
}

// record runs change, which changes the State in memory and queues the
// same change for the disk. Changes to one key (an IP's block, a client's
// tag, an allowlist value) then reach the writer in the order they were
// made in memory: a block decided while an operator unblocks it must not
// queue its record after the unblock queued the removal, or the block
// would be back after a restart. change must not wait: queueing does not.
func (st *State) record(change func()) {
	st.recordMu.Lock()
	defer st.recordMu.Unlock()
	change()
}

// persist writes a record to the state directory, if there is one.
func (e *Engine) persist(kind state.Kind, key string, expires time.Time, v any) {
	e.st.put(kind, key, expires, v, e.log)
}

// put queues a record for the state directory, if there is one.
func (st *State) put(kind state.Kind, key string, expires time.Time, v any, log Logger) {
	if st.writer == nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		log.Errorf("state: encoding %s %s: %v", kind, key, err)
		return
	}
	st.writer.Put(kind, state.Record{Key: key, Expires: expires, Data: data})
}

// putVerdict caches v: an operator's manual block stands until its
// verdict's expiry, any other verdict for its outcome's TTL.
func (st *State) putVerdict(v verdicts.Verdict, now time.Time) verdicts.Verdict {
	if len(v.Reasons) > 0 && v.Reasons[0].Factor == FactorManual {
		return st.cache.PutUntil(v, v.Expires, now)
	}
	return st.cache.Put(v, now)
}

func (e *Engine) persistBlock(b blocks.Block) {
	e.persist(kindBlocks, b.Key(), b.Expires, b)
}

func (e *Engine) deleteState(kind state.Kind, key string) {
	if e.st.writer != nil {
		e.st.writer.Delete(kind, key)
	}
}

// syncTimeout bounds the wait for changes to reach the disk: a hung disk
// gets the admin API a 503 and a block's audit line a note, not a hang.
const syncTimeout = 10 * time.Second

// durableMark is where an operation that is acknowledged only once its
// changes are on disk (an admin API change, a block's audit line) starts.
type durableMark struct {
	w       *state.Writer // nil without a state directory
	dropped uint64
}

// markDurable starts an operation whose changes wait must find on disk.
func (e *Engine) markDurable() durableMark {
	w := e.st.writer
	if w == nil {
		return durableMark{}
	}
	return durableMark{w: w, dropped: w.Dropped()}
}

// wait returns once every change queued since m is durable. The writer's
// Sync covers every change queued before it; a change the writer dropped
// (its queue full after writes failed for long) it cannot cover, so any
// drop since m fails the wait, even one of a concurrent operation.
func (m durableMark) wait() error {
	if m.w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if err := m.w.Sync(ctx); err != nil {
		return err
	}
	if n := m.w.Dropped() - m.dropped; n > 0 {
		return fmt.Errorf("state: %d change(s) dropped: the write queue is full", n)
	}
	return nil
}

// Durably runs op, a change made through the admin API, and returns once
// what it changed is on disk, or why it is not: the API answers 2xx only
// in the first case. The change is made either way (memory, DNS, hooks);
// on an error it is kept queued and retried, and a restart before a
// retry succeeds loses it.
func (a API) Durably(op func()) error {
	m := a.e.markDurable()
	op()
	return m.wait()
}

// Health is the engine's Health, for GET /healthz.
func (a API) Health() error { return a.e.Health() }

var (
	_ adminapi.DurableBackend = API{}
	_ adminapi.HealthBackend  = API{}
)

// Health returns why the state directory does not take writes, or nil:
// the admin API's /healthz and the plugin's readiness report it.
func (e *Engine) Health() error {
	if e.st == nil || e.st.writer == nil {
		return nil
	}
	return e.st.writer.Err()
}

// Audit writes one audit line, if there is an audit log.
func (e *Engine) Audit(en audit.Entry) {
	if e.st.audit != nil {
		if en.Time.IsZero() {
			en.Time = e.Now()
		}
		e.st.audit.Write(en)
	}
}

// DefaultAuditPath is where the audit log goes when a state directory is
// set and no audit path is.
func DefaultAuditPath(stateDir string) string { return filepath.Join(stateDir, "audit.log") }
