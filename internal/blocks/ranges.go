package blocks

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/publicip"
)

// The broadest prefixes a range block may be: like an allowlist entry, a
// broader one reaches a large part of the Internet.
const (
	MinRangeBits4 = MaxAllowBits4
	MinRangeBits6 = MaxAllowBits6
)

// CheckRange returns p masked, or an error if it is broader than a /8 of
// IPv4 or a /32 of IPv6 (the allowlist's breadth rule) or holds a private
// or special-purpose address (answers with those are never inspected).
func CheckRange(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, errors.New("not a CIDR")
	}
	p = p.Masked()
	limit := MinRangeBits6
	if p.Addr().Is4() {
		limit = MinRangeBits4
	}
	if p.Bits() < limit {
		return p, fmt.Errorf("%s covers more than a /%d: block narrower ranges", p, limit)
	}
	if why := publicip.WhyPrefix(p); why != "" {
		return p, fmt.Errorf("%s is not public: %s", p, why)
	}
	return p, nil
}

// ErrRangeOverlap is the class of DecideRange's refusal of a range that
// overlaps one blocked already.
var ErrRangeOverlap = errors.New("overlaps a range blocked already")

// Key names what b blocks: its range (a CIDR) for a range block, else
// its IP. The state directory, the fleet and the audit log key blocks by it.
func (b Block) Key() string {
	if b.Range.IsValid() {
		return b.Range.String()
	}
	return b.IP.String()
}

// RangeHit is the active range block an address falls in, as the DNS
// path needs it.
type RangeHit struct {
	Range    netip.Prefix
	Decision string
	Reason   string
	Actor    string
	Expires  time.Time
}

// rangeSet is an immutable snapshot of the range blocks: per family,
// sorted by first address and never overlapping (DecideRange refuses an
// overlap), so that a lookup is one binary search.
type rangeSet struct {
	v4, v6 []RangeHit
}

func (rs *rangeSet) lookup(ip netip.Addr) (RangeHit, bool) {
	list := rs.v6
	if ip.Is4() {
		list = rs.v4
	}
	// The last range starting at or before ip is the only one that may
	// hold it.
	i := sort.Search(len(list), func(i int) bool { return ip.Less(list[i].Range.Addr()) })
	if i == 0 || !list[i-1].Range.Contains(ip) {
		return RangeHit{}, false
	}
	return list[i-1], true
}

// snapshotRangesLocked publishes the ranges for lock-free lookups; nil
// when there are none, so that DNS answers pay one atomic load.
func (m *Manager) snapshotRangesLocked() {
	if len(m.ranges) == 0 {
		m.rangeSnap.Store(nil)
		return
	}
	rs := &rangeSet{}
	for p, b := range m.ranges {
		h := RangeHit{Range: p, Decision: b.Decision, Reason: b.Reason, Actor: b.Actor, Expires: b.Expires}
		if p.Addr().Is4() {
			rs.v4 = append(rs.v4, h)
		} else {
			rs.v6 = append(rs.v6, h)
		}
	}
	byStart := func(x, y RangeHit) int { return x.Range.Addr().Compare(y.Range.Addr()) }
	slices.SortFunc(rs.v4, byStart)
	slices.SortFunc(rs.v6, byStart)
	m.rangeSnap.Store(rs)
}

// HasRanges reports whether any range block is held (live or not): when
// false, InRange finds none.
func (m *Manager) HasRanges() bool { return m.rangeSnap.Load() != nil }

// InRange returns the live range block ip falls in. Without range blocks
// it costs one atomic load.
func (m *Manager) InRange(ip netip.Addr, now time.Time) (RangeHit, bool) {
	rs := m.rangeSnap.Load()
	if rs == nil {
		return RangeHit{}, false
	}
	h, ok := rs.lookup(ip.Unmap())
	if !ok || !now.Before(h.Expires) {
		return RangeHit{}, false
	}
	return h, true
}

