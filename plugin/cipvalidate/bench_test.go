package cipvalidate

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// answerHandler answers every query with two public A records, as a cache
// hit or an upstream answer would, and counts the queries it was asked
// (when calls is set), so that a benchmark can tell a rewrite by name (the
// next plugin is not asked) from one by IP.
type answerHandler struct {
	rrs   []dns.RR
	calls *atomic.Int64
}

func (h answerHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if h.calls != nil {
		h.calls.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = h.rrs
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func (answerHandler) Name() string { return "answer" }

// The answer's IPs: clean is always clean, bad is made suspicious (or
// shared) by the sub-benchmarks that need it.
var (
	benchClean = netip.MustParseAddr("45.83.0.10")
	benchBad   = netip.MustParseAddr("45.83.0.11")
)

// benchPlugin returns a started cipvalidate in front of next, with clean
// verdicts cached for the answer's IPs; opts adjust the configuration
// first. test.ResponseWriter's client is 10.240.0.1.
func benchPlugin(b *testing.B, next plugin.Handler, tagged bool, opts ...func(*config)) *CIPValidate {
	b.Helper()
	cfg := defaultConfig()
	cfg.zones = []string{"."}
	cfg.apiKey = "bench"
	cfg.apiURL = "http://127.0.0.1:9" // never called: every verdict is cached
	if tagged {
		cfg.tagNets = []netip.Prefix{netip.MustParsePrefix("10.240.0.0/16")}
	}
	for _, o := range opts {
		o(&cfg)
	}
	c := &CIPValidate{Next: next, Zones: cfg.zones, cfg: &cfg, key: "bench " + b.Name()}
	if err := c.start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.shutdown() })
	for _, ip := range []netip.Addr{benchClean, benchBad} {
		c.eng.State().Cache().Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Clean}, time.Now())
	}
	return c
}

// suspect caches a suspicious verdict for benchBad, shared (its report
// lists more domains than `shared`) if asked.
func suspect(c *CIPValidate, shared bool) {
	v := verdicts.Verdict{IP: benchBad, Outcome: verdicts.Suspicious}
	if shared {
		v.Domains = 10 * defaultShared
	}
	c.eng.State().Cache().Put(v, time.Now())
}

// recordWriter keeps the answer written to the client.
type recordWriter struct {
	fixedClientWriter
	msg *dns.Msg
}

func (w *recordWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

// rewritten reports whether m no longer points at the answer's IPs.
func rewritten(m *dns.Msg) bool {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, _ := netip.AddrFromSlice(a.A); ip.Unmap() == benchClean || ip.Unmap() == benchBad {
				return false
			}
		}
	}
	return true
}

// assertPath serves req once, outside the timed loop, and fails the
// benchmark unless the path taken is the one it is named after: the answer
// rewritten or not, and the next plugin asked or not (a rewrite by name
// answers without asking it).
func assertPath(b *testing.B, h plugin.Handler, calls *atomic.Int64, req *dns.Msg, wantRewritten, wantAsked bool) {
	b.Helper()
	w := &recordWriter{}
	before := calls.Load()
	h.ServeDNS(context.Background(), w, req)
	asked := calls.Load() > before
	if w.msg == nil || rewritten(w.msg) != wantRewritten || asked != wantAsked {
		b.Fatalf("wrong path: answer %v, rewritten %v (want %v), next plugin asked %v (want %v)",
			w.msg, w.msg != nil && rewritten(w.msg), wantRewritten, asked, wantAsked)
	}
}

// BenchmarkServeDNS measures every path of an answer through cipvalidate,
// against the chain without it (baseline): untagged, tagged with cached
// clean verdicts, sinkholed by IP (a suspicious verdict) and by remembered
// name, a shared IP (rewritten by name only), and `enforce all` for an
// untagged client. Each sub-benchmark first checks, outside the timed loop,
// that the query takes the path it is named after.
func BenchmarkServeDNS(b *testing.B) {
	calls := new(atomic.Int64)
	next := answerHandler{rrs: []dns.RR{
		test.A("www.example.org. 300 IN A 45.83.0.10"),
		test.A("www.example.org. 300 IN A 45.83.0.11"),
	}, calls: calls}
	req := new(dns.Msg)
	req.SetQuestion("www.example.org.", dns.TypeA)
	ctx := context.Background()
	w := &fixedClientWriter{}
	enforceAll := func(cfg *config) { cfg.enforceAll = true } // the default, said for the reader

	run := func(b *testing.B, h plugin.Handler) {
		b.ReportAllocs()
		for b.Loop() {
			h.ServeDNS(ctx, w, req)
		}
	}
	// byIP runs with the name forgotten after every query, so that each
	// one is rewritten from the answer's verdict, not from the name
	// memory; the forgetting (one map delete) is in the figure.
	byIP := func(b *testing.B, c *CIPValidate) {
		forget := func(verdicts.Verdict) bool { return true }
		b.ReportAllocs()
		for b.Loop() {
			c.ServeDNS(ctx, w, req)
			c.names.Forget(forget)
		}
	}
	// byName primes the name memory with one rewrite by IP first.
	byName := func(b *testing.B, c *CIPValidate) {
		c.ServeDNS(ctx, w, req)
		assertPath(b, c, calls, req, true, false)
		run(b, c)
	}

	b.Run("baseline", func(b *testing.B) { run(b, next) })
	b.Run("untagged", func(b *testing.B) {
		// `enforce all` (the default) looks the clean verdicts up.
		c := benchPlugin(b, next, false)
		assertPath(b, c, calls, req, false, true)
		run(b, c)
	})
	b.Run("tagged-cached", func(b *testing.B) {
		c := benchPlugin(b, next, true)
		assertPath(b, c, calls, req, false, true)
		run(b, c)
	})
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
		assertPath(b, c, calls, req, false, true)
		run(b, c)
	})
	b.Run("sinkholed-ip", func(b *testing.B) {
		c := benchPlugin(b, next, true)
		suspect(c, false)
		assertPath(b, c, calls, req, true, true)
		c.names.Forget(func(verdicts.Verdict) bool { return true })
		byIP(b, c)
	})
	b.Run("sinkholed-name", func(b *testing.B) {
		// As scenario c's sinkholed names are after their first answer.
		c := benchPlugin(b, next, true)
		suspect(c, false)
		byName(b, c)
	})
	b.Run("shared-ip-name", func(b *testing.B) {
		// A shared IP is rewritten only for the names that led to it.
		c := benchPlugin(b, next, true)
		suspect(c, true)
		v, ok := c.eng.Suspicious(benchBad, c.eng.Now())
		if !ok {
			b.Fatal("no suspicious verdict for the shared IP")
		}
		c.names.Put("www.example.org.", v)
		assertPath(b, c, calls, req, true, false)
		run(b, c)
	})
	b.Run("shared-ip-other-name", func(b *testing.B) {
		// Any other name pointing at the shared IP is answered as it is.
		c := benchPlugin(b, next, true)
		suspect(c, true)
		assertPath(b, c, calls, req, false, true)
		run(b, c)
	})
	b.Run("enforce-all-untagged-sinkholed-ip", func(b *testing.B) {
		c := benchPlugin(b, next, false, enforceAll)
		suspect(c, false)
		assertPath(b, c, calls, req, true, true)
		c.names.Forget(func(verdicts.Verdict) bool { return true })
		byIP(b, c)
	})
	b.Run("enforce-all-untagged-sinkholed-name", func(b *testing.B) {
		c := benchPlugin(b, next, false, enforceAll)
		suspect(c, false)
		byName(b, c)
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
