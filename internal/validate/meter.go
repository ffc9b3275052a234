package validate

import (
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/pace"
)

// meter measures a job's processing time for the CPU budget where the
// system has no thread CPU clock (pace.Unit falls back to it): the wall
// time of the job less its waits on the network. The wall time of the
// parts that compute stands in for their CPU time: building and writing
// the request, reading and decoding the answer, evaluating it, caching the
// verdict and deciding. Not charged: the shared cache's round trips
// (Redis), and inside the API call the rate limit, retry pauses and the
// time from the request written to the answer's first byte (the server's
// think time and the network), told apart by an httptrace.ClientTrace in
// the call's context. On a busy CPU the parts that compute also include
// the time the worker waited its turn to run, so the meter overcharges
// exactly when DNS needs the CPU most, and overlapping jobs each count the
// others' work.
//
// A nil *meter measures nothing. The trace's hooks run on the HTTP
// transport's goroutines, hence the lock.
type meter struct {
	now   func() time.Time
	start time.Time
	unit  *pace.Unit // the CPU clock's, told of the waits on Redis

	mu          sync.Mutex
	waited      time.Duration // not charged
	waitStart   time.Time
	reportStart time.Time
	connAt      time.Time // GetConn of the attempt under way
	firstByte   time.Time // the last attempt's first response byte
	connected   bool      // an attempt reached GetConn
	sending     time.Duration
}

func newMeter(now func() time.Time, u *pace.Unit) *meter {
	return &meter{now: now, start: now(), unit: u}
}

// clock reads the meter's clock; the zero time for a nil meter, which
// measures nothing.
func (m *meter) clock() time.Time {
	if m == nil {
		return time.Time{}
	}
	return m.now()
}

// trace returns the hooks that find the API's wait inside a call.
func (m *meter) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn: func(string) {
			m.mu.Lock()
			m.connAt, m.connected = m.now(), true
			m.mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			m.mu.Lock()
			m.sending += m.now().Sub(m.connAt)
			m.mu.Unlock()
		},
		GotFirstResponseByte: func() {
			m.mu.Lock()
			m.firstByte = m.now()
			m.mu.Unlock()
		},
	}
}

// waitFrom and waitTo bracket a wait that is not charged.
func (m *meter) waitFrom(t time.Time) {
	if m != nil {
		m.waitStart = t
		m.unit.Wait()
	}
}

func (m *meter) waitTo(t time.Time) {
	if m != nil {
		m.unit.Compute()
		m.waited += t.Sub(m.waitStart)
	}
}

// reportFrom and reportTo bracket the API call. Of it, the sending of each
// attempt and the reading of the last answer are charged; a call that
// never reached the transport (a Reporter that is not HTTP, a test's) is
// charged whole.
func (m *meter) reportFrom(t time.Time) {
	if m != nil {
		m.reportStart = t
	}
}

func (m *meter) reportTo(t time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.connected {
		return
	}
	busy := m.sending
	if !m.firstByte.IsZero() && t.After(m.firstByte) {
		busy += t.Sub(m.firstByte)
	}
	m.waited += max(0, t.Sub(m.reportStart)-busy)
}

// busy returns the processing time of the job so far.
func (m *meter) busy() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return max(0, m.now().Sub(m.start)-m.waited)
}
