// Package verdicts holds the verdict cache: what the validation of each
// public IP concluded, until when that conclusion stands, and a lock-free
// index of the suspicious ones, which the DNS path consults for every
// answer.
//
// The store is a size-bounded LRU (hashicorp/golang-lru/v2). The expiry
// depends on the outcome, so it is kept per verdict and checked here,
// against a time the caller passes: tests and replays control the clock,
// and a lookup on the DNS path reads no clock of its own. Sweep frees
// expired verdicts.
package verdicts

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
)

// Outcome is what a validation concluded.
type Outcome string

// The outcomes. An error is never a clean verdict: the IP is unknown, and
// the caller's fail-open or fail-closed policy decides.
const (
	Clean      Outcome = "clean"
	Suspicious Outcome = "suspicious"
	Error      Outcome = "error"
)

// Defaults for New and Resize arguments left zero.
const (
	DefaultSize          = 10000
	DefaultSuspiciousTTL = 24 * time.Hour
	DefaultCleanTTL      = time.Hour
	DefaultErrorTTL      = time.Minute
)

// Verdict is the cached conclusion about one IP.
type Verdict struct {
	IP      netip.Addr    `json:"ip"`
	Outcome Outcome       `json:"outcome"`
	Reasons []risk.Reason `json:"reasons,omitempty"`
	Score   string        `json:"score,omitempty"`
	// Scope is how far a suspicious verdict reaches (risk.Policy.ScopeOf its
	// reasons): every client, tagged clients only, or nobody (monitor).
	Scope risk.Scope `json:"scope,omitempty"`
	// Domains is how many domains the report says point at the IP; many
	// mark shared infrastructure, enforced by name only.
	Domains int `json:"domains,omitempty"`
	// SeenDomains is how many registrable domains this resolver saw
	// resolve to the IP within its retained answers, counted when the
	// verdict turned suspicious (up to the shared threshold).
	SeenDomains int                  `json:"seen_domains,omitempty"`
	Decision    string               `json:"decision,omitempty"` // decision id of a suspicious verdict, see NewDecisionID
	Error       criminalip.ErrorKind `json:"error,omitempty"`    // for Outcome Error: the failure's kind
	Note        string               `json:"note,omitempty"`     // who decided, when not the API (an operator's unblock)
	// Evidence is an excerpt of the report behind a suspicious verdict,
	// for the decision history; nil for other verdicts.
	Evidence *Evidence `json:"evidence,omitempty"`
	Checked  time.Time `json:"checked"`
	Expires  time.Time `json:"expires"`
}

// Suspicious reports whether v is a suspicious verdict.
func (v Verdict) Suspicious() bool { return v.Outcome == Suspicious }

// TTLs say how long a verdict of each outcome stands. Zero fields take the
// Default*TTL values.
type TTLs struct {
	Suspicious, Clean, Error time.Duration
}

func (t TTLs) withDefaults() TTLs {
	if t.Suspicious <= 0 {
		t.Suspicious = DefaultSuspiciousTTL
	}
	if t.Clean <= 0 {
		t.Clean = DefaultCleanTTL
	}
	if t.Error <= 0 {
		t.Error = DefaultErrorTTL
	}
	return t
}

// of returns the TTL for outcome o. An unknown outcome is treated as an
// error, the shortest-lived and the one that claims nothing.
func (t TTLs) of(o Outcome) time.Duration {
	switch o {
	case Suspicious:
		return t.Suspicious
	case Clean:
		return t.Clean
	}
	return t.Error
}

// suspiciousIndex maps IPs to their suspicious verdicts. It is never
// modified once published: writers copy it, so readers need no lock.
type suspiciousIndex map[netip.Addr]*Verdict

// indexShards is how many parts the suspicious index is split into, by a
// hash of the IP. A write copies one part: with one map, every suspicious
// verdict copied all the others, which made a burst of n of them (an
// event's window, a fleet's verdicts arriving) cost n² and stood between
// an event and its enforcement.
const indexShards = 64

func indexShard(ip netip.Addr) int { return int(ipHash(ip) >> 58) } // the top 6 bits: indexShards = 64

