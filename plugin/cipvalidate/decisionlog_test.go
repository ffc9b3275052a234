package cipvalidate

import (
	"bytes"
	stdlog "log"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/miekg/dns"
)

// syncBuffer is a log sink the test reads while the plugin writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// captureLog sends the standard logger (CoreDNS's plugin log writes to it)
// to a buffer for the test's duration.
func captureLog(t *testing.T) *syncBuffer {
	t.Helper()
	buf := &syncBuffer{}
	old := stdlog.Writer()
	stdlog.SetOutput(buf)
	t.Cleanup(func() { stdlog.SetOutput(old) })
	return buf
}

// TestDecisionLogAggregates: a client hammering a sinkholed name gets one
// decision line at once and one `repeated=N` line when the period ends,
// while every rewrite is still answered and counted.
func TestDecisionLogAggregates(t *testing.T) {
	logs := captureLog(t)
	c := startedPlugin(t, nil, func(cfg *config) { cfg.zones = []string{"."} })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v := verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.21"), Outcome: verdicts.Suspicious, Decision: "cip-0123456789ab",
		Reasons: []risk.Reason{{Factor: "SCORE", Detail: "inbound Critical"}}}
	client := netip.MustParseAddr("10.1.2.3")
	other := netip.MustParseAddr("10.1.2.4")
	req := new(dns.Msg)
	req.SetQuestion("bad.example.", dns.TypeA)

	for i := range 50 {
		c.logDecision(t.Context(), client, req, v, v.IP, "answer", now.Add(time.Duration(i)*time.Second/10))
	}
	c.logDecision(t.Context(), other, req, v, v.IP, "answer", now)
	first := logs.lines("decision cip-0123456789ab")
	if len(first) != 2 || !strings.Contains(first[0], "client=10.1.2.3") || !strings.Contains(first[0], `reasons="SCORE: inbound Critical"`) ||
		!strings.Contains(first[1], "client=10.1.2.4") {
		t.Fatalf("after 51 rewrites for 2 clients, decision lines:\n%s", strings.Join(first, "\n"))
	}

	// Before the period ends nothing more is written; after it, one line
	// sums the 49 repeats; the other client had none, so it gets no line.
	c.decisions.flush(now.Add(decisionLogEvery/2), decisionLogEvery)
	if n := len(logs.lines("repeated=")); n != 0 {
		t.Fatalf("%d repeat lines before the period ended", n)
	}
	c.decisions.flush(now.Add(decisionLogEvery), decisionLogEvery)
	rep := logs.lines("repeated=")
	if len(rep) != 1 || !strings.Contains(rep[0], "repeated=49") || !strings.Contains(rep[0], "client=10.1.2.3") ||
		!strings.Contains(rep[0], "qname=bad.example. qtype=A ip=45.83.0.21 action=sinkhole") {
		t.Fatalf("repeat lines:\n%s", strings.Join(rep, "\n"))
	}

	// The next period starts afresh with a full line.
	c.logDecision(t.Context(), client, req, v, v.IP, "answer", now.Add(2*decisionLogEvery))
	if n := len(logs.lines("decision cip-0123456789ab")); n != 4 {
		t.Fatalf("%d decision lines after a new period's first rewrite, want 4", n)
	}
}

// TestDecisionLogBounded: past decisionLogKeys distinct answers, lines are
// written as they come rather than dropped.
func TestDecisionLogBounded(t *testing.T) {
	d := newDecisionLog()
	now := time.Now()
	for i := range decisionLogKeys {
		k := decisionKey{client: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), qname: "x."}
		if !d.first(k, "cip-1", "answer", now) {
			t.Fatalf("key %d not logged first", i)
		}
	}
	k := decisionKey{client: netip.MustParseAddr("10.200.0.1"), qname: "x."}
	for i := range 2 {
		if !d.first(k, "cip-1", "answer", now) {
			t.Fatalf("line %d of a key past the bound was aggregated: it would be lost", i+1)
		}
	}
}

// TestFailClosedAggregatedAndAudited: a refused unvalidated answer is a
// decision like a rewrite: one line for repeats, and an audit line each.
func TestFailClosedAggregatedAndAudited(t *testing.T) {
	logs := captureLog(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	c := startedPlugin(t, nil, func(cfg *config) { cfg.zones, cfg.auditPath = []string{"."}, auditPath })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v := verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.10"), Outcome: verdicts.Error, Error: criminalip.KindTransient, Decision: "cip-failclosed01"}
	req := new(dns.Msg)
	req.SetQuestion("slow.example.", dns.TypeA)
	for range 3 {
		c.logFailClosed(t.Context(), netip.MustParseAddr("10.1.2.3"), req, v, v.IP, now)
	}
	lines := logs.lines("decision cip-failclosed01")
	if len(lines) != 1 || !strings.Contains(lines[0], "action=refuse_unvalidated") || !strings.Contains(lines[0], "could not be validated: transient") {
		t.Fatalf("decision lines:\n%s", strings.Join(lines, "\n"))
	}
	c.shutdown() // flushes the audit log and writes the repeat line
	if rep := logs.lines("repeated=2"); len(rep) != 1 {
		t.Errorf("repeat lines: %q", rep)
	}
	data, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"kind":"fail_closed"`); n != 3 {
		t.Errorf("%d fail_closed audit lines, want 3:\n%s", n, data)
	}
}
