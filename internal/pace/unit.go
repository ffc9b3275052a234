package pace

import (
	"net"
	"runtime"
	"time"
)

// Unit measures one unit of paced work on the CPU clock of the OS thread
// it runs on: Begin locks the calling goroutine to its thread, End unlocks
// it and returns the thread's CPU time in between, less the spells between
// Wait and Compute, when the goroutine lets go of its thread.
//
// Everything the goroutine computes while it holds its thread is on that
// clock, the garbage collector's assists on its allocations included, and
// nothing it waits for is: the API's answer, the disk, Redis, and the DNS
// work the CPU runs meanwhile. Wall time, which a busy CPU stretches by the
// work of every other goroutine, overstates a unit exactly when DNS needs
// the CPU most; a thread's CPU clock does not. Work the unit hands to
// other goroutines (the HTTP transport's, the state writer's) is not on it.
//
// A goroutine locked to its thread that blocks puts that thread to sleep,
// and the scheduler hands the CPU over to another thread and back: a few
// microseconds of the kernel's and the runtime's work each way, on a CPU
// that DNS needs. So a unit lets go of its thread around the waits it
// knows of (Wait, then Compute when it computes again).
//
// Where the system has no thread CPU clock, End returns its fallback: the
// caller's own estimate, wall time less the waits it knows of. A nil
// *Unit (no budget) measures nothing.
type Unit struct {
	p       *Pacer
	start   time.Duration // the thread's clock at Begin or Compute
	spent   time.Duration // before the last Wait
	ok      bool          // the clock has worked so far
	holding bool          // locked to its thread
}

// Begin starts measuring a unit on the calling goroutine, which must call
// End. A nil *Pacer returns a nil *Unit.
func (p *Pacer) Begin() *Unit {
	if p == nil {
		return nil
	}
	u := &Unit{p: p, ok: true}
	u.Compute()
	return u
}

// Wait lets go of the thread before a wait: what the goroutine does until
// Compute is not charged.
func (u *Unit) Wait() {
	if u == nil || !u.holding {
		return
	}
	if now, ok := u.p.cpu(); ok && now >= u.start {
		u.spent += now - u.start
	} else {
		u.ok = false
	}
	u.holding = false
	runtime.UnlockOSThread()
}

// Compute takes the thread again after Wait.
func (u *Unit) Compute() {
	if u == nil || u.holding || !u.ok {
		return
	}
	runtime.LockOSThread()
	start, ok := u.p.cpu()
	if !ok {
		runtime.UnlockOSThread()
		u.ok = false
		return
	}
	u.start, u.holding = start, true
}

// End stops measuring and returns the unit's CPU time, or fallback where
// it could not be measured.
func (u *Unit) End(fallback time.Duration) time.Duration {
	if u == nil {
		return fallback
	}
	u.Wait()
	if !u.ok {
		return fallback
	}
	return u.spent
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
	runtime.LockOSThread()
	start, ok := c.p.cpu()
	n, err := c.Conn.Write(b)
	if end, ok2 := c.p.cpu(); ok && ok2 && end > start {
		c.p.Charge(Validation, end-start)
	}
	runtime.UnlockOSThread()
	return n, err
}
