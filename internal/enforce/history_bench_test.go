package enforce_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// BenchmarkDecisionHistory measures the admin API's decision routes, the
// console's pages, with 10,000 decisions in history (a third of them
// expired, a third lifted): the whole request through the handler
// (routing, filters, the history, JSON), without the network.
func BenchmarkDecisionHistory(b *testing.B) {
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	e := enforce.New(b.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy: blocks.Policy{TTL: 24 * time.Hour}, Now: clock.Now,
	})
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	defer e.Stop()
	const n = 10_000
	var mid string
	for i := range n {
		ip := netip.AddrFrom4([4]byte{45, 83, byte(i / 256), byte(i % 256)})
		now := clock.Now()
		v := verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious, Decision: verdicts.NewDecisionID(), Score: "Critical",
			Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical, outbound Critical"}}, Checked: now,
			Evidence: &verdicts.Evidence{ScoreInbound: "Critical", ScoreOutbound: "Critical", Ports: []int{22, 443}, Tags: []string{"tor"}}}
		e.Decide(v, validate.Job{IP: ip, Client: netip.AddrFrom4([4]byte{10, 1, byte(i % 7), byte(i % 200)}), Event: fmt.Sprintf("ev-%d", i/10), Name: "bad.example."})
		switch {
		case i == n/3:
			e.ExpireBlocks(clock.Advance(25 * time.Hour)) // the first third expired
		case i > n/3 && i%2 == 0:
			if _, err := e.LiftDecision(v.Decision, "alice", "false positive"); err != nil {
				b.Fatal(err)
			}
		}
		if i == n/2 {
			mid = v.Decision
		}
		clock.Advance(time.Second)
	}
	srv, err := adminapi.NewServer(adminapi.Config{Addr: "127.0.0.1:0", Backend: e.API(), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, bc := range []struct{ name, path string }{
		{"first page", "/v1/decisions"},
		{"filtered page", "/v1/decisions?state=lifted&client=10.1.3.18&factor=score&since=30d"},
		{"one ip", "/v1/decisions?ip=45.83.19.136"},
		{"one decision", "/v1/decisions/" + mid},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bytes := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", bc.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", bc.path, rec.Code, rec.Body)
				}
				bytes = rec.Body.Len()
			}
			b.ReportMetric(float64(bytes), "body-bytes")
		})
	}
}
