// Package tags knows which clients are tagged right now, that is whose DNS
// answers get validated: clients in an always-watched segment (static
// prefixes), every client during an after-hours schedule, and clients a
// security event tagged until some time.
//
// Tagged runs on the DNS hot path for every answer. It takes no lock and
// does not allocate: the static configuration and each shard of event tags
// are immutable values behind atomic pointers, replaced whole by the rare
// writers (copy on write), and the schedule's state is cached per minute.
package tags

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Reason says why a client is tagged.
type Reason string

// The reasons, in the order Lookup prefers them.
const (
	ReasonEvent      Reason = "event"
	ReasonStatic     Reason = "static"
	ReasonAfterHours Reason = "after_hours"
)

// Tag describes why and since when a client is tagged.
type Tag struct {
	Client netip.Addr
	Reason Reason
	Until  time.Time // end of an event tag; zero for static and after_hours
	Since  time.Time // start of an event tag; zero for static and after_hours
	// Ref is the event's reference (e.g. "SIEM-123") for an event tag, the
	// matching prefix ("10.9.0.0/16") for a static one, and the schedule
	// ("20:00-07:00 Europe/Paris") for after_hours.
	Ref   string
	Event string // id of the event that tagged the client, if any
	// Version orders an event tag among a fleet's changes to the client's
	// tag (a fleet.Version; 0 without a fleet): see TagVersion.
	Version uint64 `json:",omitempty"`
}

const (
	shardBits = 5
	shards    = 1 << shardBits

	// noCache marks an empty schedule cache; no real minute encodes to it.
	noCache = math.MinInt64
)

// static is the configured part, replaced whole by SetStatic.
type static struct {
	prefixes []netip.Prefix
	schedule *Schedule
	// cache holds minute<<1 | active for the last minute (unix seconds / 60)
	// the schedule was evaluated in. A zone's wall-clock minute starts on a
	// UTC minute when its offset is whole minutes, so the state cannot change
	// within one; keying on the minute (rather than an expiry) also stays
	// right when the clock goes backwards.
	cache atomic.Int64
}

// eventTag is one event tag as stored: immutable once published.
type eventTag struct {
	until int64 // Tag.Until in unix ns, for a cheap comparison
	tag   Tag
}

type shard struct {
	mu sync.Mutex // serialises writers; readers only load m
	m  atomic.Pointer[map[netip.Addr]*eventTag]
	_  [48]byte // a writer's lock must not disturb readers of the next shard
}

// Set is the set of tagged clients. It is safe for concurrent use; use New
// to make one.
type Set struct {
	seed   uint64
	static atomic.Pointer[static]
	events atomic.Int64 // event tags held, expired ones included until Sweep
	shards [shards]shard
}

// New returns a set with the given static prefixes and optional after-hours
// schedule, and no event tags.
func New(prefixes []netip.Prefix, schedule *Schedule) *Set {
	s := &Set{seed: rand.Uint64()}
	s.SetStatic(prefixes, schedule)
	return s
}

// SetStatic replaces the static prefixes and the schedule (nil for none), on
// a Corefile reload. Event tags are kept. IPv4-mapped prefixes
// (::ffff:10.0.0.0/104) are taken as the IPv4 prefixes they carry, and
// invalid ones are ignored.
func (s *Set) SetStatic(prefixes []netip.Prefix, schedule *Schedule) {
	st := &static{}
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		st.prefixes = append(st.prefixes, p.Masked())
	}
	if schedule != nil && schedule.loc != nil {
		sc := *schedule
		st.schedule = &sc
	}
	st.cache.Store(noCache)
	s.static.Store(st)
}

