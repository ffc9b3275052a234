package cipvalidate

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// answering is a next plugin that answers every A query, authoritatively,
// with a public IP and a private one.
func answering() test.Handler {
	return test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{
			test.A(r.Question[0].Name + " 300 IN A 45.83.0.21"),
			test.A(r.Question[0].Name + " 300 IN A 10.1.1.1"),
		}
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
}

// startedPlugin is a running cipvalidate in front of next (its API is never
// reached: tests put verdicts in the cache). Clients of test.ResponseWriter
// are 10.240.0.1.
func startedPlugin(tb testing.TB, next plugin.Handler, edit func(*config)) *CIPValidate {
	tb.Helper()
	cfg := defaultConfig()
	cfg.zones = []string{"example.org."}
	cfg.apiKey = "unit"
	cfg.apiURL = "http://127.0.0.1:9"
	if edit != nil {
		edit(&cfg)
	}
	c := &CIPValidate{Next: next, Zones: cfg.zones, cfg: &cfg, key: "unit " + tb.Name()}
	if err := c.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.shutdown() })
	return c
}

func serve(c *CIPValidate, qname string, qtype uint16) (*dns.Msg, int, error) {
	req := new(dns.Msg)
	req.SetQuestion(qname, qtype)
	req.SetEdns0(1232, false)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rc, err := c.ServeDNS(context.Background(), rec, req)
	return rec.Msg, rc, err
}

func TestServeDNSPassesThrough(t *testing.T) {
	errNext := errors.New("next failed")
	tests := []struct {
		name      string
		next      plugin.Handler
		qname     string
		wantRcode int
		wantErr   error
		wantIPs   int // answers written, -1: nothing written
	}{
		{"answer is unchanged", answering(), "example.org.", dns.RcodeSuccess, nil, 2},
		{"query outside the zones is unchanged", answering(), "example.net.", dns.RcodeSuccess, nil, 2},
		{"rcode of the next plugin", test.NextHandler(dns.RcodeNameError, nil), "example.org.", dns.RcodeNameError, nil, -1},
		{"error of the next plugin", test.NextHandler(dns.RcodeServerFailure, errNext), "example.org.", dns.RcodeServerFailure, errNext, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startedPlugin(t, tc.next, nil)
			m, rc, err := serve(c, tc.qname, dns.TypeA)
			if rc != tc.wantRcode || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %s, %v; want %s, %v", dns.RcodeToString[rc], err, dns.RcodeToString[tc.wantRcode], tc.wantErr)
			}
			if tc.wantIPs < 0 {
				if m != nil {
					t.Errorf("a message was written: %v", m)
				}
				return
			}
			if m == nil || len(m.Answer) != tc.wantIPs || !m.Authoritative {
				t.Errorf("answer changed: %v", m)
			}
		})
	}
}

func TestServeDNSWithoutNext(t *testing.T) {
	c := startedPlugin(t, nil, nil)
	_, rc, err := serve(c, "example.org.", dns.TypeA)
	if rc != dns.RcodeServerFailure || err == nil {
		t.Errorf("got %s, %v; want SERVFAIL and an error", dns.RcodeToString[rc], err)
	}
}

func TestServeDNSRecordsOnlyPublicIPs(t *testing.T) {
	c := startedPlugin(t, answering(), nil)
	serve(c, "www.example.org.", dns.TypeA)
	now := time.Now()
	s := c.eng.State().Window().Sightings(netip.MustParseAddr("10.240.0.1"), now.Add(-time.Minute), now.Add(time.Minute))
	if len(s) != 1 || s[0].IP != netip.MustParseAddr("45.83.0.21") || len(s[0].Names) != 1 || s[0].Names[0] != "www.example.org." {
		t.Errorf("window holds %+v, want only 45.83.0.21 for www.example.org.", s)
	}
}