func ipHash(ip netip.Addr) uint64 {
	b := ip.As16()
	return (binary.LittleEndian.Uint64(b[8:]) ^ binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
}

// Cache is the verdict cache. It is safe for concurrent use.
//
// Every stored verdict is a *Verdict that is never modified after it is
// stored; the suspicious index points at the same values, and an eviction
// removes an index entry only if it still points at the evicted value.
type Cache struct {
	// lru is set once by New.
	lru atomic.Pointer[lru.Cache[netip.Addr, *slot]]
	// suspicious is read on every DNS answer, so each of its shards is an
	// immutable map behind an atomic pointer: one load, one lookup, no lock,
	// no allocation. Writes (suspicious verdicts, and their eviction) are
	// rare, and copy one shard. nSuspicious counts the entries, so that a
	// cache with none costs a DNS answer one atomic load.
	suspicious  [indexShards]atomic.Pointer[suspiciousIndex]
	nSuspicious atomic.Int64

	// recent is read before the LRU; set once by New.
	recent recent

	// writeMu serialises Put, Delete, Resize and the removal of expired
	// entries, so that the LRU, the index and recent change together.
	writeMu sync.Mutex
	ttls    TTLs // guarded by writeMu

	// indexMu serialises copies of the index. It is taken by the eviction
	// callback, so it must never be held while calling into the LRU.
	indexMu sync.Mutex
}

// New returns a cache of at most size verdicts (DefaultSize if size <= 0).
func New(size int, ttls TTLs) *Cache {
	ttls = ttls.withDefaults()
	if size <= 0 {
		size = DefaultSize
	}
	c := &Cache{ttls: ttls, recent: newRecent(size)}
	for i := range c.suspicious {
		c.suspicious[i].Store(&suspiciousIndex{})
	}
	// Expiry is per verdict (it depends on the outcome) and checked on
	// every read against the caller's clock, so the plain LRU serves: the
	// expirable one reads the clock on every Get and, with a TTL, starts a
	// sweeping goroutine golang-lru v2.0.7 offers no way to stop.
	l, err := lru.NewWithEvict(size, c.evicted)
	if err != nil {
		panic(err) // only for size <= 0, excluded above
	}
	c.lru.Store(l)
	return c
}

// evicted is the LRU's eviction callback, called after the LRU's lock is
// released, for size evictions and removals. A verdict put for the same IP
// in between has replaced the index entry, which dropSuspicious leaves.
func (c *Cache) evicted(ip netip.Addr, s *slot) {
	c.recent.entry(ip).clear(s)
	if s.v.Suspicious() {
		c.dropSuspicious(ip, s.v)
	}
}

// slot is what the LRU holds for one IP: the verdict, and when a lookup
// last moved it to the front of the LRU. What a lookup reads is in the
// slot (and for an IPv4 address in recent too), not in the verdict.
type slot struct {
	v          *Verdict
	ip         netip.Addr   // v.IP
	expires    int64        // v.Expires in unix ns
	promoted   atomic.Int64 // unix ns
	suspicious bool         // v.Suspicious()
}

// recencyGrain is how stale an entry's place in the LRU may be. A lookup
// moves the entry to the front (a locked list update that touches three
// other entries) only if it was not moved within this time, so a verdict
// looked up for every answer of a busy client costs a map lookup, not a
// list update, while the eviction order stays least recently used to
// within a second. The first lookup after a Put always moves it.
const recencyGrain = int64(time.Second)

// lookup returns ip's slot if its verdict has not expired at now, and
// removes an expired one.
func (c *Cache) lookup(ip netip.Addr, now time.Time) (*slot, bool) {
	e := c.probe(ip, now)
	if e.s == nil {
		return nil, false
	}
	if !e.live {
		c.removeIfCurrent(ip, e.s)
		return nil, false
	}
	c.use(e, now.UnixNano())
	return e.s, true
}

// probe returns ip's entry at now: through recent, else the LRU's Peek.
func (c *Cache) probe(ip netip.Addr, now time.Time) Entry {
	re := c.recent.entry(ip)
	s, expires, suspicious, ok := re.read(ip)
	if !ok {
		if s, ok = c.lru.Load().Peek(ip); !ok {
			return Entry{}
		}
		re, expires, suspicious = nil, s.expires, s.suspicious
	}
	return Entry{s: s, re: re, live: now.UnixNano() < expires, suspicious: suspicious}
}

// use counts a lookup of e at at (unix ns) as a use: it moves e's slot to
// the front of the LRU unless it was moved within the recency grain.
func (c *Cache) use(e Entry, at int64) {
	if re := e.re; re != nil && re.slot.Load() == e.s {
		// Through recent: its promoted, in the line the probe read (the
		// slot is read only to move it).
		p := re.promoted.Load()
		if at-p < recencyGrain {
			return
		}
		if re.promoted.CompareAndSwap(p, at) {
			e.s.promoted.Store(at)
			c.lru.Load().Get(e.s.ip)
			return
		}
	}
	if at-e.s.promoted.Load() >= recencyGrain {
		e.s.promoted.Store(at)
		c.lru.Load().Get(e.s.ip)
	}
}

// Entry is what Probe found for one IP: one read of the cache that
// answers both questions the DNS path asks of a tagged client's answer IP,
// whether a suspicious verdict stands (Suspicious, the index's answer) and
// whether a verdict is cached (Has's answer), where asking Suspicious and
// then Has reads two structures. The zero Entry is an IP without a
// verdict.
type Entry struct {
	s          *slot
	re         *recentEntry // the record s was read from; nil: the LRU's Peek
	live       bool         // the verdict has not expired at the probe's time
	suspicious bool         // the verdict is suspicious (expired or not)
}

// Probe returns ip's entry at now. Unlike Has it neither counts as a use
// nor removes an expired verdict: Use does the first, and Has, Get or the
// sweep the second.
func (c *Cache) Probe(ip netip.Addr, now time.Time) Entry { return c.probe(ip.Unmap(), now) }

// Cached reports whether e holds a verdict that had not expired at the
// probe's time: Has's answer, without its use (see Use).
func (e Entry) Cached() bool { return e.live }

// MaySuspicious reports whether e holds a suspicious verdict, expired or
// not: when false, Suspicious is false at any time.
func (e Entry) MaySuspicious() bool { return e.suspicious }

// Suspicious returns e's suspicious verdict if it stands at now, as
// Suspicious does: it reads the verdict only for a suspicious entry.
func (e Entry) Suspicious(now time.Time) (Verdict, bool) {
	if !e.suspicious || !now.Before(e.s.v.Expires) {
		return Verdict{}, false
	}
	return *e.s.v, true
}

// Use counts a lookup of the cached entry e at now, as Has does.
func (c *Cache) Use(e Entry, now time.Time) {
	if e.live {
		c.use(e, now.UnixNano())
	}
}

// Get returns ip's verdict if it has not expired at now. An expired verdict
// is removed. The returned Reasons are shared: do not modify them.
func (c *Cache) Get(ip netip.Addr, now time.Time) (Verdict, bool) {
	ip = ip.Unmap()
	s, ok := c.lookup(ip, now)
	if !ok {
		return Verdict{}, false
	}
	return *s.v, true
}

// Has reports whether ip has a verdict that has not expired at now, as Get
// does (it counts as a use), without copying the verdict.
func (c *Cache) Has(ip netip.Addr, now time.Time) bool {
	_, ok := c.lookup(ip.Unmap(), now)
	return ok
}

// removeIfCurrent removes ip if s is still its stored slot: a fresh verdict
// may have been put since s was read.
func (c *Cache) removeIfCurrent(ip netip.Addr, s *slot) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	l := c.lru.Load()
	if cur, ok := l.Peek(ip); ok && cur == s {
		l.Remove(ip)
	}
}

