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
	n  atomic.Int64
	mu sync.RWMutex
	m  map[string]verdicts.Verdict
}

// NewNameMemory returns an empty NameMemory.
func NewNameMemory() *NameMemory { return &NameMemory{m: map[string]verdicts.Verdict{}} }

// Len is the number of names held, expired ones included until a sweep.
func (nm *NameMemory) Len() int { return int(nm.n.Load()) }

// Put remembers qname with verdict v until v expires.
func (nm *NameMemory) Put(qname string, v verdicts.Verdict) {
	qname = strings.ToLower(qname)
	nm.mu.Lock()
	if _, ok := nm.m[qname]; !ok {
		nm.n.Add(1)
	}
	nm.m[qname] = v
	nm.mu.Unlock()
}

// Get returns the live verdict for qname. It is asked for every query
// once a name is held: a miss of a lower-case name (most) is one lookup.
func (nm *NameMemory) Get(qname string, now time.Time) (verdicts.Verdict, bool) {
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
	return n
}

// Sweep drops expired names.
func (nm *NameMemory) Sweep(now time.Time) int {
	return nm.Forget(func(v verdicts.Verdict) bool { return !now.Before(v.Expires) })
}
