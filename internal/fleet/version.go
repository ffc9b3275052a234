package fleet

import (
	"fmt"
	"hash/fnv"
	"sync"
	"time"
)

// Version orders the changes made to one record by the nodes of a fleet,
// so that every node keeps the latest one after a partition, whichever
// order the changes reach it in. It is a hybrid logical clock: Unix
// milliseconds in the high 44 bits (good until the year 2527), a counter
// in the next 10 that orders changes within a millisecond and after
// clock skew, and 10 bits of the node's id that keep two nodes' changes
// apart. Zero is older than every change (a record written before
// versions).
type Version uint64

// Bits of a Version.
const (
	nodeBits    = 10
	counterBits = 10
	nodeMask    = 1<<nodeBits - 1
)

// String is the Version as 16 hexadecimal digits, the form Redis keeps.
func (v Version) String() string { return fmt.Sprintf("%016x", uint64(v)) }

// Time is the wall-clock time of v, to the millisecond.
func (v Version) Time() time.Time {
	return time.UnixMilli(int64(v >> (nodeBits + counterBits)))
}

// Clock issues Versions: each one later than every Version the clock
// issued or observed before, and close to the wall clock when the nodes'
// clocks agree. It is safe for concurrent use.
type Clock struct {
	node uint64 // the low bits of every Version issued

	mu   sync.Mutex
	last uint64 // the latest Version issued or observed, without its node bits
}

// NewClock returns a Clock for the node named node.
func NewClock(node string) *Clock {
	h := fnv.New32a()
	h.Write([]byte(node))
	return &Clock{node: uint64(h.Sum32()) & nodeMask}
}

// Stamp returns a new Version at the wall-clock time now.
func (c *Clock) Stamp(now time.Time) Version {
	wall := uint64(max(now.UnixMilli(), 0)) << (nodeBits + counterBits)
	c.mu.Lock()
	defer c.mu.Unlock()
	// One more than the last in the counter (overflowing into the
	// milliseconds, which keeps the order), or the wall clock if it is
	// ahead.
	c.last = max(wall, (c.last>>nodeBits+1)<<nodeBits)
	return Version(c.last | c.node)
}

// Observe records a Version seen from another node, so that the changes
// this node makes after it are later.
func (c *Clock) Observe(v Version) {
	c.mu.Lock()
	c.last = max(c.last, uint64(v)&^nodeMask)
	c.mu.Unlock()
}