// Put stores v, replacing any verdict for the same IP, and returns what was
// stored: Checked set to now if zero, Expires to Checked plus the TTL of
// v's outcome (an unknown outcome gets the error TTL), an IPv4-mapped IPv6
// address unmapped, and a Decision id for a suspicious verdict without one.
func (c *Cache) Put(v Verdict, now time.Time) Verdict { return c.put(v, time.Time{}, now) }

// PutUntil is Put with v standing until until rather than for its
// outcome's TTL: an operator's manual block stands for the time it was
// given.
func (c *Cache) PutUntil(v Verdict, until, now time.Time) Verdict { return c.put(v, until, now) }

func (c *Cache) put(v Verdict, until, now time.Time) Verdict {
	v.IP = v.IP.Unmap()
	if v.Checked.IsZero() {
		v.Checked = now
	}
	if v.Suspicious() && v.Decision == "" {
		v.Decision = NewDecisionID()
	}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	v.Expires = until
	if until.IsZero() {
		v.Expires = v.Checked.Add(c.ttls.of(v.Outcome))
	}
	stored := &v
	// promoted starts at zero, so the first lookup moves the entry to the
	// front as a plain LRU would.
	s := &slot{v: stored, ip: v.IP, expires: stored.Expires.UnixNano(), suspicious: stored.Suspicious()}
	c.lru.Load().Add(v.IP, s)
	c.recent.entry(v.IP).set(s)
	if stored.Suspicious() {
		c.addSuspicious(stored)
	} else {
		// Add does not call the eviction callback for the value it
		// replaces, so a suspicious verdict turned clean is dropped here.
		c.dropSuspicious(v.IP, nil)
	}
	return v
}

