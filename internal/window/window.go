// Package window remembers, for every client, which public IPs it was handed
// in DNS answers (and, later, which it connected to) over the last few
// minutes, so that a security event about a client can be traced back to
// the infrastructure it reached just before.
//
// Record sits on the DNS hot path and is called for every answer, so the
// store is sharded by client (one mutex per shard, no global lock) and a
// Record for a client already known does not allocate once its ring is full.
// Memory is bounded twice: per client (a ring of at most PerClient entries)
// and overall (Total, enforced per shard; see evict for which window pays
// when a shard is full, and how a flood of spoofed sources is kept from
// pushing out the window of a client whose event has not arrived yet).
//
// An entry takes 56 bytes. Once a shard is a quarter full, names are shared
// through a small cache (see nameCache), so the entries of a popular name
// share one copy of it instead of each keeping the string the DNS library
// allocated for its message. A sighting run's first time is kept as a millisecond
// offset below its last, so Sighting.First has millisecond precision (see
// there).
package window

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultRetain    = 15 * time.Minute
	DefaultPerClient = 256
	DefaultTotal     = 400_000
	DefaultKeep      = 5 * time.Minute
)

// Config bounds the store. Zero or negative fields take the defaults.
type Config struct {
	Retain    time.Duration // Sweep drops entries whose last sighting is older than this
	PerClient int           // max entries per client; the oldest is overwritten first
	// Total is the max entries overall. It is enforced per shard, as
	// ceil(Total/64) each, so that no global lock or counter is needed; as
	// clients do not spread perfectly evenly, a full store holds slightly
	// fewer than Total.
	Total int
	// Keep is how recently a window must have been recorded to be spared
	// by the Total cap while an idle one can go instead: the backtrack
	// window of an event, so a client whose event is on its way keeps the
	// answers the event will ask for.
	Keep time.Duration
	// Protect, if set, reports whether client's window must be spared by
	// the Total cap (the engine passes tags.Set.Tagged). It is called with
	// a shard's lock held, only when the shard is full, so it must be
	// cheap and must not call the Store.
	Protect func(client netip.Addr, now time.Time) bool
}

func (c Config) withDefaults() Config {
	if c.Retain <= 0 {
		c.Retain = DefaultRetain
	}
	if c.PerClient <= 0 {
		c.PerClient = DefaultPerClient
	}
	if c.Total <= 0 {
		c.Total = DefaultTotal
	}
	if c.Keep <= 0 {
		c.Keep = DefaultKeep
	}
	if c.Protect == nil {
		c.Protect = func(netip.Addr, time.Time) bool { return false }
	}
	return c
}

// Sighting is one destination IP of a client, merged over the entries of a
// time range.
type Sighting struct {
	IP    netip.Addr
	Names []string // distinct non-empty names, in first-seen order, at most MaxNames
	Ports []uint16 // distinct non-zero ports, in first-seen order, at most MaxPorts
	// First and Last are the earliest and latest sightings of the merged
	// entries. An entry stands for a run of repeated sightings (see Record),
	// so they can lie outside the range that was asked for. Last is exact.
	// First is exact for an entry of a single sighting; for a run it is Last
	// less a whole number of milliseconds, in the same millisecond as the
	// run's first sighting (so within 1ms of it). A run spanning more than
	// 2^32 ms (about 49 days) reports First 2^32 ms before Last.
	First, Last time.Time
	Count       int // sightings merged, repeats included
}

// Limits on the lists of a Sighting, so one busy IP (a CDN address serving
// thousands of names) cannot make a report unbounded.
const (
	MaxNames = 8
	MaxPorts = 8
)

const (
	shardBits = 6
	shards    = 1 << shardBits

	// minRing is a new client's ring size: most clients hold few entries,
	// and the ring grows by half (see grow) on demand up to PerClient.
	minRing = 4

	// dedupDepth is how many of a client's latest entries Record compares
	// with a new one. An app that re-resolves one name in a loop hits the
	// same entry and so cannot flush the client's history.
	dedupDepth = 4

	// mergeGap is the longest pause between two sightings of the same (IP,
	// name, port) that still extends one entry. Bounding it keeps a merged
	// entry honest: every instant of its span [first, last] is within
	// mergeGap of a real sighting.
	mergeGap = int64(time.Minute)

	// ms is the unit of entry.span.
	ms = int64(time.Millisecond)
)

