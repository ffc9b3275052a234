// Package sink carries block decisions to the systems that enforce them
// beyond DNS: firewalls (an nftables set, a CLI through exec) and SOAR or
// chat (a signed webhook). A Dispatcher feeds every sink from its own
// bounded, de-duplicated, batched queue, so a burst never stalls DNS and a
// slow webhook never holds back the firewall.
package sink

import (
	"context"
	"net/netip"
	"time"
)

// Action is what a change asks of a sink.
type Action string

// The actions.
const (
	Block   Action = "block"
	Unblock Action = "unblock"
)

// Change is one block or unblock of an IP, optionally scoped to one client
// (the client -> IP pair rather than the IP for everyone).
type Change struct {
	Action   Action        `json:"action"`
	IP       netip.Addr    `json:"ip"`
	Client   netip.Addr    `json:"client,omitzero"` // zero: the IP for everyone
	TTL      time.Duration `json:"-"`               // time left on the block; 0 for unblock
	Decision string        `json:"decision"`        // the decision id, end to end
	Reasons  []string      `json:"reasons,omitempty"`
	Event    string        `json:"event,omitempty"` // event id that led to it
	Ref      string        `json:"ref,omitempty"`   // the event's external reference
	Qnames   []string      `json:"qnames,omitempty"`
	Actor    string        `json:"actor,omitempty"` // who unblocked, and why
	Why      string        `json:"why,omitempty"`
	// Scope is the block's reach: everyone (Client zero: the IP for every
	// client) or tagged (Client set: the pair client -> IP, -> IP:Port when
	// Port is set). Empty: as before scopes, Client zero or set decides.
	Scope   Scope        `json:"scope,omitempty"`
	Port    uint16       `json:"port,omitempty"`
	Clients []netip.Addr `json:"clients,omitempty"` // every client that led to the decision
}

// Scope is a block's reach.
type Scope string

// The scopes of a change.
const (
	ScopeEveryone Scope = "everyone"
	ScopeTagged   Scope = "tagged"
)

// Key identifies what a change is about: later changes with the same key
// supersede earlier ones still queued.
func (c Change) Key() Key { return Key{IP: c.IP, Client: c.Client, Port: c.Port} }

// Key is an IP, a client -> IP pair, or a client -> IP:port triple.
type Key struct {
	IP, Client netip.Addr
	Port       uint16
}

// Sink applies changes. Apply must be idempotent (a block of a blocked IP,
// an unblock of an absent one, succeed) and should apply the batch as one
// transaction where the target allows. An error makes the Dispatcher retry
// the whole batch with backoff.
type Sink interface {
	Name() string
	Apply(ctx context.Context, batch []Change) error
}
