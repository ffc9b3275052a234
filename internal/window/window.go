// Package window remembers, for every client, which public IPs it was handed
// in DNS answers (and, later, which it connected to) over the last few
// minutes, so that a security event about a client can be traced back to
// the infrastructure it reached just before.
//
// Record sits on the DNS hot path and is called for every answer, so the
// store is sharded by client (one mutex per shard, no global lock) and a
// Record for a client already known does not allocate once its ring is full.
// Memory is bounded twice: per client (a ring of at most PerClient entries)
// and overall (Total, enforced per shard by dropping the oldest entries of
// the shard's least recently active client).
package window

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultRetain    = 15 * time.Minute
	DefaultPerClient = 256
	DefaultTotal     = 1_000_000
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
	// so they can lie outside the range that was asked for.
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
	// and the ring doubles on demand up to PerClient.
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
)

// entry is one recorded sighting run, 56 bytes. The IP is kept as 16 bytes
// (IPv4 in its IPv4-mapped form, undone on read) rather than a netip.Addr,
// which would add a zone pointer, 8 bytes and a pointer for the GC to scan.
type entry struct {
	ip    [16]byte
	name  string
	first int64 // unix ns
	last  int64 // unix ns
	count uint32
	port  uint16
}

// history is one client's ring of entries in insertion order, and its place
// in the shard's list of clients by recent activity.
type history struct {
	addr       netip.Addr
	ring       []entry
	head, n    int
	oldest     int64 // lower bound of the entries' last; lets Sweep skip the client
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
	c.ring[c.head] = entry{} // release the name
	c.head++
	if c.head == len(c.ring) {
		c.head = 0
	}
	c.n--
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
	// mru and lru are the ends of the list of clients by last Record.
	mru, lru  *history
	n         int    // entries held
	evicted   uint64 // entries pushed out by a cap
	perClient int
	capacity  int
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
// shards over their share of Total lose their least recently active
// clients' entries, all counted in Evicted. A shorter Retain applies from the
// next Sweep.
func (s *Store) SetLimits(cfg Config) {
	cfg = cfg.withDefaults()
	s.retain.Store(int64(cfg.Retain))
	capacity := (cfg.Total + shards - 1) / shards
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.perClient, sh.capacity = cfg.PerClient, capacity
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
			sh.evictLRU(nil)
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
		c = &history{addr: client, ring: make([]entry, min(minRing, sh.perClient)), oldest: at}
		sh.clients[client] = c
		sh.pushFront(c)
	} else if sh.mru != c {
		sh.unlink(c)
		sh.pushFront(c)
	}
	for _, ip := range ips {
		if ip.IsValid() {
			sh.add(c, ip.Unmap().As16(), name, port, at)
		}
	}
	sh.mu.Unlock()
}

func (sh *shard) add(c *history, ip [16]byte, name string, port uint16, at int64) {
	for k := c.n - 1; k >= 0 && k >= c.n-dedupDepth; k-- {
		e := c.at(k)
		if e.ip == ip && e.port == port && e.name == name && at <= e.last+mergeGap && at >= e.first-mergeGap {
			e.first, e.last = min(e.first, at), max(e.last, at)
			if e.count < ^uint32(0) {
				e.count++
			}
			return
		}
	}
	if c.n == len(c.ring) {
		if c.n < sh.perClient {
			c.resize(min(2*len(c.ring), sh.perClient))
		} else {
			c.dropOldest()
			sh.n--
			sh.evicted++
		}
	}
	for sh.n >= sh.capacity {
		sh.evictLRU(c)
	}
	*c.at(c.n) = entry{ip: ip, name: name, first: at, last: at, count: 1, port: port}
	c.n++
	sh.n++
	c.oldest = min(c.oldest, at)
}

// evictLRU drops the oldest entry of the least recently active client, and
// the client itself once empty, unless it is keep (the client being
// recorded, which is then the only one left).
func (sh *shard) evictLRU(keep *history) {
	v := sh.lru
	v.dropOldest()
	sh.n--
	sh.evicted++
	if v.n == 0 && v != keep {
		sh.remove(v)
	}
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
	if !client.IsValid() {
		return nil
	}
	client = normal(client)
	lo, hi := from.UnixNano(), to.UnixNano()
	sh := s.shard(client)
	// Copy under the lock, merge outside it: Record waits on this lock.
	var found []entry
	sh.mu.Lock()
	if c := sh.clients[client]; c != nil {
		for k := range c.n {
			if e := c.at(k); e.first <= hi && e.last >= lo {
				found = append(found, *e)
			}
		}
	}
	sh.mu.Unlock()
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
			firsts, lasts = append(firsts, e.first), append(lasts, e.last)
		}
		sg := &out[i]
		firsts[i], lasts[i] = min(firsts[i], e.first), max(lasts[i], e.last)
		sg.Count += int(e.count)
		if e.name != "" && len(sg.Names) < MaxNames && !slices.Contains(sg.Names, e.name) {
			sg.Names = append(sg.Names, e.name)
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
			size := len(c.ring)
			for size > minRing && c.n <= size/4 {
				size /= 2
			}
			if size != len(c.ring) {
				c.resize(size)
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}

// Evicted returns how many entries a cap (PerClient or Total) has pushed out
// since New.
func (s *Store) Evicted() uint64 {
	var n uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.evicted
		sh.mu.Unlock()
	}
	return n
}

// Len returns how many entries the store holds.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// Clients returns how many clients the store holds entries for.
func (s *Store) Clients() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.clients)
		sh.mu.Unlock()
	}
	return n
}
