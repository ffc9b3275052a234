package cipvalidate

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/coredns-cip/coredns-cip/internal/pace"
)

// With the CPU budget spent (charged an hour every 10 ms at `validate_cpu 0.1%`), the
// workers wait and nothing is validated, yet a tagged client's queries are
// answered at once and their IPs queued: the budget never reaches the DNS
// path.
func TestE2ESpentCPUBudgetDoesNotHoldDNS(t *testing.T) {
	e := startE2E(t, "validate_cpu 0.1%\n        tag 127.0.0.3/32")
	eng := e.owner().eng
	p := eng.Pacer()
	if p == nil || p.Fraction() != 0.001 {
		t.Fatalf("the engine's CPU budget is %v, want validate_cpu's 0.001", p)
	}
	// The debt is bounded (pace.MaxDebtFill): keep the budget spent for
	// the whole test, as a storm of events would.
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	p.Charge(pace.Validation, time.Hour)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				p.Charge(pace.Validation, time.Hour)
			}
		}
	}()
	names := []string{"clean.example.org", "bad.example.org", "tor.example.org"}
	for _, name := range names {
		r := e.query("127.0.0.3", name, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s: rcode %s, %d answers; want the zone's answer", name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	// The two workers take a job each, and wait for the budget with it.
	deadline := time.Now().Add(10 * time.Second)
	for _, low := eng.Queue().Depth(); low != len(names)-2; _, low = eng.Queue().Depth() {
		if time.Now().After(deadline) {
			t.Fatalf("%d IPs still queued, want %d: the workers did not take theirs", low, len(names)-2)
		}
		time.Sleep(time.Millisecond)
	}
	st := eng.Queue().Stats()
	if st.Submitted["queued"] != uint64(len(names)) {
		t.Fatalf("submissions %v, want the %d answers' IPs queued", st.Submitted, len(names))
	}
	if n := st.Verdicts["clean"] + st.Verdicts["suspicious"] + st.Verdicts["error"]; n != 0 {
		t.Fatalf("%d verdicts while the budget is spent; the workers did not wait", n)
	}
	if calls := e.fake.Calls(); calls != 0 {
		t.Fatalf("%d API calls while the budget is spent", calls)
	}
}
