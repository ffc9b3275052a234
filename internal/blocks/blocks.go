// Package blocks turns suspicious verdicts into block decisions with one
// lifecycle: a block lasts its TTL, escalates for repeat offenders, is
// lifted by an allowlist entry or an unblock, and expires by itself. It is
// pure bookkeeping: no I/O and no clock of its own, so the plugin persists,
// audits and pushes what it returns, and tests control time.
package blocks

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/risk"

	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"
)

// Defaults of the block_ttl option.
const (
	DefaultTTL = 24 * time.Hour
	// HistoryKeep is how long after a block ends a new block of the same
	// IP still counts as a repeat offence.
	HistoryKeep = 30 * 24 * time.Hour
)

// Policy is how long blocks last.
type Policy struct {
	TTL     time.Duration // first block; default DefaultTTL
	Factor  float64       // each repeat multiplies the TTL by this (1 = no escalation)
	Max     time.Duration // escalation cap; default TTL
	Monitor bool          // record would-be blocks, push nothing
}

// TTLFor returns the TTL of a block that is the n-th (0 = first) of its IP.
func (p Policy) TTLFor(repeats int) time.Duration {
	ttl := p.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if repeats <= 0 || p.Factor <= 1 {
		return ttl
	}
	max := p.Max
	if max < ttl {
		max = ttl
	}
	d := float64(ttl) * math.Pow(p.Factor, float64(repeats))
	if d >= float64(max) || math.IsInf(d, 0) {
		return max
	}
	return time.Duration(d)
}

