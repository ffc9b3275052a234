package adminapi

import "sync"

// DefaultStoreSize is how many events a Store keeps when not told.
const DefaultStoreSize = 10000

// Store keeps the most recent events for lookup by id; when full, the oldest
// is forgotten. It is in memory only: the durable record of an event is the
// audit log. Records are shared, not copied: treat them as read-only. A Store
// is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	byID  map[string]Record
	order []string // ring of ids in arrival order; next is the oldest once full
	next  int
}

// NewStore returns a Store that keeps the last size events; size <= 0 means
// DefaultStoreSize.
func NewStore(size int) *Store {
	if size <= 0 {
		size = DefaultStoreSize
	}
	return &Store{byID: make(map[string]Record), order: make([]string, 0, size)}
}

// Add keeps rec, forgetting the oldest event if the store is full. A record
// with an id already kept replaces it in place, without becoming newer.
func (s *Store) Add(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[rec.ID]; ok {
		s.byID[rec.ID] = rec
		return
	}
	if len(s.order) < cap(s.order) {
		s.order = append(s.order, rec.ID)
	} else {
		delete(s.byID, s.order[s.next])
		s.order[s.next] = rec.ID
		s.next = (s.next + 1) % len(s.order)
	}
	s.byID[rec.ID] = rec
}

// Get returns the event with the given id, if it is still kept.
func (s *Store) Get(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	return rec, ok
}

// Len returns how many events are kept.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}