// DecideRange records an operator's block of the range v.Range for
// v.TTL, for everyone. It refuses (ErrRangeOverlap) a range that overlaps
// a live range block, and, unless v.Force, one that overlaps a live
// allowlist entry (the Allow is returned).
func (m *Manager) DecideRange(p netip.Prefix, v Verdict, now time.Time) (Block, error) {
	p = p.Masked()
	if !v.Force {
		for _, a := range *m.allow.Load() {
			if a.live(now) && a.prefix.IsValid() && a.prefix.Overlaps(p) {
				return Block{}, &AllowedError{Allow: a}
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for q, cur := range m.ranges {
		if now.Before(cur.Expires) && q.Overlaps(p) {
			return cloneBlock(cur), fmt.Errorf("%w: %s by decision %s", ErrRangeOverlap, q, cur.Decision)
		}
	}
	b := Block{Range: p, Decision: v.Decision, Reasons: slices.Clone(v.Reasons), Created: now, Expires: now.Add(v.TTL), TTL: v.TTL,
		Monitor: m.policy.Monitor, Scope: v.Scope, Version: v.Version, Origin: v.Origin, Actor: v.Actor, Reason: v.Reason}
	m.ranges[p] = &b
	m.snapshotRangesLocked()
	return cloneBlock(&b), nil
}

// AllowedError is DecideRange's refusal of a range an allowlist entry
// overlaps.
type AllowedError struct{ Allow Allow }

func (e *AllowedError) Error() string { return "overlaps the allowlist entry " + e.Allow.Value }

// GetRange returns the live block of exactly p.
func (m *Manager) GetRange(p netip.Prefix, now time.Time) (Block, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.ranges[p.Masked()]
	if !ok || !now.Before(b.Expires) {
		return Block{}, false
	}
	return cloneBlock(b), true
}

// UnblockRange removes the block of p.
func (m *Manager) UnblockRange(p netip.Prefix) (Block, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.ranges[p.Masked()]
	if !ok {
		return Block{}, ErrNotBlocked
	}
	delete(m.ranges, p.Masked())
	m.snapshotRangesLocked()
	return cloneBlock(b), nil
}

// AdoptRange records a range block another node decided, if it is a later
// change than the local block of the same range (see Adopt). An
// overlapping live range of another prefix keeps it out.
func (m *Manager) AdoptRange(b Block, now time.Time) bool {
	p := b.Range.Masked()
	if !p.IsValid() || !now.Before(b.Expires) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for q, cur := range m.ranges {
		switch {
		case !now.Before(cur.Expires) || !q.Overlaps(p):
		case q != p:
			return false
		case b.Version < cur.Version || b.Version == cur.Version && !b.Expires.After(cur.Expires):
			return false
		}
	}
	b.Range, b.TTL = p, b.Expires.Sub(b.Created)
	c := cloneBlock(&b)
	m.ranges[p] = &c
	m.snapshotRangesLocked()
	return true
}

// ActiveRanges returns the live range blocks sorted by range.
func (m *Manager) ActiveRanges(now time.Time) []Block {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Block, 0, len(m.ranges))
	for _, b := range m.ranges {
		if now.Before(b.Expires) {
			out = append(out, cloneBlock(b))
		}
	}
	slices.SortFunc(out, func(x, y Block) int { return x.Range.Addr().Compare(y.Range.Addr()) })
	return out
}

// sweepRangesLocked drops the expired range blocks and returns them.
func (m *Manager) sweepRangesLocked(now time.Time) (expired []Block) {
	for p, b := range m.ranges {
		if !now.Before(b.Expires) {
			expired = append(expired, cloneBlock(b))
			delete(m.ranges, p)
		}
	}
	if len(expired) > 0 {
		m.snapshotRangesLocked()
	}
	slices.SortFunc(expired, func(x, y Block) int { return x.Range.Addr().Compare(y.Range.Addr()) })
	return expired
}