// entry is one recorded sighting run, 56 bytes (50 of fields). The IP is
// kept as 16 bytes (IPv4 in its IPv4-mapped form, undone on read) rather
// than a netip.Addr, which would add a zone pointer, 8 bytes and a pointer
// for the GC to scan. The name is "" for a connection record; once the
// shard is a quarter full it is a shared copy (see nameCache). The run's first
// sighting is not kept
// as a second int64 but as span, the milliseconds from its millisecond to
// last's, which a merge recomputes from those absolute milliseconds so that
// rounding never accumulates: first() is in the same millisecond as the
// true first sighting (until span saturates), and equals last for a single
// sighting.
type entry struct {
	ip    [16]byte
	name  string
	last  int64 // unix ns
	count uint32
	span  uint32 // ms from the first sighting's millisecond to last's, saturating
	port  uint16
}

// first is the run's first sighting: last less span milliseconds.
func (e *entry) first() int64 { return e.last - int64(e.span)*ms }

// extend merges a sighting at into the run.
func (e *entry) extend(at int64) {
	firstMs := msOf(e.last) - int64(e.span)
	e.last = max(e.last, at)
	e.span = spanMs(msOf(e.last) - min(firstMs, msOf(at)))
	if e.count < ^uint32(0) {
		e.count++
	}
}

// msOf is the millisecond t (unix ns) falls in, rounding down.
func msOf(t int64) int64 {
	q := t / ms
	if t%ms < 0 {
		q--
	}
	return q
}

// spanMs saturates d into an entry's span.
func spanMs(d int64) uint32 {
	return uint32(min(d, int64(^uint32(0))))
}

// history is one client's ring of entries in insertion order, and its place
// in the shard's list of clients by recent activity.
type history struct {
	addr       netip.Addr
	ring       []entry
	head, n    int
	oldest     int64 // lower bound of the entries' last; lets Sweep skip the client
	touched    int64 // latest time Record was called for the client with
	prev, next *history
}

func (c *history) at(k int) *entry {
	i := c.head + k
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	return &c.ring[i]
}

// dropOldest frees the entry recorded first.
func (c *history) dropOldest() {
	c.ring[c.head] = entry{} // release the name handle
	c.head++
	if c.head == len(c.ring) {
		c.head = 0
	}
	c.n--
}

// grow is the next ring size up from size: half as much again, at least two
// more, at most perClient. From minRing: 6, 9, 13, 19, 28, 42, 63, 94, ...
func grow(size, perClient int) int {
	return min(max(size+size/2, size+2), perClient)
}

// resize moves the entries into a ring of the given size, oldest first.
func (c *history) resize(size int) {
	ring := make([]entry, size)
	for k := range c.n {
		ring[k] = *c.at(k)
	}
	c.ring, c.head = ring, 0
}

type shard struct {
	mu      sync.Mutex
	clients map[netip.Addr]*history
	// mru and lru are the ends of the list of clients by last Record (but
	// for the protected windows evict moves up from the tail).
	mru, lru  *history
	n         int    // entries held
	evicted   uint64 // entries pushed out by a cap
	protected uint64 // of those, taken from a protected window (see evict)
	perClient int
	capacity  int
	keep      int64 // Config.Keep
	protect   func(netip.Addr, time.Time) bool
	// Keep two shards' locks off one cache line pair: neighbouring shards
	// are taken by different CPUs at once.
	_ [64]byte
}

// Store holds recent sightings per client. It is safe for concurrent use.
type Store struct {
	seed   uint64
	retain atomic.Int64
	shards [shards]shard
}

// New returns an empty store bounded by cfg.
func New(cfg Config) *Store {
	s := &Store{seed: rand.Uint64()}
	for i := range s.shards {
		s.shards[i].clients = make(map[netip.Addr]*history)
	}
	s.SetLimits(cfg)
	return s
}

