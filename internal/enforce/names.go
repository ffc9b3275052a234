package enforce

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// NameMemory remembers the names that led to suspicious infrastructure for
// the verdict's lifetime, so that other record types of the same name (an
// HTTPS or MX query, the AAAA after the A) are handled too. It is read on
// every query only when it is not empty.
type NameMemory struct {
	n      atomic.Int64
	filter atomic.Pointer[nameFilter]
	mu     sync.RWMutex
	m      map[string]verdicts.Verdict
	stale  int // names forgotten since the filter was rebuilt; guarded by mu
}

// staleNames is how many forgotten names the filter may keep the bits of
// before a rebuild, however few names are held: at most 1.6% of the bits,
// and a rebuild (8 KiB cleared or built) per 1,024 names forgotten.
const staleNames = 1024

// NewNameMemory returns an empty NameMemory.
func NewNameMemory() *NameMemory {
	nm := &NameMemory{m: map[string]verdicts.Verdict{}}
	nm.filter.Store(new(nameFilter))
	return nm
}

// nameFilter has a bit set for the hash of every name held (and of names
// forgotten since it was last rebuilt): a query whose bit is clear is not
// held, without the lock and the map, which most queries would otherwise
// pay once a single name is held (1% of the server's CPU). 64 Kibit, 8 KiB:
// 500 names set 0.8% of the bits.
type nameFilter [1 << 10]atomic.Uint64

// nameHash is FNV-1a of name with ASCII letters lower-cased, and false for
// a name with other than ASCII bytes, whose lower-case form (strings.ToLower)
// it does not compute.
func nameHash(name string) (uint64, bool) {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 0x80 {
			return 0, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h, true
}

func (f *nameFilter) add(h uint64)      { f[h>>54].Or(1 << (h & 63)) }
func (f *nameFilter) has(h uint64) bool { return f[h>>54].Load()&(1<<(h&63)) != 0 }

// Len is the number of names held, expired ones included until a sweep.
func (nm *NameMemory) Len() int { return int(nm.n.Load()) }

// Put remembers qname with verdict v until v expires.
func (nm *NameMemory) Put(qname string, v verdicts.Verdict) {
	qname = strings.ToLower(qname)
	nm.mu.Lock()
	if _, ok := nm.m[qname]; !ok {
		nm.n.Add(1)
	}
	if h, ok := nameHash(qname); ok {
		nm.filter.Load().add(h) // before the map: a reader that sees the bit waits for the lock
	}
	nm.m[qname] = v
	nm.mu.Unlock()
}

// Get returns the live verdict for qname. It is asked for every query
// once a name is held: a miss of a lower-case name (most) is one lookup.
func (nm *NameMemory) Get(qname string, now time.Time) (verdicts.Verdict, bool) {
	if h, ok := nameHash(qname); ok && !nm.filter.Load().has(h) {
		return verdicts.Verdict{}, false
	}
	nm.mu.RLock()
	v, ok := nm.m[qname]
	if lower := strings.ToLower(qname); !ok && lower != qname {
		v, ok = nm.m[lower]
	}
	nm.mu.RUnlock()
	if !ok || !now.Before(v.Expires) {
		return verdicts.Verdict{}, false
	}
	return v, true
}

// Forget drops every name that points at ip (its verdict was lifted).
func (nm *NameMemory) Forget(match func(verdicts.Verdict) bool) int {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	n := 0
	for k, v := range nm.m {
		if match(v) {
			delete(nm.m, k)
			n++
		}
	}
	nm.n.Add(int64(-n))
	nm.rebuildFilter(n)
	return n
}

// rebuildFilter clears the bits of forgotten names once there are more of
// them than names held (and more than staleNames): until then they only send a
// query to the map. nm.mu is held.
func (nm *NameMemory) rebuildFilter(forgotten int) {
	nm.stale += forgotten
	if nm.stale <= staleNames || nm.stale <= len(nm.m) {
		return
	}
	nm.stale = 0
	if len(nm.m) == 0 { // nothing held: no bit needs to stay set meanwhile
		f := nm.filter.Load()
		for i := range f {
			f[i].Store(0)
		}
		return
	}
	f := new(nameFilter)
	for k := range nm.m {
		if h, ok := nameHash(k); ok {
			f.add(h)
		}
	}
	nm.filter.Store(f)
}

// Sweep drops expired names.
func (nm *NameMemory) Sweep(now time.Time) int {
	return nm.Forget(func(v verdicts.Verdict) bool { return !now.Before(v.Expires) })
}
