package cipvalidate

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// answerHandler answers every query with two public A records, as a cache
// hit or an upstream answer would.
type answerHandler struct{ rrs []dns.RR }

func (h answerHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = h.rrs
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func (answerHandler) Name() string { return "answer" }

// benchPlugin returns a started cipvalidate in front of next, with clean
// verdicts cached for the answer's IPs. test.ResponseWriter's client is
// 10.240.0.1.
func benchPlugin(b *testing.B, next plugin.Handler, tagged bool) *CIPValidate {
	b.Helper()
	cfg := defaultConfig()
	cfg.zones = []string{"."}
	cfg.apiKey = "bench"
	cfg.apiURL = "http://127.0.0.1:9" // never called: every verdict is cached
	if tagged {
		cfg.tagNets = []netip.Prefix{netip.MustParsePrefix("10.240.0.0/16")}
	}
	c := &CIPValidate{Next: next, Zones: cfg.zones, cfg: &cfg, key: "bench " + b.Name()}
	if err := c.start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.shutdown() })
	for _, ip := range []string{"45.83.0.10", "45.83.0.11"} {
		c.eng.State().Cache().Put(verdicts.Verdict{IP: netip.MustParseAddr(ip), Outcome: verdicts.Clean}, time.Now())
	}
	return c
}

// BenchmarkServeDNS compares the chain with and without cipvalidate in
// front of it, for untagged clients and for tagged clients whose answers'
// verdicts are cached (clean). The difference is the plugin's overhead.
func BenchmarkServeDNS(b *testing.B) {
	next := answerHandler{rrs: []dns.RR{
		test.A("www.example.org. 300 IN A 45.83.0.10"),
		test.A("www.example.org. 300 IN A 45.83.0.11"),
	}}
	req := new(dns.Msg)
	req.SetQuestion("www.example.org.", dns.TypeA)
	ctx := context.Background()
	w := &fixedClientWriter{}

	run := func(b *testing.B, h plugin.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			h.ServeDNS(ctx, w, req)
		}
	}
	b.Run("baseline", func(b *testing.B) { run(b, next) })
	b.Run("untagged", func(b *testing.B) { run(b, benchPlugin(b, next, false)) })
	b.Run("tagged-cached", func(b *testing.B) { run(b, benchPlugin(b, next, true)) })
	b.Run("tagged-cached-ranges", func(b *testing.B) {
		// 64 range blocks, none holding the answer's IPs: every answer
		// IP is looked up in them.
		c := benchPlugin(b, next, true)
		for i := range 64 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{46, byte(i), 0, 0}), 16)
			if _, err := c.eng.ManualRangeBlock(p, time.Hour, "bench", "bench", false); err != nil {
				b.Fatal(err)
			}
		}
		run(b, c)
	})
	b.Run("tagged-sinkholed", func(b *testing.B) {
		// Every answer points at a suspicious IP: the first is rewritten
		// from the answer, the rest from the name memory, as scenario c's
		// sinkholed names are.
		c := benchPlugin(b, next, true)
		c.eng.State().Cache().Put(verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.11"), Outcome: verdicts.Suspicious}, time.Now())
		run(b, c)
	})
	b.Run("untagged-parallel", func(b *testing.B) {
		c := benchPlugin(b, next, false)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := &fixedClientWriter{}
			for pb.Next() {
				c.ServeDNS(ctx, w, req)
			}
		})
	})
}
