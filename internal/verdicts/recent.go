package verdicts

import (
	"math/bits"
	"net/netip"
	"sync/atomic"
)

// recent is a direct-mapped table of the verdicts most recently put,
// indexed by a hash of the IP, which a lookup reads before the LRU. On a
// busy server a lookup's reads are cache misses, and tagged clients pay
// them for every answer IP (is it validated already? is it suspicious?),
// so an entry is the record a lookup needs: for an IPv4 address, the
// address, its verdict's expiry and outcome and its last move in the LRU,
// in 32 bytes (one cache line, no lock, no other read); for an IPv6
// address, the slot, read as well.
//
// Only writers, under the cache's writeMu, change the key, the expiry
// and the slot: put sets the entry of the slot it adds, and the eviction
// callback clears the entry of the slot it evicts, so every record in it
// is one the LRU holds for the same IP. A writer first stores a key with a
// new generation and no address, then the fields, then the final key; a
// reader that loads the same key before and after its reads has read one
// record. A miss (an IP whose entry another IP's put took) falls back to
// the LRU.
type recent struct {
	shift   uint
	entries []recentEntry
}

// recentEntry is one IP's record in recent.
type recentEntry struct {
	key     atomic.Uint64 // keyUsed and the flags, the generation (bits 8-31), an IPv4 address (bits 32-63)
	expires atomic.Int64  // the slot's expires
	// promoted mirrors the slot's (lookups through the entry read it
	// here); a move in the LRU stores both.
	promoted atomic.Int64
	slot     atomic.Pointer[slot]
}

// The key's flags, and its generation's unit.
const (
	keyUsed       = 1 << 0
	keySuspicious = 1 << 1
	keyV4         = 1 << 2
	keyGen        = 1 << 8
	keyGenMask    = 0xffffff << 8
	keyAddrMask   = ^uint64(0xffffffff)
)

// Bounds of the recent table's length: a power of two at least the cache
// size, within these (32 bytes an entry: 2 MiB at most).
const (
	recentMin = 1 << 6
	recentMax = 1 << 16
)

func newRecent(size int) recent {
	n := recentMin
	for n < size && n < recentMax {
		n <<= 1
	}
	return recent{shift: uint(64 - bits.TrailingZeros(uint(n))), entries: make([]recentEntry, n)}
}

func (r recent) entry(ip netip.Addr) *recentEntry { return &r.entries[ipHash(ip)>>r.shift] }

// v4Key is ip's address bits of a key.
func v4Key(ip netip.Addr) uint64 {
	b := ip.As4()
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32
}

// set makes s the entry's record; under writeMu.
func (e *recentEntry) set(s *slot) {
	gen := (e.key.Load() + keyGen) & keyGenMask
	e.key.Store(gen)
	e.expires.Store(s.expires)
	e.promoted.Store(s.promoted.Load())
	e.slot.Store(s)
	k := gen | keyUsed
	if s.suspicious {
		k |= keySuspicious
	}
	if s.ip.Is4() {
		k |= keyV4 | v4Key(s.ip)
	}
	e.key.Store(k)
}

// clear empties the entry if its record is s; under writeMu.
func (e *recentEntry) clear(s *slot) {
	if e.slot.Load() != s {
		return
	}
	e.key.Store((e.key.Load() + keyGen) & keyGenMask)
	e.slot.Store(nil)
}

// read returns ip's record from e: the slot, its expiry and outcome, and
// ok false if e holds another IP's (or none, or changed while read).
func (e *recentEntry) read(ip netip.Addr) (s *slot, expires int64, suspicious, ok bool) {
	k := e.key.Load()
	if k&keyUsed == 0 {
		return nil, 0, false, false
	}
	if ip.Is4() {
		if k&keyV4 == 0 || k&keyAddrMask != v4Key(ip) {
			return nil, 0, false, false
		}
		s, expires = e.slot.Load(), e.expires.Load()
		if e.key.Load() != k || s == nil {
			return nil, 0, false, false
		}
		return s, expires, k&keySuspicious != 0, true
	}
	// An IPv6 record is its slot, which is never modified but for its
	// promoted time.
	if s = e.slot.Load(); s == nil || s.ip != ip {
		return nil, 0, false, false
	}
	return s, s.expires, s.suspicious, true
}