// SetLimits applies new limits, for a Corefile reload. Shrinking takes effect
// immediately: clients over the new PerClient lose their oldest entries and
// shards over their share of Total lose entries as a full shard does on
// Record (see evict), taking a shard's latest Record as the time, all
// counted in Evicted. A shorter Retain applies from the next Sweep.
func (s *Store) SetLimits(cfg Config) {
	cfg = cfg.withDefaults()
	s.retain.Store(int64(cfg.Retain))
	capacity := (cfg.Total + shards - 1) / shards
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.perClient, sh.capacity = cfg.PerClient, capacity
		sh.keep, sh.protect = int64(cfg.Keep), cfg.Protect
		for _, c := range sh.clients {
			for c.n > sh.perClient {
				c.dropOldest()
				sh.n--
				sh.evicted++
			}
			if len(c.ring) > sh.perClient {
				c.resize(sh.perClient)
			}
		}
		for sh.n > sh.capacity {
			sh.evict(nil, sh.mru.touched)
		}
		sh.mu.Unlock()
	}
}

// normal makes one key of one host: IPv4-mapped IPv6 is IPv4, and a zone
// names an interface, not a host.
func normal(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func (s *Store) shard(a netip.Addr) *shard {
	b := a.As16()
	h := (binary.LittleEndian.Uint64(b[8:]) ^ s.seed) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(b[:8])) * 0xbf58476d1ce4e5b9
	return &s.shards[h>>(64-shardBits)]
}

// Record notes that client was handed ips for name at now (a DNS answer,
// port 0), or connected to them on port (a connection record, name "").
// IPv4-mapped addresses (client or ips) count as the IPv4 address they
// carry and zones are dropped, so one host is one key. Invalid addresses are
// ignored, and so is a call without ips. A sighting
// equal in (IP, name, port) to one of the client's last few entries, and
// within a minute of it, extends that entry instead of adding one.
func (s *Store) Record(client netip.Addr, name string, ips []netip.Addr, port uint16, now time.Time) {
	if len(ips) == 0 || !client.IsValid() {
		return
	}
	client = normal(client)
	at := now.UnixNano()
	sh := s.shard(client)
	sh.mu.Lock()
	c := sh.clients[client]
	if c == nil {
		c = &history{addr: client, ring: make([]entry, min(minRing, sh.perClient)), oldest: at, touched: at}
		sh.clients[client] = c
		sh.pushFront(c)
	} else if sh.mru != c {
		sh.unlink(c)
		sh.pushFront(c)
	}
	c.touched = max(c.touched, at)
	// shared is name as the new entries keep it: the caller's string, or,
	// once the shard is a quarter full, a shared copy (see nameCache), looked up
	// at most once per call and only if an entry is stored.
	shared, looked := name, name == ""
	for _, ip := range ips {
		if ip.IsValid() {
			sh.add(c, ip.Unmap().As16(), name, &shared, &looked, port, at)
		}
	}
	sh.mu.Unlock()
}

// add records one sighting of ip. shared and looked carry the name a new
// entry keeps across the IPs of one Record; add looks it up when it first
// stores an entry.
func (sh *shard) add(c *history, ip [16]byte, name string, shared *string, looked *bool, port uint16, at int64) {
	for k := c.n - 1; k >= 0 && k >= c.n-dedupDepth; k-- {
		e := c.at(k)
		if e.ip == ip && e.port == port && at <= e.last+mergeGap && at >= e.first()-mergeGap && e.name == name {
			e.extend(at)
			return
		}
	}
	if !*looked {
		*looked = true
		if sh.n >= sh.capacity/shareFrom {
			*shared = intern(c, name)
		}
	}
	if c.n == len(c.ring) {
		if c.n < sh.perClient {
			c.resize(grow(len(c.ring), sh.perClient))
		} else {
			c.dropOldest()
			sh.n--
			sh.evicted++
		}
	}
	for sh.n >= sh.capacity {
		sh.evict(c, at)
	}
	*c.at(c.n) = entry{ip: ip, name: *shared, last: at, count: 1, port: port}
	c.n++
	sh.n++
	c.oldest = min(c.oldest, at)
}

// intern returns a shared copy of name, which is not "". It takes it from
// the client's latest entry when that carries name, as after an answer to
// the name's other address type, and otherwise from nameTable.
func intern(c *history, name string) string {
	if c.n > 0 {
		if e := c.at(c.n - 1); e.name == name {
			return e.name
		}
	}
	return nameTable.intern(name)
}

