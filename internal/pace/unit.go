package pace

import (
	"net"
	"runtime"
	"time"
)

// Unit measures one unit of paced work on the CPU clock of the OS thread
// it runs on: Begin locks the calling goroutine to its thread, End unlocks
// it and returns the thread's CPU time in between.
//
// Everything the goroutine computes in between is on that clock, the
// garbage collector's assists on its allocations included, and nothing it
// waits for is: the API's answer, the disk, Redis, and the DNS work the
// CPU runs meanwhile. Wall time, which a busy CPU stretches by the work of
// every other goroutine, overstates a unit exactly when DNS needs the CPU
// most; a thread's CPU clock does not. Work the unit hands to other
// goroutines (the HTTP transport's, the state writer's) is not on it.
//
// Where the system has no thread CPU clock, End returns its fallback: the
// caller's own estimate, wall time less the waits it knows of.
type Unit struct {
	p     *Pacer
	start time.Duration
	ok    bool
}

// Begin starts measuring a unit on the calling goroutine, which must call
// End. A nil *Pacer measures nothing: End returns its fallback.
func (p *Pacer) Begin() Unit {
	if p == nil {
		return Unit{}
	}
	runtime.LockOSThread()
	start, ok := p.cpu()
	if !ok {
		runtime.UnlockOSThread()
	}
	return Unit{p: p, start: start, ok: ok}
}

// End stops measuring and returns the unit's CPU time, or fallback where
// it could not be measured.
func (u Unit) End(fallback time.Duration) time.Duration {
	if !u.ok {
		return fallback
	}
	end, ok := u.p.cpu()
	runtime.UnlockOSThread()
	if !ok || end < u.start {
		return fallback
	}
	return end - u.start
}

// MeterWrites returns c with its writes charged to the budget as
// validation work: the CPU time of each write on the thread that makes
// it. It is for the API client's connections, which the HTTP transport
// writes from goroutines of its own, off the worker's clock: over TCP the
// system call is most of that work. Reads are not charged (a read waits
// for the answer, and a locked thread would sleep through every idle
// connection's wait).
func (p *Pacer) MeterWrites(c net.Conn) net.Conn {
	if p == nil {
		return c
	}
	return meteredConn{Conn: c, p: p}
}

type meteredConn struct {
	net.Conn
	p *Pacer
}

func (c meteredConn) Write(b []byte) (int, error) {
	u := c.p.Begin()
	n, err := c.Conn.Write(b)
	c.p.Charge(Validation, u.End(0))
	return n, err
}