func TestServeDNSRewritesSuspicious(t *testing.T) {
	c := startedPlugin(t, answering(), func(cfg *config) { cfg.action = ActionRefuse })
	v := c.eng.State().Cache().Put(verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.21"), Outcome: verdicts.Suspicious,
		Reasons: nil, Decision: "cip-unit"}, time.Now())
	m, rc, err := serve(c, "www.example.org.", dns.TypeA)
	if err != nil || rc != dns.RcodeSuccess || m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
		t.Fatalf("got %v, %d, %v; want REFUSED", m, rc, err)
	}
	ede := edeOf(m)
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked || ede.ExtraText == "" {
		t.Errorf("EDE = %+v", ede)
	}
	// The name is remembered: its TXT is refused without asking next.
	c.Next = test.NextHandler(dns.RcodeServerFailure, errors.New("next must not be asked"))
	if m, _, err := serve(c, "www.example.org.", dns.TypeTXT); err != nil || m.Rcode != dns.RcodeRefused {
		t.Errorf("TXT of a remembered name: %v, %v", m, err)
	}
	if v.Decision != "cip-unit" {
		t.Errorf("decision %q", v.Decision)
	}
}

func TestReady(t *testing.T) {
	c := &CIPValidate{}
	if c.Ready() {
		t.Error("Ready() before start = true")
	}
	c = startedPlugin(t, answering(), nil)
	if !c.Ready() {
		t.Error("Ready() after start = false")
	}
	c.shutdown()
	if c.Ready() {
		t.Error("Ready() after shutdown = true")
	}
}

// TestServeDNSAllocations bounds what the plugin adds per query for an
// untagged client whose answer holds public IPs: the budget is two
// allocations (plugin.NextOrFailure's wrapper is one of them).
func TestServeDNSAllocations(t *testing.T) {
	next := test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		w.WriteMsg(cannedAnswer)
		return dns.RcodeSuccess, nil
	})
	c := startedPlugin(t, next, nil)
	ctx := context.Background()
	w := &fixedClientWriter{}
	req := new(dns.Msg)
	req.SetQuestion("www.example.org.", dns.TypeA)

	bare := testing.AllocsPerRun(200, func() { next.ServeDNS(ctx, w, req) })
	ours := testing.AllocsPerRun(200, func() { c.ServeDNS(ctx, w, req) })
	if ours-bare > 2 {
		t.Errorf("cipvalidate adds %.1f allocations per query, budget 2", ours-bare)
	}
}

var cannedAnswer = func() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{test.A("www.example.org. 300 IN A 45.83.0.10"), test.A("www.example.org. 300 IN A 45.83.0.11")}
	return m
}()

// fixedClientWriter is a test.ResponseWriter whose RemoteAddr does not
// allocate, as a real server's does not (test.ResponseWriter parses its
// address on every call).
type fixedClientWriter struct{ test.ResponseWriter }

var fixedClient = &net.UDPAddr{IP: net.ParseIP("10.240.0.1"), Port: 40212}

func (*fixedClientWriter) RemoteAddr() net.Addr { return fixedClient }

func TestUnderZone(t *testing.T) {
	tests := []struct {
		name, zone string
		want       bool
	}{
		{"www.example.org.", "example.org.", true},
		{"WWW.Example.ORG.", "example.org.", true},
		{"example.org.", "example.org.", true},
		{"badexample.org.", "example.org.", false},
		{"org.", "example.org.", false},
		{"anything.", ".", true},
		{"x.partner.example.com.", "partner.example.com.", true},
	}
	for _, tc := range tests {
		if got := enforce.UnderZone(tc.name, tc.zone); got != tc.want {
			t.Errorf("UnderZone(%q, %q) = %v, want %v", tc.name, tc.zone, got, tc.want)
		}
	}
}

// TestStartErrorWrappedOnce: a start error names the plugin and the part
// that failed once each (not "cipvalidate: state: state: …").
func TestStartErrorWrappedOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.zones, cfg.apiKey, cfg.stateDir = []string{"."}, "unit", file
	c := &CIPValidate{Zones: cfg.zones, cfg: &cfg, key: "unit " + t.Name()}
	err := c.start()
	if err == nil {
		c.shutdown()
		t.Fatal("start with a file as the state directory succeeded")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cipvalidate: state: ") || strings.Count(msg, "state:") != 1 || strings.Count(msg, "cipvalidate") != 1 {
		t.Errorf("error %q: want the plugin and the state named once each", msg)
	}
}
