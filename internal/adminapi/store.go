package adminapi

import (
	"net/netip"
	"sync"
	"time"
	"unsafe"
)

// Defaults of a Store's bounds. An event's record holds the IPs its window
// held, up to a client's per_client cap of answers, so one can weigh tens of
// kilobytes: the byte bound is what keeps a burst of events for a busy
// client from taking hundreds of megabytes.
const (
	DefaultStoreSize  = 10000
	DefaultStoreBytes = 64 << 20
)

// Store keeps recent events for lookup by id, bounded by count and by an
// estimate of their size in memory (see recordSize). When over a bound it
// forgets the oldest closed event, one whose watch has ended (At + Watch
// before the time the newest event was received), and only when none is
// closed the oldest open one; the newest event is always kept. Forgotten
// events are counted (Evicted). It is in memory only: the durable record of
// an event is the audit log. Records are shared, not copied: treat them as
// read-only. A Store is safe for concurrent use.
//
// Finding the oldest closed event walks from the oldest until one is
// closed: one step when events close in the order they arrive (the usual
// case: one watch for all), at most the whole store otherwise, and only
// when a bound is passed.
type Store struct {
	mu       sync.Mutex
	byID     map[string]*stored
	old, new *stored // ends of the list in arrival order
	maxCount int
	maxBytes int64
	bytes    int64
	evicted  uint64
}

// stored is a kept Record, in the list by arrival.
type stored struct {
	rec        Record
	size       int64
	closes     time.Time // At + Watch
	prev, next *stored   // prev is older
}

// NewStore returns a Store that keeps the last size events (size <= 0
// means DefaultStoreSize) within DefaultStoreBytes.
func NewStore(size int) *Store { return NewStoreLimits(size, 0) }

// NewStoreLimits returns a Store that keeps at most events events (<= 0
// means DefaultStoreSize) and about bytes bytes of them (<= 0 means
// DefaultStoreBytes).
func NewStoreLimits(events int, bytes int64) *Store {
	if events <= 0 {
		events = DefaultStoreSize
	}
	if bytes <= 0 {
		bytes = DefaultStoreBytes
	}
	return &Store{byID: make(map[string]*stored), maxCount: events, maxBytes: bytes}
}

// Add keeps rec, then forgets events while a bound is passed. A record with
// an id already kept replaces it in place, without becoming newer.
func (s *Store) Add(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := recordSize(&rec)
	e, ok := s.byID[rec.ID]
	if ok {
		s.bytes += size - e.size
		e.rec, e.size, e.closes = rec, size, rec.Event.At.Add(rec.Event.Watch)
	} else {
		e = &stored{rec: rec, size: size, closes: rec.Event.At.Add(rec.Event.Watch), prev: s.new}
		if s.new != nil {
			s.new.next = e
		} else {
			s.old = e
		}
		s.new = e
		s.byID[rec.ID] = e
		s.bytes += size
	}
	now := rec.Received
	if now.IsZero() {
		now = time.Now()
	}
	for len(s.byID) > s.maxCount || s.bytes > s.maxBytes {
		victim := s.oldestClosed(now, e)
		if victim == nil {
			victim = s.old
			if victim == e {
				victim = e.next
			}
		}
		if victim == nil {
			return // e alone is over the byte bound: the newest is kept
		}
		s.forget(victim)
	}
}

// oldestClosed is the oldest event other than keep that closed by now, or
// nil.
func (s *Store) oldestClosed(now time.Time, keep *stored) *stored {
	for e := s.old; e != nil; e = e.next {
		if e != keep && !e.closes.After(now) {
			return e
		}
	}
	return nil
}

func (s *Store) forget(e *stored) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.old = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.new = e.prev
	}
	delete(s.byID, e.rec.ID)
	s.bytes -= e.size
	s.evicted++
}

// Get returns the event with the given id, if it is still kept.
func (s *Store) Get(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	if !ok {
		return Record{}, false
	}
	return e.rec, true
}