// nameCache shares the names of entries. miekg/dns allocates a fresh name
// string per message, so without sharing every entry would keep its own
// copy: about 30 bytes per entry, a quarter of the store's memory. It is a
// direct-mapped cache, not a complete intern table: a hit costs a hash, one
// atomic load and a string compare, and a miss (a name not seen lately, or
// one whose slot another name took) clones the name and takes the slot.
// Entries hold their name, so a name taken out of the cache lives on as
// long as they need it; the cache itself keeps at most len(slots) names
// alive.
//
// The lookup still costs about 1.6% of a busy server's CPU when every
// answer is a new entry, for memory that matters only when the store is
// large, so a shard shares names only once it is a quarter full. (unique.Make
// was tried first: its concurrent trie, with weak pointers, cost about 1 us
// per lookup with 100k distinct names.)
type nameCache struct {
	seed  maphash.Seed
	slots [1 << 14]atomic.Pointer[string]
}

var nameTable = &nameCache{seed: maphash.MakeSeed()}

// shareFrom: a shard shares names once it holds 1/shareFrom of its share of
// Total.
const shareFrom = 4

func (nc *nameCache) intern(name string) string {
	slot := &nc.slots[maphash.String(nc.seed, name)&(uint64(len(nc.slots))-1)]
	if p := slot.Load(); p != nil && *p == name {
		return *p
	}
	p := new(string)
	*p = strings.Clone(name) // never keep the caller's string
	slot.Store(p)
	return *p
}

// sample is how many windows evict looks at from each end of a shard's list
// by recent activity. Eviction runs only in a full shard, about once per
// entry stored there (less when it drops a whole idle window), so this
// bounds its cost: at most 2*sample candidates and as many Protect calls.
const sample = 8

// candidate is a window evict may take entries from.
type candidate struct {
	h    *history
	tail bool // met from the least recently active end
}

// evict makes room for one entry in a full shard for c, the client being
// recorded (nil from SetLimits), at now (unix ns). It samples the sample
// least and the sample most recently active windows other than c's (all of
// them in a small shard) and takes, in this order:
//
//  1. The whole window of an idle, unprotected client, one not recorded
//     within Keep and not Protected: the heaviest (most entries) first, then
//     the least recently recorded. Idle windows are what the cap is for: an
//     event arriving now does not backtrack as far by default, and the
//     heaviest frees the most room per scan.
//  2. Else the oldest entry of the lightest unprotected window recorded
//     within Keep, the most recently created first (the latest oldest
//     entry). This is the flood case: spoofed sources are new, with an entry
//     or two each, so they make room for each other instead of pushing out
//     the established window of a client whose event is on its way.
//  3. Else, every candidate being Protected (an after_hours schedule, a
//     tagged segment filling the shard), the rule before protection, so
//     memory stays bounded: the oldest entry of the least recently active
//     client, c's own only when c is alone.
//
// 2 and 3 take from a protected window and are counted in EvictedProtected.
// The head sample is what makes 2 work: in a flood the spoofed windows are
// the most recently active, the established ones sit at the tail. A
// Protected window met at the tail is moved up, behind the sampled head, so
// that later scans meet other windows rather than a tagged segment's quiet
// clients every time.
func (sh *shard) evict(c *history, now int64) {
	var buf [2 * sample]candidate
	cands, behind := sh.sample(c, &buf)
	idleBefore := now - sh.keep
	at := time.Unix(0, now)
	// The first unprotected candidate in evictOrder; Protect is asked only
	// of a candidate that would come before the best one found so far.
	var victim *history
	for _, cd := range cands {
		if victim != nil && evictOrder(cd.h, victim, idleBefore) >= 0 {
			continue
		}
		if !sh.protect(cd.h.addr, at) {
			victim = cd.h
			continue
		}
		if cd.tail && behind != nil {
			sh.unlink(cd.h)
			sh.insertAfter(behind, cd.h)
		}
	}
	switch {
	case victim != nil && victim.touched < idleBefore:
		sh.n -= victim.n
		sh.evicted += uint64(victim.n)
		sh.remove(victim)
		return
	case victim == nil:
		victim = sh.lru
		if victim == c && c.prev != nil {
			victim = c.prev
		}
	}
	victim.dropOldest()
	sh.n--
	sh.evicted++
	sh.protected++
	if victim.n == 0 && victim != c {
		sh.remove(victim)
	}
}

