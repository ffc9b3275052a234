package cipvalidate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
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

// cpuPerOp starts counting the process's CPU time (every thread's, the
// garbage collector's included) and returns the function that reports it
// per operation, as cpu-ns/op: on a machine shared with other work,
// ns/op counts the time other processes took the CPU, cpu-ns/op does not.
func cpuPerOp(b *testing.B) func() {
	start := processCPU(b)
	return func() { b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU(b *testing.B) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return ts.Nano()
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
		defer cpuPerOp(b)()
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
		defer cpuPerOp(b)()
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

// wideHandler answers the host a wide benchmark's loop is at (*cur) with
// that host's A records, as the `file` plugin of the loadtest would.
type wideHandler struct {
	answers [][]dns.RR
	cur     *int
}

func (h wideHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Answer = h.answers[*h.cur]
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func (wideHandler) Name() string { return "wide" }

// The wide working set, shaped like the loadtest's zone: wideHosts names
// with one or two A records (three in ten have a second) drawn from
// widePool public IPs, one in ten answered instead by one of wideSuspicious
// suspicious IPs (scenario c), queried at random by wideClients clients.
const (
	wideHosts      = 5000
	widePool       = 3500
	wideSuspicious = 14
	wideClients    = 4
	wideQueries    = 1 << 16
	// wideOther is the memory the rest of the server touches between two
	// queries (the socket buffers, the kernel, the zone's tree), read as
	// a stride over wideOtherSize, so that the plugin's structures are not
	// all in L1 and L2 at the next query, as they are not in the server.
	wideOther     = 2 << 10
	wideOtherSize = 32 << 20
)

// wideSet is a wide benchmark's zone, queries and clients.
type wideSet struct {
	reqs    []*dns.Msg
	answers [][]dns.RR
	order   []int32 // host of each query
	clients []*clientWriter
	pool    []netip.Addr
	bad     []netip.Addr
	other   []byte
}

func newWideSet(sinkholed bool, other []byte) *wideSet {
	s := &wideSet{other: other}
	for i := range widePool {
		s.pool = append(s.pool, netip.AddrFrom4([4]byte{45, 83, byte(i / 254), byte(i%254 + 1)}))
	}
	for i := range wideSuspicious {
		s.bad = append(s.bad, netip.AddrFrom4([4]byte{45, 84, 0, byte(i + 1)}))
	}
	rng := rand.New(rand.NewPCG(1, 17))
	for i := range wideHosts {
		name := fmt.Sprintf("h%d.bench.example.", i)
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		ips := []netip.Addr{s.pool[i%widePool]}
		if rng.IntN(10) < 3 {
			ips = append(ips, s.pool[rng.IntN(widePool)])
		}
		if sinkholed && rng.IntN(10) == 0 {
			ips = []netip.Addr{s.bad[rng.IntN(wideSuspicious)]}
		}
		var rrs []dns.RR
		for _, ip := range ips {
			rrs = append(rrs, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: ip.AsSlice()})
		}
		s.reqs, s.answers = append(s.reqs, req), append(s.answers, rrs)
	}
	for range wideQueries {
		s.order = append(s.order, int32(rng.IntN(wideHosts)))
	}
	for i := range wideClients {
		s.clients = append(s.clients, &clientWriter{addr: &net.UDPAddr{IP: net.IPv4(10, 240, 1, byte(i+1)), Port: 40212}})
	}
	return s
}

// run serves the set's queries from h in order, each from the next client,
// with the rest of the server's memory traffic between them.
func (s *wideSet) run(b *testing.B, h plugin.Handler, cur *int) {
	ctx := context.Background()
	var q, pos, sum int
	serve := func() {
		*cur = int(s.order[q%wideQueries])
		h.ServeDNS(ctx, s.clients[q%wideClients], s.reqs[*cur])
		q++
		for range wideOther / 64 {
			sum += int(s.other[pos])
			pos = (pos + 64) % wideOtherSize
		}
	}
	// A pass over the queries and a collection first: the first
	// sub-benchmark of a run measured four times the others without.
	for range wideQueries {
		serve()
	}
	runtime.GC()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		serve()
	}
	if sum < 0 {
		b.Log(sum)
	}
}

// BenchmarkServeDNSWide is BenchmarkServeDNS's tagged paths over a working
// set like the loadtest's (scenarios b and c): thousands of answer IPs and
// names, a few tagged clients, every verdict cached, and memory traffic
// between the queries, so that what the plugin reads per answer IP is
// often not in the CPU's caches, as in the server. baseline is the chain
// without the plugin, with the same traffic.
func BenchmarkServeDNSWide(b *testing.B) {
	other := make([]byte, wideOtherSize)
	for i := range other { // fault the pages in outside the timed loops
		other[i] = byte(i)
	}
	sets := []*wideSet{newWideSet(false, other), newWideSet(true, other)}
	for _, sinkholed := range []bool{false, true} {
		s := sets[0]
		if sinkholed {
			s = sets[1]
		}
		cur := new(int)
		next := wideHandler{answers: s.answers, cur: cur}
		suffix := "cached"
		if sinkholed {
			suffix = "sinkholed"
		}
		b.Run("baseline-"+suffix, func(b *testing.B) { s.run(b, next, cur) })
		b.Run("tagged-"+suffix, func(b *testing.B) {
			c := benchPlugin(b, next, true)
			cache, now := c.eng.State().Cache(), time.Now()
			for _, ip := range s.pool {
				cache.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Clean}, now)
			}
			for _, ip := range s.bad {
				cache.Put(verdicts.Verdict{IP: ip, Outcome: verdicts.Suspicious}, now)
			}
			// Every host once per client, as the loadtest's warm-up: the
			// sinkholed names are held, every verdict has been used.
			ctx := context.Background()
			for i := range s.reqs {
				*cur = i
				for _, w := range s.clients {
					c.ServeDNS(ctx, w, s.reqs[i])
				}
			}
			if got := c.eng.Queue().Stats().Submitted["queued"]; got != 0 {
				b.Fatalf("%d IPs queued: the set's verdicts are not all cached", got)
			}
			if sinkholed && c.names.Len() == 0 {
				b.Fatal("no sinkholed name held after the warm-up")
			}
			s.run(b, c, cur)
		})
	}
}
