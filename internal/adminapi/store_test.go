package adminapi

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
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

// event returns a record received at t0+at whose watch ends watch later.
func event(id string, at, watch time.Duration) Record {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return Record{ID: id, Received: t0.Add(at), Event: Event{At: t0.Add(at), Watch: watch}}
}

// An event still watched is worth more than one whose watch has ended: the
// closed ones go first, the oldest first, and open ones only when no event
// is closed.
func TestStoreEvictsClosedFirst(t *testing.T) {
	s := NewStore(3)
	s.Add(event("open-old", 0, time.Hour))
	s.Add(event("closed", time.Minute, time.Minute))
	s.Add(event("open", 2*time.Minute, time.Hour))
	s.Add(event("new", 5*time.Minute, time.Hour)) // "closed" closed at 2m
	for id, want := range map[string]bool{"open-old": true, "closed": false, "open": true, "new": true} {
		if _, ok := s.Get(id); ok != want {
			t.Errorf("Get(%s) found = %v, want %v", id, ok, want)
		}
	}
	// Nothing closed: the oldest open event goes.
	s.Add(event("newer", 6*time.Minute, time.Hour))
	if _, ok := s.Get("open-old"); ok {
		t.Error("open-old kept; with no closed event the oldest goes")
	}
	if s.Evicted() != 2 || s.Len() != 3 {
		t.Errorf("Evicted %d, Len %d; want 2, 3", s.Evicted(), s.Len())
	}
}

// busyRecord is an event for a busy client: its window held 256 IPs, each
// with two names and a port, as a client at the default per_client cap
// gives. names gives the k-th IP's names.
func busyRecord(i int, names func(k int) []string) Record {
	rec := event(fmt.Sprintf("ev-%06d", i), time.Duration(i)*time.Millisecond, 30*time.Minute)
	rec.Event.Type, rec.Event.Ref = "edr.malware", "SIEM-123"
	rec.Found = make([]Found, 256)
	for k := range rec.Found {
		rec.Found[k] = Found{IP: netip.AddrFrom4([4]byte{45, 83, byte(k >> 8), byte(k)}), Names: names(k), Ports: []uint16{443}, Result: "queued"}
	}
	return rec
}

// freshNames gives every IP names of its own, as a window's do.
func freshNames(k int) []string {
	return []string{fmt.Sprintf("host-%d.cdn.example.com.", k), fmt.Sprintf("www.site-%d.example.net.", k)}
}

// Acceptance: ten thousand events for one busy client stay within the byte
// bound, the oldest forgotten and counted.
func TestStoreByteBound(t *testing.T) {
	shared := make([][]string, 256) // names shared between events keep the test fast
	for k := range shared {
		shared[k] = freshNames(k)
	}
	const limit = DefaultStoreBytes
	s := NewStore(0)
	const events = 10_000
	for i := range events {
		s.Add(busyRecord(i, func(k int) []string { return shared[k] }))
		if s.Bytes() > limit {
			t.Fatalf("after event %d: %d bytes kept, over the bound of %d", i, s.Bytes(), limit)
		}
	}
	if n := s.Len(); n >= events || n == 0 || s.Evicted() != uint64(events-n) {
		t.Errorf("Len %d, Evicted %d; want fewer than %d kept and every other one counted", n, s.Evicted(), events)
	}
	if _, ok := s.Get(fmt.Sprintf("ev-%06d", events-1)); !ok {
		t.Error("the newest event is gone")
	}
	if _, ok := s.Get("ev-000000"); ok {
		t.Error("the oldest event is still kept")
	}
}

// The byte bound is honest: the heap the kept events hold is about what the
// Store accounts for.
func TestStoreSizeEstimate(t *testing.T) {
	const limit = 8 << 20
	s := NewStoreLimits(0, limit)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 300 {
		s.Add(busyRecord(i, freshNames))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d events kept, %d bytes accounted, %d bytes of heap held", s.Len(), s.Bytes(), held)
	if ratio := float64(held) / float64(s.Bytes()); ratio > 1.15 || ratio < 0.75 {
		t.Errorf("the heap held is %.2f times the accounted size; the estimate is off", ratio)
	}
	runtime.KeepAlive(s)
}

// The newest event is kept even when it alone passes the byte bound.
func TestStoreKeepsNewest(t *testing.T) {
	s := NewStoreLimits(0, 1)
	s.Add(busyRecord(1, freshNames))
	s.Add(busyRecord(2, freshNames))
	if _, ok := s.Get("ev-000002"); !ok || s.Len() != 1 || s.Evicted() != 1 {
		t.Errorf("Len %d, Evicted %d; want the newest alone", s.Len(), s.Evicted())
	}
	// Replacing it updates the accounted size.
	small := busyRecord(2, freshNames)
	small.Found = nil
	s.Add(small)
	if s.Bytes() != recordSize(&small) {
		t.Errorf("Bytes %d after replacing, want %d", s.Bytes(), recordSize(&small))
	}
}
