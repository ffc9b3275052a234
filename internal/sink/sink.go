// Package sink carries block decisions to the systems that enforce them
// beyond DNS: firewalls (an nftables set, a CLI through exec) and SOAR or
// chat (a signed webhook). A Dispatcher feeds every sink from its own
// bounded, de-duplicated, batched queue, so a burst never stalls DNS and a
// slow webhook never holds back the firewall.
package sink

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// Action is what a change asks of a sink.
type Action string

// The actions.
const (
	Block   Action = "block"
	Unblock Action = "unblock"
)

// Scope is whom a change reaches: everyone, or only the tagged client(s).
type Scope string

// The scopes. A Change with a zero Scope (from code that predates it) is
// for everyone when it has no Client, and a pair when it has one; see
// Change.EffectiveScope.
const (
	ScopeEveryone Scope = "everyone"
	ScopeTagged   Scope = "tagged"
)

// Change is one block or unblock of an IP: for everyone (Scope everyone,
// no Client), or for one client only (Scope tagged: the client -> IP pair,
// or client -> IP:Port for a finding on one port).
type Change struct {
	Action Action     `json:"action"`
	IP     netip.Addr `json:"ip"`
	// Range is the CIDR of an operator's range block (IP zero, scope
	// everyone); see Target.
	Range  netip.Prefix `json:"range,omitzero"`
	Client netip.Addr   `json:"client,omitzero"` // zero: the IP for everyone
	Scope  Scope        `json:"scope"`
	// Port narrows a tagged pair to one destination port (a finding from a
	// connection record); 0: every port.
	Port uint16 `json:"port,omitempty"`
	// Clients are every client that led to the decision, as context; a
	// sink that can only block pairs blocks a block for everyone as pairs
	// from each of them.
	Clients  []netip.Addr  `json:"clients,omitempty"`
	TTL      time.Duration `json:"-"`        // time left on the block; 0 for unblock
	Decision string        `json:"decision"` // the decision id, end to end
	Reasons  []string      `json:"reasons,omitempty"`
	Event    string        `json:"event,omitempty"` // event id that led to it
	Ref      string        `json:"ref,omitempty"`   // the event's external reference
	Qnames   []string      `json:"qnames,omitempty"`
	Actor    string        `json:"actor,omitempty"` // who unblocked, and why
	Why      string        `json:"why,omitempty"`
	// Narrowed says why a block reaches less than its evidence would (a
	// shared IP), or is empty.
	Narrowed string `json:"narrowed,omitempty"`
	// Score is the Criminal IP score level behind the decision, if any.
	Score string `json:"score,omitempty"`
	// Replay marks a change that repeats a decision already sent (the
	// resync at a start): enforcement sinks need it, a Notifier never
	// gets it.
	Replay bool `json:"-"`
}

// WhyAllowlisted begins the reason of an unblock that an allowlist entry
// caused; see Change.Allowlisted.
const WhyAllowlisted = "allowlisted: "

// Allowlisted reports whether c is an unblock caused by an allowlist
// entry rather than by an operator or the block's end.
func (c Change) Allowlisted() bool {
	return c.Action == Unblock && strings.HasPrefix(c.Why, WhyAllowlisted)
}

// EffectiveScope is c.Scope, or for a zero Scope what the change meant
// before scopes existed: tagged when it names a Client, everyone if not.
func (c Change) EffectiveScope() Scope {
	switch {
	case c.Scope != "":
		return c.Scope
	case c.Client.IsValid():
		return ScopeTagged
	default:
		return ScopeEveryone
	}
}

// Key identifies what a change is about: later changes with the same key
// supersede earlier ones still queued.
func (c Change) Key() Key { return Key{IP: c.IP, Range: c.Range, Client: c.Client, Port: c.Port} }

// Target is what the change blocks, as hooks name it: the CIDR of a range
// block, else the IP.
func (c Change) Target() string {
	if c.Range.IsValid() {
		return c.Range.String()
	}
	return c.IP.String()
}

// Key is an IP, a range, a client -> IP pair, or a client -> IP:Port pair.
type Key struct {
	IP, Client netip.Addr
	Range      netip.Prefix
	Port       uint16
}

// Sink applies changes. Apply must be idempotent (a block of a blocked IP,
// an unblock of an absent one, succeed) and should apply the batch as one
// transaction where the target allows. An error makes the Dispatcher retry
// the batch's changes with backoff until they are applied, superseded or
// their block ends, unless it wraps ErrInvalidChange.
type Sink interface {
	Name() string
	Apply(ctx context.Context, batch []Change) error
}

// Notifier is a Sink that tells people of decisions rather than enforcing
// them (a chat hook). A Dispatcher hands it only the changes it Wants and
// never a Replay, and Reconcile and Resend leave it alone: people are told
// of a decision once, not at every start.
type Notifier interface {
	Sink
	Wants(c Change) bool
}