// Len returns how many events are kept.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// Bytes returns the estimated size of the events kept.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Evicted returns how many events a bound has made the Store forget since
// it was made.
func (s *Store) Evicted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evicted
}

// Sizes recordSize counts: a stored with its Record, a map slot (key
// header, pointer, and a share of the table), a Found, and a string header.
const (
	storedSize = int64(unsafe.Sizeof(stored{}))
	slotSize   = int64(unsafe.Sizeof("") + unsafe.Sizeof((*stored)(nil)) + 8)
	foundSize  = int64(unsafe.Sizeof(Found{}))
	headerSize = int64(unsafe.Sizeof(""))
)

// recordSize estimates the memory rec holds: its fixed part, its strings
// and its found list with their names and ports. Names may be shared with
// the window (or between events) and are counted anyway, so the estimate
// errs high; Result strings are constants and not counted.
func recordSize(rec *Record) int64 {
	n := storedSize + slotSize + alloc(len(rec.ID)) + alloc(len(rec.Event.Type)) + alloc(len(rec.Event.Ref)) + alloc(len(rec.By))
	n += alloc(cap(rec.Found) * int(foundSize))
	for i := range rec.Found {
		f := &rec.Found[i]
		n += alloc(cap(f.Names)*int(headerSize)) + alloc(cap(f.Ports)*2)
		for _, name := range f.Names {
			n += alloc(len(name))
		}
	}
	return n + labelsSize(rec.Event.Labels)
}

// labelsSize estimates a map of labels: its header, its slots (two string
// headers each, in groups of 8 with a control word, filled to at most 7/8)
// and its strings.
func labelsSize(labels map[string]string) int64 {
	if len(labels) == 0 {
		return 0
	}
	slots := 8
	for slots*7/8 < len(labels) {
		slots *= 2
	}
	n := alloc(48) + alloc(slots/8*8+slots*2*int(headerSize))
	for k, v := range labels {
		n += alloc(len(k)) + alloc(len(v))
	}
	return n
}

// alloc rounds an allocation of n bytes up as Go's allocator about does: to
// 16 bytes, the step of its small size classes.
func alloc(n int) int64 {
	return int64(n+15) &^ 15
}

// CountSince counts the events received at since or later. Events are
// kept in the order they were received, so it walks only those.
func (s *Store) CountSince(since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for e := s.new; e != nil && !e.rec.Received.Before(since); e = e.prev {
		n++
	}
	return n
}

// EventFilter selects events; zero fields select all.
type EventFilter struct {
	Client       netip.Addr
	Type         string
	Since, Until time.Time // when it was received
}

func (f EventFilter) matches(rec *Record) bool {
	switch {
	case f.Client.IsValid() && rec.Event.Client != f.Client,
		f.Type != "" && rec.Event.Type != f.Type,
		!f.Since.IsZero() && rec.Received.Before(f.Since),
		!f.Until.IsZero() && rec.Received.After(f.Until):
		return false
	}
	return true
}

// List returns up to limit events that f matches, newest first, starting
// after the event of cursor (zero: the newest), and the cursor of the
// next page (zero: no more). If the cursor's event was forgotten since,
// the page starts after its time.
func (s *Store) List(f EventFilter, after Cursor, limit int) ([]Record, Cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.new
	if !after.IsZero() {
		if c, ok := s.byID[after.ID]; ok {
			e = c.prev
		} else {
			for e != nil && !after.Before(e.rec.Received, e.rec.ID) {
				e = e.prev
			}
		}
	}
	var out []Record
	for ; e != nil; e = e.prev {
		if !f.matches(&e.rec) {
			continue
		}
		if len(out) == limit {
			last := out[len(out)-1]
			return out, Cursor{At: last.Received, ID: last.ID}
		}
		out = append(out, e.rec)
	}
	return out, Cursor{}
}