// sample fills buf with evict's candidates: the windows other than c's,
// from the tail and from the head of the activity list. behind is the last
// window sampled from the head, nil when the whole list was sampled.
func (sh *shard) sample(c *history, buf *[2 * sample]candidate) (cands []candidate, behind *history) {
	cands = buf[:0]
	if len(sh.clients) <= 2*sample {
		for v := sh.lru; v != nil; v = v.prev {
			if v != c {
				cands = append(cands, candidate{h: v})
			}
		}
		return cands, nil
	}
	// The list is longer than 2*sample: the two walks do not meet.
	v := sh.lru
	for range sample {
		if v != c {
			cands = append(cands, candidate{h: v, tail: true})
		}
		v = v.prev
	}
	v = sh.mru
	for range sample {
		if v != c {
			cands = append(cands, candidate{h: v})
		}
		behind, v = v, v.next
	}
	return cands, behind
}

// evictOrder ranks evict's candidates: idle windows (recorded before
// idleBefore) first, heaviest then least recently recorded; then recent
// ones, lightest then newest.
func evictOrder(a, b *history, idleBefore int64) int {
	aIdle, bIdle := a.touched < idleBefore, b.touched < idleBefore
	switch {
	case aIdle != bIdle:
		if aIdle {
			return -1
		}
		return 1
	case aIdle:
		if d := cmp.Compare(b.n, a.n); d != 0 {
			return d
		}
		return cmp.Compare(a.touched, b.touched)
	}
	if d := cmp.Compare(a.n, b.n); d != 0 {
		return d
	}
	return cmp.Compare(b.oldest, a.oldest)
}

func (sh *shard) remove(c *history) {
	sh.unlink(c)
	delete(sh.clients, c.addr)
}

func (sh *shard) pushFront(c *history) {
	c.prev, c.next = nil, sh.mru
	if sh.mru != nil {
		sh.mru.prev = c
	} else {
		sh.lru = c
	}
	sh.mru = c
}

// insertAfter links c, which is not in the list, right after p (towards the
// least recently active end).
func (sh *shard) insertAfter(p, c *history) {
	c.prev, c.next = p, p.next
	if p.next != nil {
		p.next.prev = c
	} else {
		sh.lru = c
	}
	p.next = c
}

func (sh *shard) unlink(c *history) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		sh.mru = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		sh.lru = c.prev
	}
	c.prev, c.next = nil, nil
}

// Sightings returns the destination IPs of client's entries that overlap
// from <= t <= to, one Sighting per IP, ordered by First (then by IP). It
// returns nil for an unknown client or an empty range.
func (s *Store) Sightings(client netip.Addr, from, to time.Time) []Sighting {
	return merge(s.entries(client, netip.Addr{}, from, to))
}

// SightingOf returns what Sightings says of ip alone, without merging the
// client's other entries: the engine asks it for every tagged client on
// every fresh verdict.
func (s *Store) SightingOf(client, ip netip.Addr, from, to time.Time) (Sighting, bool) {
	if !ip.IsValid() {
		return Sighting{}, false
	}
	out := merge(s.entries(client, ip, from, to))
	if len(out) == 0 {
		return Sighting{}, false
	}
	return out[0], true
}

// entries copies client's entries that overlap from..to (those for ip
// only, if it is valid).
func (s *Store) entries(client, ip netip.Addr, from, to time.Time) []entry {
	if !client.IsValid() {
		return nil
	}
	client = normal(client)
	want, one := normal(ip).As16(), ip.IsValid()
	lo, hi := from.UnixNano(), to.UnixNano()
	sh := s.shard(client)
	// Copy under the lock, merge outside it: Record waits on this lock.
	var found []entry
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.clients[client]; c != nil {
		for k := range c.n {
			if e := c.at(k); e.first() <= hi && e.last >= lo && (!one || e.ip == want) {
				found = append(found, *e)
			}
		}
	}
	return found
}