// Suspicious returns ip's suspicious verdict if there is one that has not
// expired at now. It is the check made for every DNS answer: it takes no
// lock and allocates nothing, and when nothing is suspicious it is one
// atomic load. It does not remove expired verdicts (Get and the LRU's sweep
// do), nor does it count as a use for the LRU's recency.
func (c *Cache) Suspicious(ip netip.Addr, now time.Time) (Verdict, bool) {
	if c.nSuspicious.Load() == 0 {
		return Verdict{}, false
	}
	ip = ip.Unmap()
	v, ok := (*c.suspicious[indexShard(ip)].Load())[ip]
	if !ok || !now.Before(v.Expires) {
		return Verdict{}, false
	}
	return *v, true
}

// FirstSuspicious returns the first of ips that Suspicious finds a
// verdict for, and its index, copying no other verdict.
func (c *Cache) FirstSuspicious(ips []netip.Addr, now time.Time) (Verdict, int, bool) {
	if c.nSuspicious.Load() == 0 {
		return Verdict{}, 0, false
	}
	for i, ip := range ips {
		ip = ip.Unmap()
		if v, ok := (*c.suspicious[indexShard(ip)].Load())[ip]; ok && now.Before(v.Expires) {
			return *v, i, true
		}
	}
	return Verdict{}, 0, false
}

// addSuspicious publishes v in the suspicious index.
func (c *Cache) addSuspicious(v *Verdict) {
	c.indexMu.Lock()
	defer c.indexMu.Unlock()
	shard := &c.suspicious[indexShard(v.IP)]
	next := maps.Clone(*shard.Load())
	if next == nil {
		next = suspiciousIndex{}
	}
	if _, replaced := next[v.IP]; !replaced {
		c.nSuspicious.Add(1)
	}
	next[v.IP] = v
	shard.Store(&next)
}

// dropSuspicious removes ip from the suspicious index if its entry is v,
// or whatever its entry is if v is nil.
func (c *Cache) dropSuspicious(ip netip.Addr, v *Verdict) {
	c.indexMu.Lock()
	defer c.indexMu.Unlock()
	shard := &c.suspicious[indexShard(ip)]
	cur := *shard.Load()
	if got, ok := cur[ip]; !ok || (v != nil && got != v) {
		return
	}
	next := maps.Clone(cur)
	delete(next, ip)
	shard.Store(&next)
	c.nSuspicious.Add(-1)
}

// Delete removes ip's verdict and reports whether there was one.
func (c *Cache) Delete(ip netip.Addr) bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.lru.Load().Remove(ip.Unmap())
}

