package adminapi

import (
	"fmt"
	"sync"
	"testing"
)

func storeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%d", i)
	}
	return ids
}

func TestStoreEvictsOldest(t *testing.T) {
	s := NewStore(3)
	ids := storeIDs(10)
	for _, id := range ids {
		s.Add(Record{ID: id})
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	for i, id := range ids {
		_, ok := s.Get(id)
		if want := i >= 7; ok != want {
			t.Errorf("Get(%s) found = %v, want %v", id, ok, want)
		}
	}
}

func TestStoreReplaceKeepsPlace(t *testing.T) {
	s := NewStore(3)
	for _, id := range []string{"a", "b", "c"} {
		s.Add(Record{ID: id})
	}
	s.Add(Record{ID: "a", Found: []Found{{Result: "queued"}}})
	if rec, _ := s.Get("a"); len(rec.Found) != 1 {
		t.Fatalf("Get(a) = %+v, want the replacement", rec)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d after replacing, want 3", s.Len())
	}
	// "a" is still the oldest, so it goes first.
	s.Add(Record{ID: "d"})
	if _, ok := s.Get("a"); ok {
		t.Error("a survived; a replaced record must not count as newer")
	}
	for _, id := range []string{"b", "c", "d"} {
		if _, ok := s.Get(id); !ok {
			t.Errorf("Get(%s) missing", id)
		}
	}
}

func TestStoreDefaultSize(t *testing.T) {
	for _, size := range []int{0, -1} {
		s := NewStore(size)
		ids := storeIDs(DefaultStoreSize + 1)
		for _, id := range ids {
			s.Add(Record{ID: id})
		}
		if s.Len() != DefaultStoreSize {
			t.Errorf("NewStore(%d): Len = %d, want %d", size, s.Len(), DefaultStoreSize)
		}
		if _, ok := s.Get(ids[0]); ok {
			t.Errorf("NewStore(%d): oldest event still kept", size)
		}
		if _, ok := s.Get(ids[len(ids)-1]); !ok {
			t.Errorf("NewStore(%d): newest event missing", size)
		}
	}
}

func TestStoreGetMissing(t *testing.T) {
	if _, ok := NewStore(1).Get("ev-none"); ok {
		t.Error("Get on an empty store found something")
	}
}

func TestStoreConcurrent(t *testing.T) {
	s := NewStore(50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("ev-%d-%d", g, i)
				s.Add(Record{ID: id})
				s.Get(id)
			}
		})
	}
	wg.Wait()
	if s.Len() != 50 {
		t.Errorf("Len = %d, want 50", s.Len())
	}
}
