package enforce

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// This file retries the validation of the IPs an event found whose
// validation failed (an error verdict: the API down for a while, out of
// quota, answering garbage), or never started (the queue was full). The
// queue caches an error verdict for the `cache … error` TTL and answers
// every Submit from it meanwhile, so without a retry such an IP would stay
// unknown until a tagged client happened to resolve it again after that
// TTL. Each retry is a Recheck job, which the cached error does not answer.

// Retry bounds.
const (
	// retryFirst is the first backoff; each retry doubles it up to
	// retryMax (2s, 4s, 8s, … 2m), and each wait is jittered to between
	// half and all of it, so IPs that failed together do not retry in
	// step.
	retryFirst = 2 * time.Second
	retryMax   = 2 * time.Minute
	// retryNoWatch is how long an event that tags nobody (watch 0, or a
	// watch already over when it arrives) keeps retrying.
	retryNoWatch = 10 * time.Minute
	// retryTracked caps the IPs followed at once. An IP over the cap is
	// validated as before, only not retried; a log line says how many.
	retryTracked = 4096
	// retryKeep is how long an IP that was given up on, or is still
	// waiting for a verdict past its retry time, stays in the tracker for
	// the event report, unless the cap needs the room first.
	retryKeep = 24 * time.Hour
)

// The validation states of an IP an event found, as its report shows them,
// besides the outcomes clean and suspicious.
const (
	stateValidating = "validating"     // queued or being validated
	stateRetrying   = "retrying (%d)"  // validation failed; the %d-th retry is due or running
	stateGaveUp     = "error: gave up" // failed until the event's watch ended
	stateError      = "error"          // an error verdict, not retried (over the cap)
	stateUnknown    = "unknown"        // no verdict now: expired, or never queued
)

// retryTracker follows the IPs events submitted until they have a verdict.
// Its zero value is ready; Engine.stopRetries ends it.
type retryTracker struct {
	mu      sync.Mutex
	ips     map[netip.Addr]*retryEntry
	stopped bool
}

// retryEntry is one followed IP.
type retryEntry struct {
	job     validate.Job // as first submitted; retried with Recheck
	until   time.Time    // no retry starts after this (engine clock)
	retries int          // resubmissions so far
	timer   *time.Timer  // non-nil: a retry is due
	gaveUp  time.Time    // non-zero: given up at this time
}

// followEvent starts following job.IP for an event, before it is
// submitted (so that no verdict can arrive unseen), until until; an IP
// followed already keeps the later bound. It reports false if the tracker
// is full.
func (e *Engine) followEvent(job validate.Job, until, now time.Time) bool {
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if ent := t.ips[job.IP]; ent != nil {
		if until.After(ent.until) {
			ent.until = until
			if !ent.gaveUp.IsZero() { // a new event gives it a new chance
				ent.gaveUp, ent.retries = time.Time{}, 0
			}
		}
		return true
	}
	if t.ips == nil {
		t.ips = make(map[netip.Addr]*retryEntry)
	}
	if len(t.ips) >= retryTracked && !t.pruneLocked(now) {
		return false
	}
	t.ips[job.IP] = &retryEntry{job: job, until: until}
	return true
}

// pruneLocked makes room for one entry: it drops the entries kept past
// retryKeep, else the one given up on longest ago. It reports whether
// there is room.
func (t *retryTracker) pruneLocked(now time.Time) bool {
	var oldest netip.Addr
	var oldestAt time.Time
	for ip, ent := range t.ips {
		if ent.timer != nil {
			continue
		}
		since := ent.gaveUp
		if since.IsZero() {
			since = ent.until // waiting for a verdict; stale only well past its bound
		}
		if now.Sub(since) > retryKeep {
			delete(t.ips, ip)
			continue
		}
		if !ent.gaveUp.IsZero() && (oldestAt.IsZero() || ent.gaveUp.Before(oldestAt)) {
			oldest, oldestAt = ip, ent.gaveUp
		}
	}
	if len(t.ips) >= retryTracked && oldest.IsValid() {
		delete(t.ips, oldest)
	}
	return len(t.ips) < retryTracked
}