// normal makes one key of one host: IPv4-mapped IPv6 is IPv4, and a zone
// names an interface, not a host.
func normal(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func (s *Set) shard(a netip.Addr) *shard {
	b := a.As16()
	h := (binary.LittleEndian.Uint64(b[8:]) ^ s.seed) * 0x9e3779b97f4a7c15
	h = (h ^ binary.LittleEndian.Uint64(b[:8])) * 0xbf58476d1ce4e5b9
	return &s.shards[h>>(64-shardBits)]
}

// event returns client's event tag, expired or not, or nil.
func (s *Set) event(client netip.Addr) *eventTag {
	m := s.shard(client).m.Load()
	if m == nil {
		return nil
	}
	return (*m)[client]
}

// Tagged reports whether client is tagged at now for any reason. It is
// meant for every DNS answer: no lock, no allocation, a few nanoseconds
// when nothing is tagged.
func (s *Set) Tagged(client netip.Addr, now time.Time) bool {
	if !client.IsValid() {
		return false
	}
	st := s.static.Load()
	if st != nil {
		if st.schedule != nil && st.scheduleActive(now) {
			return true
		}
		if len(st.prefixes) > 0 {
			client = normal(client)
			for _, p := range st.prefixes {
				if p.Contains(client) {
					return true
				}
			}
		}
	}
	if s.events.Load() == 0 {
		return false
	}
	e := s.event(normal(client))
	return e != nil && now.UnixNano() < e.until
}

// scheduleActive is st.schedule.Active(now), evaluated at most once per
// minute: time.Time.In costs more than the rest of Tagged together.
func (st *static) scheduleActive(now time.Time) bool {
	sec := now.Unix()
	minute := sec / 60
	if sec%60 < 0 {
		minute-- // floor, for times before 1970
	}
	if c := st.cache.Load(); c != noCache && c>>1 == minute {
		return c&1 == 1
	}
	local := now.In(st.schedule.loc)
	active := st.schedule.activeAt(local)
	// A historic offset that is not whole minutes (local mean time) would
	// put a wall-clock minute across two UTC minutes: do not cache it.
	if _, offset := local.Zone(); offset%60 == 0 {
		c := minute << 1
		if active {
			c |= 1
		}
		st.cache.Store(c)
	}
	return active
}

// Lookup says why client is tagged at now: an unexpired event tag first,
// then the first static prefix that holds it, then the schedule.
func (s *Set) Lookup(client netip.Addr, now time.Time) (Tag, bool) {
	if !client.IsValid() {
		return Tag{}, false
	}
	client = normal(client)
	if e := s.event(client); e != nil && now.UnixNano() < e.until {
		return e.tag, true
	}
	st := s.static.Load()
	if st == nil {
		return Tag{}, false
	}
	for _, p := range st.prefixes {
		if p.Contains(client) {
			return Tag{Client: client, Reason: ReasonStatic, Ref: p.String()}, true
		}
	}
	if st.schedule != nil && st.schedule.Active(now) {
		return Tag{Client: client, Reason: ReasonAfterHours, Ref: st.schedule.String()}, true
	}
	return Tag{}, false
}

// Tag tags client from since until until for an event. If the client's
// event tag is still running at since, the tag is extended, never
// shortened: it keeps the earlier Since and the later Until, and takes the
// new ref and eventID unless they are empty. Otherwise the new tag replaces
// it.
func (s *Set) Tag(client netip.Addr, since, until time.Time, ref, eventID string) {
	s.TagVersion(client, since, until, ref, eventID, 0)
}

// TagVersion is Tag for a change of the given version: the tag keeps the
// later of its version and this one.
func (s *Set) TagVersion(client netip.Addr, since, until time.Time, ref, eventID string, version uint64) {
	if !client.IsValid() {
		return
	}
	client = normal(client)
	t := Tag{Client: client, Reason: ReasonEvent, Since: since, Until: until, Ref: ref, Event: eventID, Version: version}
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.get(client)
	if old != nil && old.until > since.UnixNano() {
		if old.until > until.UnixNano() {
			t.Until = old.tag.Until
		}
		if old.tag.Since.Before(since) {
			t.Since = old.tag.Since
		}
		if ref == "" {
			t.Ref = old.tag.Ref
		}
		if eventID == "" {
			t.Event = old.tag.Event
		}
		t.Version = max(t.Version, old.tag.Version)
	}
	m := sh.clone(1, nil)
	m[client] = &eventTag{until: t.Until.UnixNano(), tag: t}
	sh.m.Store(&m)
	if old == nil {
		s.events.Add(1)
	}
}

// Untag removes client's event tag, expired or not, and reports whether
// there was one. Static and after-hours tags cannot be removed: for a
// client that has only those, Untag returns false.
func (s *Set) Untag(client netip.Addr) bool {
	client = normal(client)
	sh := s.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.get(client) == nil {
		return false
	}
	m := sh.clone(0, func(a netip.Addr, _ *eventTag) bool { return a == client })
	sh.m.Store(&m)
	s.events.Add(-1)
	return true
}

// List returns the unexpired event tags, sorted by client. Static prefixes
// and the schedule are configuration, not listed here.
func (s *Set) List(now time.Time) []Tag {
	var out []Tag
	s.each(now, func(e *eventTag) { out = append(out, e.tag) })
	slices.SortFunc(out, func(a, b Tag) int { return a.Client.Compare(b.Client) })
	return out
}

// Count returns how many clients have an unexpired event tag.
func (s *Set) Count(now time.Time) int {
	n := 0
	s.each(now, func(*eventTag) { n++ })
	return n
}

// each calls f for every event tag unexpired at now.
func (s *Set) each(now time.Time, f func(*eventTag)) {
	ns := now.UnixNano()
	for i := range s.shards {
		m := s.shards[i].m.Load()
		if m == nil {
			continue
		}
		for _, e := range *m {
			if ns < e.until {
				f(e)
			}
		}
	}
}

// Sweep drops the event tags expired at now and returns how many. Expired
// tags already stop counting without it; Sweep gives back their memory.
func (s *Set) Sweep(now time.Time) int {
	ns := now.UnixNano()
	expired := func(_ netip.Addr, e *eventTag) bool { return ns >= e.until }
	dropped := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n := 0
		if m := sh.m.Load(); m != nil {
			for a, e := range *m {
				if expired(a, e) {
					n++
				}
			}
		}
		if n > 0 {
			m := sh.clone(0, expired)
			sh.m.Store(&m)
			s.events.Add(int64(-n))
			dropped += n
		}
		sh.mu.Unlock()
	}
	return dropped
}

// get returns client's event tag; the caller holds sh.mu.
func (sh *shard) get(client netip.Addr) *eventTag {
	if m := sh.m.Load(); m != nil {
		return (*m)[client]
	}
	return nil
}

// clone copies the shard's map with room for extra more entries, leaving
// out those drop reports; the caller holds sh.mu.
func (sh *shard) clone(extra int, drop func(netip.Addr, *eventTag) bool) map[netip.Addr]*eventTag {
	old := sh.m.Load()
	if old == nil {
		return make(map[netip.Addr]*eventTag, extra)
	}
	m := make(map[netip.Addr]*eventTag, len(*old)+extra)
	for a, e := range *old {
		if drop == nil || !drop(a, e) {
			m[a] = e
		}
	}
	return m
}
