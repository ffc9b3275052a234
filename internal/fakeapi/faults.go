package fakeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Mode is a way for the fake API to misbehave.
type Mode int

// The fault modes. Their String forms are the mode names of /_fake/fault.
const (
	Mode429       Mode = iota + 1 // HTTP 429, quota body, Retry-After when set
	ModeQuota200                  // HTTP 200, quota body
	Mode5xx                       // HTTP 503, HTML page as from a load balancer
	Mode500                       // HTTP 500, JSON error body
	ModeMalformed                 // HTTP 200, truncated JSON
	ModeBadKey                    // HTTP 401, invalid-key body
	ModeBadKey200                 // HTTP 200, invalid-key body
	ModeSlow                      // waits SlowDelay, then answers normally
	ModeHuge                      // HTTP 200, valid JSON larger than 8 MiB, streamed
	ModeHangup                    // closes the connection without an answer
)

var modeNames = [...]string{
	Mode429:       "429",
	ModeQuota200:  "quota200",
	Mode5xx:       "5xx",
	Mode500:       "500",
	ModeMalformed: "malformed",
	ModeBadKey:    "badkey",
	ModeBadKey200: "badkey200",
	ModeSlow:      "slow",
	ModeHuge:      "huge",
	ModeHangup:    "hangup",
}

func (m Mode) valid() bool { return m >= Mode429 && int(m) < len(modeNames) }

// String returns the mode's name as ParseMode accepts it.
func (m Mode) String() string {
	if !m.valid() {
		return "Mode(" + strconv.Itoa(int(m)) + ")"
	}
	return modeNames[m]
}

// ParseMode returns the Mode named name (429, quota200, 5xx, 500, malformed,
// badkey, badkey200, slow, huge or hangup).
func ParseMode(name string) (Mode, error) {
	for m := Mode429; m.valid(); m++ {
		if modeNames[m] == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown fault mode %q (want one of %v)", name, modeNames[1:])
}

const (
	defaultSlowDelay = 5 * time.Second
	// hugeBodySize is above the 8 MiB a client is expected to cap reads at.
	hugeBodySize = 9 << 20
)

var (
	internalErrorBody = []byte(`{"message":"internal error","status":500}`)
	// loadBalancer503 is what a proxy in front of an API typically sends when
	// the API is down: HTML, not the API's JSON.
	loadBalancer503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n" +
		"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
	hugePadding = bytes.Repeat([]byte("x"), 32<<10)
)

// fault is a queued fault mode with the requests it has left.
type fault struct {
	mode       Mode
	remaining  int // -1: until cleared
	retryAfter int
	delay      time.Duration
}

// Fault makes the next count report requests fail in mode; count -1 (or any
// negative count) means every request until ClearFaults. Faults queue up and
// are used in the order they were added. Fault panics on an unknown mode.
func (s *Server) Fault(mode Mode, count int) {
	if !mode.valid() {
		panic("fakeapi: Fault with unknown mode " + mode.String())
	}
	if count == 0 {
		return
	}
	s.enqueue(fault{mode: mode, remaining: max(count, -1)})
}

func (s *Server) enqueue(f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetDelay makes every report answer, faulted or not, wait d first. The wait
// ends early, with no answer, when the request's context ends.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = max(d, 0)
}

// faultDelay is how long f waits before its answer.
func (s *Server) faultDelay(f fault) time.Duration {
	switch {
	case f.delay > 0:
		return f.delay
	case f.mode != ModeSlow:
		return 0
	case s.SlowDelay > 0:
		return s.SlowDelay
	default:
		return defaultSlowDelay
	}
}

// writeFault answers in f's mode; ModeSlow is not handled here, as after its
// wait the answer is the normal one.
func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, f fault, rawIP string) {
	switch f.mode {
	case Mode429:
		retryAfter := s.RetryAfter
		if f.retryAfter > 0 {
			retryAfter = f.retryAfter
		}
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		writeJSON(w, http.StatusTooManyRequests, s.quotaBody)
	case ModeQuota200:
		writeJSON(w, http.StatusOK, s.quotaBody)
	case Mode5xx:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, loadBalancer503)
	case Mode500:
		writeJSON(w, http.StatusInternalServerError, internalErrorBody)
	case ModeMalformed:
		body := cleanReport(rawIP)
		// Any proper prefix of a JSON object lacks its closing brace.
		writeJSON(w, http.StatusOK, body[:len(body)/2])
	case ModeBadKey:
		writeJSON(w, http.StatusUnauthorized, s.invalidKeyBody)
	case ModeBadKey200:
		writeJSON(w, http.StatusOK, s.invalidKeyBody)
	case ModeHuge:
		writeHuge(r.Context(), w, rawIP)
	case ModeHangup:
		hangUp(w)
	}
}

// writeHuge streams a valid JSON report padded past hugeBodySize without
// holding it in memory; it hangs up when the request's context ends.
func writeHuge(ctx context.Context, w http.ResponseWriter, ip string) {
	quotedIP, err := json.Marshal(ip)
	if err != nil {
		panic(err) // a string always marshals
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	parts := [][]byte{[]byte(`{"ip":`), quotedIP, []byte(`,"padding":"`)}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return
		}
	}
	for written := 0; written < hugeBodySize; written += len(hugePadding) {
		if ctx.Err() != nil {
			hangUp(w) // returning would end the chunked body cleanly
			return
		}
		if _, err := w.Write(hugePadding); err != nil {
			return
		}
	}
	io.WriteString(w, `","status":200}`)
}

// hangUp closes the connection without finishing the answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be hijacked; aborting the handler resets the stream,
		// which is the closest equivalent.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