// Block is an active (or, in monitor mode, would-be) block of one IP, or
// of a range (an operator's block of a CIDR: Range set, IP zero).
type Block struct {
	IP       netip.Addr    `json:"ip"`
	Range    netip.Prefix  `json:"range,omitzero"`
	Decision string        `json:"decision"`
	Reasons  []string      `json:"reasons"`
	Score    string        `json:"score,omitempty"`
	Created  time.Time     `json:"created"`
	Expires  time.Time     `json:"expires"`
	TTL      time.Duration `json:"-"` // the full block time; Expires-Created
	Repeat   int           `json:"repeat"`
	Events   []string      `json:"events,omitempty"`
	Refs     []string      `json:"refs,omitempty"`
	Clients  []netip.Addr  `json:"clients,omitempty"`
	Qnames   []string      `json:"qnames,omitempty"`
	Monitor  bool          `json:"monitor,omitempty"`
	// Scope is the block's reach: everyone (the IP for every client) or
	// tagged (only the pairs client -> IP of Clients, -> IP:Port for a
	// destination-port finding). Empty in blocks written before scopes:
	// they were IP-wide.
	Scope risk.Scope `json:"scope,omitempty"`
	Port  uint16     `json:"port,omitempty"`
	// Narrowed says why the block reaches less than its evidence would (a
	// shared IP: tagged pairs rather than IP-wide), or is empty.
	Narrowed string `json:"narrowed,omitempty"`
	// Version orders the block among the fleet's changes to its IP (a
	// fleet.Version; 0 on a single node): see Adopt.
	Version uint64 `json:"version,omitempty"`
	// Origin is OriginManual for an operator's block (with its Actor and
	// Reason), "" for one the engine decided.
	Origin string `json:"origin,omitempty"`
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// OriginManual marks an operator's block.
const OriginManual = "manual"

// Everyone reports whether the block applies to the IP for every client.
func (b Block) Everyone() bool { return b.Scope != risk.ScopeTagged }

// Remaining is the time left at now.
func (b Block) Remaining(now time.Time) time.Duration { return b.Expires.Sub(now) }

// Cause is what led to a verdict: the client, event and name, and the
// destination port of a port finding.
type Cause struct {
	Client netip.Addr
	Event  string
	Ref    string
	Qname  string
	Port   uint16
}

// Verdict is what Decide needs of a suspicious finding.
type Verdict struct {
	IP       netip.Addr
	Decision string
	Reasons  []string
	Score    string
	Scope    risk.Scope // everyone or tagged
	Narrowed string     // why Scope is narrower than the evidence, if it is
	Version  uint64     // the Version of a new or widened block
	// An operator's block: its own TTL (no escalation), who and why, and
	// Force to block despite the allowlist.
	TTL                   time.Duration
	Origin, Actor, Reason string
	Force                 bool
}

// History records an IP's past blocks, for escalation.
type History struct {
	IP    netip.Addr `json:"ip"`
	Count int        `json:"count"`
	Last  time.Time  `json:"last"` // when the last block ends
}

// Allow is an allowlist entry: an IP, a CIDR or a domain (and its
// subdomains). Static entries come from the Corefile and never expire.
type Allow struct {
	Value   string    `json:"value"`
	Until   time.Time `json:"until,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Created time.Time `json:"created"`
	Static  bool      `json:"static,omitempty"`
	// Version orders the entry among the fleet's changes to its value (a
	// fleet.Version; 0 on a single node).
	Version uint64 `json:"version,omitempty"`

	prefix netip.Prefix
	domain string
}

// ParseAllow validates value (IP, CIDR or domain name) into an entry.
func ParseAllow(value string) (Allow, error) {
	a := Allow{Value: value}
	if strings.Contains(value, "/") {
		p, err := netip.ParsePrefix(value)
		if err != nil {
			return a, fmt.Errorf("%q is not a CIDR", value)
		}
		a.prefix, a.Value = p.Masked(), p.Masked().String()
		return a, nil
	}
	if ip, err := netip.ParseAddr(value); err == nil {
		ip = ip.Unmap()
		a.prefix, a.Value = netip.PrefixFrom(ip, ip.BitLen()), ip.String()
		return a, nil
	}
	if _, ok := dns.IsDomainName(value); !ok || strings.ContainsAny(value, ":@ ") || value == "" || value == "." {
		return a, fmt.Errorf("%q is neither an IP, a CIDR nor a domain name", value)
	}
	a.domain = dns.CanonicalName(value)
	a.Value = a.domain
	return a, nil
}

// The narrowest prefixes an allowlist entry may be without being forced:
// broader ones lift blocks across a large part of the Internet (0.0.0.0/0
// lifts every block).
const (
	MaxAllowBits4 = 8  // an IPv4 entry may cover at most a /8
	MaxAllowBits6 = 32 // an IPv6 entry may cover at most a /32 (a RIR allocation)
)

// ErrTooBroad is the class of TooBroad's errors.
var ErrTooBroad = errors.New("too broad an allowlist entry")

// TooBroad returns an error wrapping ErrTooBroad if the entry covers more
// than a /8 of IPv4, a /32 of IPv6, or a whole public suffix (a TLD such as
// "com", or a suffix under which anyone registers, such as "co.uk" or
// "github.io", from the Public Suffix List), and nil otherwise. Callers
// refuse such an entry unless the operator insists.
func (a Allow) TooBroad() error {
	if a.prefix.IsValid() {
		limit := MaxAllowBits6
		if a.prefix.Addr().Is4() {
			limit = MaxAllowBits4
		}
		if a.prefix.Bits() < limit {
			return fmt.Errorf("%w: %s covers more than a /%d", ErrTooBroad, a.Value, limit)
		}
		return nil
	}
	name := strings.TrimSuffix(a.domain, ".")
	if ps, _ := publicsuffix.PublicSuffix(name); ps == name {
		return fmt.Errorf("%w: %s is a public suffix, so it covers every domain registered under it", ErrTooBroad, a.Value)
	}
	return nil
}

// matches reports whether the entry covers ip or one of names.
func (a Allow) matches(ip netip.Addr, names []string) bool {
	if a.prefix.IsValid() {
		return ip.IsValid() && a.prefix.Contains(ip)
	}
	for _, n := range names {
		if dns.IsSubDomain(a.domain, strings.ToLower(n)) {
			return true
		}
	}
	return false
}

func (a Allow) live(now time.Time) bool { return a.Until.IsZero() || now.Before(a.Until) }

// Outcome says what Decide did.
type Outcome int

// The outcomes of Decide.
const (
	Blocked  Outcome = iota // a new block: push it
	Extended                // already blocked: new cause recorded, nothing to push unless a new client (see Decide)
	Allowed                 // an allowlist entry wins: no block
	Widened                 // a tagged block now reaches everyone: push it IP-wide
)

// ErrNotBlocked is returned by Unblock for an IP without a block.
var ErrNotBlocked = errors.New("not blocked")

// Manager holds the blocks, their history and the allowlist.
type Manager struct {
	mu      sync.Mutex
	policy  Policy
	blocks  map[netip.Addr]*Block
	ranges  map[netip.Prefix]*Block
	history map[netip.Addr]History
	static  []Allow
	dynamic map[string]Allow

	// allow is a snapshot of static+dynamic entries for lock-free reads.
	allow atomic.Pointer[[]Allow]
	// rangeSnap is the range blocks for lock-free reads; nil: none.
	rangeSnap atomic.Pointer[rangeSet]
}

// New returns a manager with the Corefile's policy and static allowlist.
func New(p Policy, static []Allow) *Manager {
	m := &Manager{policy: p, blocks: map[netip.Addr]*Block{}, ranges: map[netip.Prefix]*Block{}, history: map[netip.Addr]History{}, dynamic: map[string]Allow{}}
	m.setStatic(static)
	return m
}

// SetPolicy applies a new policy and static allowlist (on reload). Existing
// blocks keep their expiry.
func (m *Manager) SetPolicy(p Policy, static []Allow) {
	m.mu.Lock()
	m.policy = p
	m.mu.Unlock()
	m.setStatic(static)
}

func (m *Manager) setStatic(static []Allow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// An entry kept across a reload keeps the time it was first loaded.
	created := make(map[string]time.Time, len(m.static))
	for _, a := range m.static {
		created[a.Value] = a.Created
	}
	m.static = make([]Allow, 0, len(static))
	for _, a := range static {
		a.Static = true
		if t, ok := created[a.Value]; ok && !t.IsZero() {
			a.Created = t
		}
		m.static = append(m.static, a)
	}
	m.snapshotLocked()
}

func (m *Manager) snapshotLocked() {
	all := slices.Clone(m.static)
	for _, a := range m.dynamic {
		all = append(all, a)
	}
	m.allow.Store(&all)
}

// Allowed returns the live allowlist entry covering ip or one of names.
func (m *Manager) Allowed(ip netip.Addr, names []string, now time.Time) (Allow, bool) {
	ip = ip.Unmap()
	for _, a := range *m.allow.Load() {
		if a.live(now) && a.matches(ip, names) {
			return a, true
		}
	}
	return Allow{}, false
}

// Decide records a block for a suspicious verdict. A new block gets the
// policy's TTL, escalated by the IP's history. A verdict for an IP already
// blocked adds its cause to the block (newClient says whether the client is
// new to it, which a scoped firewall needs to know) and keeps its expiry.
func (m *Manager) Decide(v Verdict, c Cause, now time.Time) (b Block, out Outcome, newClient bool) {
	ip := v.IP.Unmap()
	names := []string{}
	if c.Qname != "" {
		names = append(names, c.Qname)
	}
	if _, ok := m.Allowed(ip, names, now); ok && !v.Force {
		return Block{IP: ip}, Allowed, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.blocks[ip]; ok && now.Before(cur.Expires) {
		newClient = c.Client.IsValid() && !slices.Contains(cur.Clients, c.Client.Unmap())
		addCause(cur, c)
		if !cur.Everyone() && v.Scope == risk.ScopeEveryone {
			cur.Scope, cur.Reasons, cur.Decision, cur.Version = risk.ScopeEveryone, slices.Clone(v.Reasons), v.Decision, v.Version
			return cloneBlock(cur), Widened, newClient
		}
		return cloneBlock(cur), Extended, newClient
	}
	repeats := 0
	if h, ok := m.history[ip]; ok && now.Sub(h.Last) < HistoryKeep {
		repeats = h.Count
	}
	ttl := m.policy.TTLFor(repeats)
	if v.TTL > 0 {
		ttl = v.TTL
	}
	b = Block{
		IP: ip, Decision: v.Decision, Reasons: slices.Clone(v.Reasons), Score: v.Score,
		Created: now, Expires: now.Add(ttl), TTL: ttl, Repeat: repeats, Monitor: m.policy.Monitor,
		Scope: v.Scope, Port: c.Port, Narrowed: v.Narrowed, Version: v.Version,
		Origin: v.Origin, Actor: v.Actor, Reason: v.Reason,
	}
	addCause(&b, c)
	m.blocks[ip] = &b
	if !b.Monitor {
		m.history[ip] = History{IP: ip, Count: repeats + 1, Last: b.Expires}
	}
	return cloneBlock(&b), Blocked, c.Client.IsValid()
}

func addCause(b *Block, c Cause) {
	add := func(list []string, s string) []string {
		if s == "" || slices.Contains(list, s) || len(list) >= 32 {
			return list
		}
		return append(list, s)
	}
	b.Events = add(b.Events, c.Event)
	b.Refs = add(b.Refs, c.Ref)
	b.Qnames = add(b.Qnames, c.Qname)
	if c.Client.IsValid() && !slices.Contains(b.Clients, c.Client.Unmap()) && len(b.Clients) < 32 {
		b.Clients = append(b.Clients, c.Client.Unmap())
	}
}

func cloneBlock(b *Block) Block {
	c := *b
	c.Reasons = slices.Clone(b.Reasons)
	c.Events = slices.Clone(b.Events)
	c.Refs = slices.Clone(b.Refs)
	c.Clients = slices.Clone(b.Clients)
	c.Qnames = slices.Clone(b.Qnames)
	return c
}

// Adopt records a block another node decided (a fleet shares them). It
// replaces a local block of the same IP only if it is a later change (a
// higher Version, or the same and it ends later), and it counts in the
// IP's history. It reports whether anything changed; an allowlisted IP is
// not adopted.
func (m *Manager) Adopt(b Block, now time.Time) bool {
	b.IP = b.IP.Unmap()
	if !b.IP.IsValid() || !now.Before(b.Expires) {
		return false
	}
	if _, ok := m.Allowed(b.IP, b.Qnames, now); ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.blocks[b.IP]; ok && (b.Version < cur.Version || b.Version == cur.Version && !b.Expires.After(cur.Expires)) {
		return false
	}
	b.TTL = b.Expires.Sub(b.Created)
	c := cloneBlock(&b)
	m.blocks[b.IP] = &c
	if !b.Monitor {
		if h := m.history[b.IP]; h.Count < b.Repeat+1 || h.Last.Before(b.Expires) {
			m.history[b.IP] = History{IP: b.IP, Count: max(h.Count, b.Repeat+1), Last: b.Expires}
		}
	}
	return true
}

// Unblock removes ip's block (a false positive, say) and forgets its
// history, so a later block does not escalate.
func (m *Manager) Unblock(ip netip.Addr) (Block, error) {
	ip = ip.Unmap()
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[ip]
	if !ok {
		return Block{}, ErrNotBlocked
	}
	delete(m.blocks, ip)
	delete(m.history, ip)
	return cloneBlock(b), nil
}

// AddAllow adds (or replaces) a dynamic allowlist entry and lifts the
// blocks it covers, which it returns.
func (m *Manager) AddAllow(a Allow, now time.Time) (lifted []Block) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.Created.IsZero() {
		a.Created = now
	}
	a.Static = false
	m.dynamic[a.Value] = a
	m.snapshotLocked()
	for ip, b := range m.blocks {
		if a.matches(ip, b.Qnames) {
			lifted = append(lifted, cloneBlock(b))
			delete(m.blocks, ip)
			delete(m.history, ip)
		}
	}
	slices.SortFunc(lifted, func(x, y Block) int { return x.IP.Compare(y.IP) })
	return lifted
}

// RemoveAllow deletes a dynamic allowlist entry by value.
func (m *Manager) RemoveAllow(value string) bool {
	a, err := ParseAllow(value)
	if err == nil {
		value = a.Value
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.dynamic[value]; !ok {
		return false
	}
	delete(m.dynamic, value)
	m.snapshotLocked()
	return true
}

// Dynamic returns the dynamic allowlist entry of value, live or not.
func (m *Manager) Dynamic(value string) (Allow, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.dynamic[value]
	return a, ok
}

// Allowlist returns the live entries, static first, then by value.
func (m *Manager) Allowlist(now time.Time) []Allow {
	var out []Allow
	for _, a := range *m.allow.Load() {
		if a.live(now) {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(x, y Allow) int {
		if x.Static != y.Static {
			if x.Static {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Value, y.Value)
	})
	return out
}

// Get returns ip's live block.
func (m *Manager) Get(ip netip.Addr, now time.Time) (Block, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[ip.Unmap()]
	if !ok || !now.Before(b.Expires) {
		return Block{}, false
	}
	return cloneBlock(b), true
}

// Active returns the live blocks sorted by IP (monitor ones included,
// marked).
func (m *Manager) Active(now time.Time) []Block {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Block, 0, len(m.blocks))
	for _, b := range m.blocks {
		if now.Before(b.Expires) {
			out = append(out, cloneBlock(b))
		}
	}
	slices.SortFunc(out, func(x, y Block) int { return x.IP.Compare(y.IP) })
	return out
}

// Sweep drops expired blocks (range blocks too), allowlist entries and
// history, and returns the blocks that expired.
func (m *Manager) Sweep(now time.Time) (expired []Block) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ip, b := range m.blocks {
		if !now.Before(b.Expires) {
			expired = append(expired, cloneBlock(b))
			delete(m.blocks, ip)
		}
	}
	for ip, h := range m.history {
		if now.Sub(h.Last) >= HistoryKeep {
			delete(m.history, ip)
		}
	}
	changed := false
	for v, a := range m.dynamic {
		if !a.live(now) {
			delete(m.dynamic, v)
			changed = true
		}
	}
	if changed {
		m.snapshotLocked()
	}
	slices.SortFunc(expired, func(x, y Block) int { return x.IP.Compare(y.IP) })
	return append(expired, m.sweepRangesLocked(now)...)
}

// History returns ip's block history.
func (m *Manager) History(ip netip.Addr) (History, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.history[ip.Unmap()]
	return h, ok
}

// Restore loads persisted state (after a restart): live blocks (range
// blocks too), history and dynamic allowlist entries. Expired ones are
// skipped.
func (m *Manager) Restore(blocks []Block, history []History, allow []Allow, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range blocks {
		b.TTL = b.Expires.Sub(b.Created)
		switch {
		case !now.Before(b.Expires):
		case b.Range.IsValid():
			m.ranges[b.Range.Masked()] = &b
		case b.IP.IsValid():
			m.blocks[b.IP] = &b
		}
	}
	for _, h := range history {
		if now.Sub(h.Last) < HistoryKeep && h.IP.IsValid() {
			m.history[h.IP] = h
		}
	}
	for _, a := range allow {
		parsed, err := ParseAllow(a.Value)
		if err != nil || !a.live(now) {
			continue
		}
		parsed.Until, parsed.Reason, parsed.Actor, parsed.Created, parsed.Version = a.Until, a.Reason, a.Actor, a.Created, a.Version
		m.dynamic[parsed.Value] = parsed
	}
	m.snapshotLocked()
	m.snapshotRangesLocked()
}