// Len returns the number of verdicts held, including expired ones not yet
// removed.
func (c *Cache) Len() int { return c.lru.Load().Len() }

// Resize applies a new size (DefaultSize if size <= 0) and new TTLs, as on
// a reload. Stored verdicts keep their expiry; the new TTLs apply to
// verdicts put from now on. Shrinking evicts the least recently used.
func (c *Cache) Resize(size int, ttls TTLs) {
	ttls = ttls.withDefaults()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.ttls = ttls
	if size <= 0 {
		size = DefaultSize
	}
	c.lru.Load().Resize(size)
}

// Sweep removes the verdicts expired at now and returns how many. Expired
// verdicts are never served (Get and Suspicious check the expiry); this
// only gives their memory back.
func (c *Cache) Sweep(now time.Time) int {
	l := c.lru.Load()
	n := 0
	for _, ip := range l.Keys() {
		if s, ok := l.Peek(ip); ok && !now.Before(s.v.Expires) {
			c.removeIfCurrent(ip, s)
			n++
		}
	}
	return n
}

// SuspiciousList returns the suspicious verdicts not expired at now, sorted
// by IP.
func (c *Cache) SuspiciousList(now time.Time) []Verdict {
	out := make([]Verdict, 0, c.nSuspicious.Load())
	for i := range c.suspicious {
		for _, v := range *c.suspicious[i].Load() {
			if now.Before(v.Expires) {
				out = append(out, *v)
			}
		}
	}
	slices.SortFunc(out, func(a, b Verdict) int { return a.IP.Compare(b.IP) })
	return out
}

// NewDecisionID returns a fresh decision id, "cip-" and 12 random hex
// digits, which follows one decision from the DNS answer to the firewall.
func NewDecisionID() string {
	var b [6]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "cip-" + hex.EncodeToString(b[:])
}

// ReasonList is v's reasons, each formatted by risk.Reason.String.
func (v Verdict) ReasonList() []string {
	out := make([]string, len(v.Reasons))
	for i, r := range v.Reasons {
		out[i] = r.String()
	}
	return out
}

// ReasonText is v's reasons on one line, separated by "; ".
func (v Verdict) ReasonText() string { return strings.Join(v.ReasonList(), "; ") }

// Evidence is what an analyst reads of a report at a glance: the score
// levels, the open ports and the tags (port tags, categories and the
// report's issue flags).
type Evidence struct {
	ScoreInbound  string   `json:"score_inbound"`
	ScoreOutbound string   `json:"score_outbound"`
	Ports         []int    `json:"ports"`
	Tags          []string `json:"tags"`
}

// maxEvidence bounds the ports and the tags an Evidence keeps: a report
// of a scanner lists hundreds.
const maxEvidence = 64

// EvidenceOf excerpts r.
func EvidenceOf(r *criminalip.Report) *Evidence {
	e := &Evidence{ScoreInbound: r.Score.Inbound, ScoreOutbound: r.Score.Outbound, Ports: []int{}, Tags: []string{}}
	if e.ScoreInbound == "" && e.ScoreOutbound == "" {
		e.ScoreInbound = r.Score.Overall
	}
	tag := func(t string) {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && len(e.Tags) < maxEvidence && !slices.Contains(e.Tags, t) {
			e.Tags = append(e.Tags, t)
		}
	}
	for _, p := range r.Ports {
		if p.Port > 0 && len(e.Ports) < maxEvidence && !slices.Contains(e.Ports, p.Port) {
			e.Ports = append(e.Ports, p.Port)
		}
		for _, t := range p.Tags {
			tag(t)
		}
	}
	for _, c := range r.Categories {
		tag(c.Type)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Issues.Tor, "tor"}, {r.Issues.VPN, "vpn"}, {r.Issues.AnonymousVPN, "anonymous_vpn"}, {r.Issues.Proxy, "proxy"},
		{r.Issues.Darkweb, "darkweb"}, {r.Issues.Scanner, "scanner"}, {r.Issues.Hosting, "hosting"}} {
		if f.on {
			tag(f.name)
		}
	}
	slices.Sort(e.Ports)
	return e
}