// submitted handles what Submit answered for a followed IP: a cached error
// or a full queue schedules a retry, since no fresh verdict will come; a
// cached verdict ends the following.
func (e *Engine) submitted(ip netip.Addr, r validate.Result) {
	switch r {
	case validate.Queued, validate.InFlight:
		return // onVerdict will tell
	case validate.Cached:
		if v, ok := e.st.cache.Get(ip, e.Now()); ok && v.Outcome != verdicts.Error {
			e.forgetRetry(ip)
			return
		}
	}
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	if ent := t.ips[ip]; ent != nil && !t.stopped {
		e.scheduleLocked(ip, ent)
	}
}

// retryOnVerdict is told every fresh verdict: for a followed IP, a clean
// or suspicious one ends the following, an error schedules a retry.
func (e *Engine) retryOnVerdict(v verdicts.Verdict) {
	if v.Outcome != verdicts.Error {
		e.forgetRetry(v.IP)
		return
	}
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	if ent := t.ips[v.IP]; ent != nil && !t.stopped {
		e.scheduleLocked(v.IP, ent)
	}
}

func (e *Engine) forgetRetry(ip netip.Addr) {
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	if ent := t.ips[ip]; ent != nil {
		if ent.timer != nil {
			ent.timer.Stop()
		}
		delete(t.ips, ip)
	}
}

// scheduleLocked arms ip's next retry, or gives up once its time is over.
// A retry already due is left as it is.
func (e *Engine) scheduleLocked(ip netip.Addr, ent *retryEntry) {
	if ent.timer != nil || !ent.gaveUp.IsZero() {
		return
	}
	if now := e.Now(); !now.Before(ent.until) {
		ent.gaveUp = now
		e.log.Warningf("event %s: validation of %s failed; gave up after %d retries (retrying ended %s)",
			ent.job.Event, ip, ent.retries, ent.until.UTC().Format(time.RFC3339))
		return
	}
	ent.timer = time.AfterFunc(retryDelay(ent.retries), func() { e.retry(ip) })
}

// retryDelay is the wait before retry n+1: retryFirst doubled n times,
// at most retryMax, jittered to between half and all of it.
func retryDelay(n int) time.Duration {
	d := retryMax
	if n < 16 && retryFirst<<n < retryMax {
		d = retryFirst << n
	}
	return d/2 + rand.N(d/2+1)
}

// retry resubmits ip, on its timer.
func (e *Engine) retry(ip netip.Addr) {
	t := &e.retries
	t.mu.Lock()
	ent := t.ips[ip]
	if ent == nil || t.stopped {
		t.mu.Unlock()
		return
	}
	ent.timer = nil
	now := e.Now()
	if v, ok := e.st.cache.Get(ip, now); ok && v.Outcome != verdicts.Error {
		// A verdict came without a fresh one of ours (another node's).
		delete(t.ips, ip)
		t.mu.Unlock()
		return
	}
	if !now.Before(ent.until) {
		e.scheduleLocked(ip, ent) // gives up
		t.mu.Unlock()
		return
	}
	ent.retries++
	job := ent.job
	job.Recheck = true
	e.log.Debugf("event %s: retry %d of %s", job.Event, ent.retries, ip)
	t.mu.Unlock()
	e.submitted(ip, e.submit(FromEvent, job))
}

// validationState is the state of ip, found by an event, for its report.
func (e *Engine) validationState(ip netip.Addr) string {
	v, ok := e.st.cache.Get(ip, e.Now())
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	// A followed IP is followed until its verdict's finding is decided
	// (onVerdict forgets it last), even if the verdict is already cached.
	if ent := t.ips[ip.Unmap()]; ent != nil {
		switch {
		case !ent.gaveUp.IsZero():
			return stateGaveUp
		case ent.timer != nil:
			return fmt.Sprintf(stateRetrying, ent.retries+1)
		case ent.retries > 0:
			return fmt.Sprintf(stateRetrying, ent.retries)
		}
		return stateValidating
	}
	if ok && v.Outcome != verdicts.Error {
		return string(v.Outcome)
	}
	if ok {
		return stateError
	}
	return stateUnknown
}

// stopRetries stops every retry due; later ones are not scheduled.
func (e *Engine) stopRetries() {
	t := &e.retries
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for _, ent := range t.ips {
		if ent.timer != nil {
			ent.timer.Stop()
			ent.timer = nil
		}
	}
}

// retryUntil is when retries of an event's IPs stop: the end of its watch,
// or retryNoWatch from now if it tags nobody (any more).
func retryUntil(at time.Time, watch time.Duration, now time.Time) time.Time {
	if until := at.Add(watch); watch > 0 && until.After(now) {
		return until
	}
	return now.Add(retryNoWatch)
}
