package enforce

import (
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Source says where an IP submitted for validation came from.
type Source int

// The sources of submissions.
const (
	FromAnswer     Source = iota // a tagged client's DNS answer
	FromEvent                    // an event's backtrack
	FromConnection               // a connection record
)

// Sources lists every Source, for observers that resolve counters ahead.
var Sources = [...]Source{FromAnswer, FromEvent, FromConnection}

func (s Source) String() string {
	switch s {
	case FromAnswer:
		return "answer"
	case FromEvent:
		return "event"
	case FromConnection:
		return "connection"
	}
	return "unknown"
}

// HookResult is what became of changes handed to a hook.
type HookResult string

// The hook results.
const (
	HookOK      HookResult = "ok"
	HookRetried HookResult = "retried"
	HookFailed  HookResult = "failed"
	HookDropped HookResult = "dropped" // the hooks' queue was full
	HookExpired HookResult = "expired" // blocks that ended while queued for a failing hook
	HookResent  HookResult = "resent"  // queued again by reconcile: the hook lacked them
)

// Observer counts what the engine does; the plugin's metrics implement it.
// Its methods run on the engine's goroutines (workers, the sweeper, API
// requests) and must not block.
type Observer interface {
	// Submitted counts n IPs submitted for validation with result r.
	Submitted(src Source, r validate.Result, n int)
	// Verdict counts a fresh verdict.
	Verdict(v verdicts.Verdict)
	// Block counts a new block decision (monitor: recorded, not pushed).
	Block(monitor bool)
	// HookChanges counts n changes of one batch handed to sink ("all" for
	// the queue in front of every hook).
	HookChanges(sink string, r HookResult, n int)
	// Event counts an event posted to this node.
	Event()
	// ConnlogLine counts a line read from a connection log.
	ConnlogLine(f connlog.Format, ok bool)
	// APICall counts a Criminal IP API call.
	APICall(a criminalip.Attempt)
	// Swept reports the gauges after every sweep.
	Swept(s Stats)
}

// Stats are the figures of one sweep.
type Stats struct {
	WindowEntries int
	WindowEvicted uint64 // since the previous sweep
	// WindowEvictedProtected is the part of WindowEvicted taken from
	// protected windows (see window.Store.EvictedProtected).
	WindowEvictedProtected uint64
	EventsEvicted          uint64 // events the event store forgot since the previous sweep
	EventsBytes            int64  // the event store's estimated size
	Auditing               bool   // an audit log is open: AuditErrors means something
	AuditErrors            uint64 // audit entries that could not be written, since the previous sweep
	// AuditDropped is, per syslog destination URL, the audit entries
	// dropped since the previous sweep (buffer full or receiver down).
	AuditDropped     map[string]uint64
	Tagged           int
	BlocksActive     int
	QueueHigh        int
	QueueLow         int
	Stateful         bool   // a state directory is open: StateWritable and StateWriteErrors mean something
	StateWritable    bool   // the last commit to the state directory succeeded
	StateWriteErrors uint64 // failed commits since the previous sweep
	Fleet            bool   // a fleet is configured: FleetUp and FleetErrors mean something
	FleetUp          bool
	FleetErrors      uint64 // since the previous sweep
	// HookPending is the changes queued per hook (by sink name): waiting,
	// being applied or retried; nil without hooks.
	HookPending map[string]int
}

type nopObserver struct{}

func (nopObserver) Submitted(Source, validate.Result, int) {}
func (nopObserver) Verdict(verdicts.Verdict)               {}
func (nopObserver) Block(bool)                             {}
func (nopObserver) HookChanges(string, HookResult, int)    {}
func (nopObserver) Event()                                 {}
func (nopObserver) ConnlogLine(connlog.Format, bool)       {}
func (nopObserver) APICall(criminalip.Attempt)             {}
func (nopObserver) Swept(Stats)                            {}