// merge makes one Sighting per IP of found, ordered by First (then IP).
func merge(found []entry) []Sighting {
	if len(found) == 0 {
		return nil
	}
	out := make([]Sighting, 0, len(found))
	index := make(map[[16]byte]int, len(found))
	firsts := make([]int64, 0, len(found))
	lasts := make([]int64, 0, len(found))
	for _, e := range found {
		i, ok := index[e.ip]
		if !ok {
			i = len(out)
			index[e.ip] = i
			out = append(out, Sighting{IP: netip.AddrFrom16(e.ip).Unmap()})
			firsts, lasts = append(firsts, e.first()), append(lasts, e.last)
		}
		sg := &out[i]
		firsts[i], lasts[i] = min(firsts[i], e.first()), max(lasts[i], e.last)
		sg.Count += int(e.count)
		if name := e.name; name != "" && len(sg.Names) < MaxNames && !slices.Contains(sg.Names, name) {
			sg.Names = append(sg.Names, name)
		}
		if e.port != 0 && len(sg.Ports) < MaxPorts && !slices.Contains(sg.Ports, e.port) {
			sg.Ports = append(sg.Ports, e.port)
		}
	}
	for i := range out {
		out[i].First, out[i].Last = time.Unix(0, firsts[i]).UTC(), time.Unix(0, lasts[i]).UTC()
	}
	slices.SortFunc(out, func(a, b Sighting) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return out
}

// Sweep drops the entries whose last sighting is older than now-Retain and
// the clients left without entries, and gives back ring space a client no
// longer uses. It returns how many entries it dropped; they are not counted
// in Evicted.
func (s *Store) Sweep(now time.Time) (dropped int) {
	cutoff := now.UnixNano() - s.retain.Load()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, c := range sh.clients {
			if c.oldest >= cutoff {
				continue
			}
			kept, oldest := 0, int64(0)
			for k := range c.n {
				e := *c.at(k)
				if e.last < cutoff {
					continue
				}
				if kept == 0 || e.last < oldest {
					oldest = e.last
				}
				*c.at(kept) = e
				kept++
			}
			for k := kept; k < c.n; k++ {
				*c.at(k) = entry{}
			}
			dropped += c.n - kept
			sh.n -= c.n - kept
			c.n, c.oldest = kept, oldest
			if c.n == 0 {
				sh.remove(c)
				continue
			}
			// Halve a ring at most a quarter full, never below minRing: it
			// keeps room for as many entries again, so Sweep and Record do
			// not resize it back and forth.
			size := len(c.ring)
			for size > minRing && c.n <= size/4 {
				size = max(size/2, minRing)
			}
			if size != len(c.ring) {
				c.resize(size)
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}

// NamesOf returns the distinct names that any client was answered ip for
// since then, at most limit of them. It walks every shard (each under its
// own lock, briefly), so it is for rare questions such as "is this
// suspicious IP a shared front?", never for the DNS path.
func (s *Store) NamesOf(ip netip.Addr, since time.Time, limit int) []string {
	key, lo := normal(ip).As16(), since.UnixNano()
	seen := map[string]bool{}
	var out []string
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, c := range sh.clients {
			for k := range c.n {
				if e := c.at(k); e.ip == key && e.last >= lo && e.name != "" && !seen[e.name] {
					seen[e.name] = true
					out = append(out, e.name)
				}
			}
		}
		sh.mu.Unlock()
		if len(out) >= limit {
			return out[:limit]
		}
	}
	return out
}

// Evicted returns how many entries a cap (PerClient or Total) has pushed out
// since New.
func (s *Store) Evicted() uint64 { return sum(s, func(sh *shard) uint64 { return sh.evicted }) }

// EvictedProtected returns how many of the entries counted in Evicted were
// taken by the Total cap from a protected window (recorded within Keep, or
// Protected) because every window sampled was protected: a sign that Total
// is too small for the clients, or of a flood.
func (s *Store) EvictedProtected() uint64 {
	return sum(s, func(sh *shard) uint64 { return sh.protected })
}

// Len returns how many entries the store holds.
func (s *Store) Len() int { return sum(s, func(sh *shard) int { return sh.n }) }

// Clients returns how many clients the store holds entries for.
func (s *Store) Clients() int { return sum(s, func(sh *shard) int { return len(sh.clients) }) }

// sum adds up a figure of every shard, each read under its lock.
func sum[T int | uint64](s *Store, of func(*shard) T) T {
	var n T
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += of(sh)
		sh.mu.Unlock()
	}
	return n
}
