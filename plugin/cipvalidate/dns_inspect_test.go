package cipvalidate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// inspectZone adds to the e2e zone the answers whose addresses hide from an
// inspection of the answer section's first A and AAAA records: a name with
// 17 addresses (16 clean, the Critical 45.83.0.21 last; the fake API
// answers clean for the 45.83.1.x addresses it has no fixture for), an
// HTTPS record whose ipv4hint is Critical, MX and SRV answers whose targets'
// glue is Critical (the MX owner's own address is clean), and a DNS64
// answer that a NAT64 gateway translates to 45.83.0.21.
var inspectZone = e2eZone + manyZone() + `
https    300 IN HTTPS 1 . alpn=h2 ipv4hint=45.83.0.21
mx       300 IN MX  10 mail.example.org.
mx       300 IN A   45.83.0.10
mail     300 IN A   45.83.0.21
_sip._tcp 300 IN SRV 10 5 5060 sip.example.org.
sip      300 IN A   45.83.0.21
nat64    300 IN AAAA 64:ff9b::2d53:15
`

// manyIPs are many.example.org's addresses, in zone order.
var manyIPs = func() []string {
	ips := []string{"45.83.0.10"}
	for i := 1; i <= 15; i++ {
		ips = append(ips, fmt.Sprintf("45.83.1.%d", i))
	}
	return append(ips, "45.83.0.21")
}()

func manyZone() string {
	var b strings.Builder
	for _, ip := range manyIPs {
		fmt.Fprintf(&b, "many     300 IN A   %s\n", ip)
	}
	return b.String()
}

// wantBlocked fails unless r is the sinkholed answer want (nil: no data)
// with an EDE Blocked naming ip.
func wantBlocked(t *testing.T, what string, r *dns.Msg, want []string, ip string) {
	t.Helper()
	if r.Rcode != dns.RcodeSuccess || !slices.Equal(answerIPs(r), want) {
		t.Errorf("%s: rcode %s answer %v, want NOERROR %v", what, dns.RcodeToString[r.Rcode], answerIPs(r), want)
	}
	if ede := edeOf(r); ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked || !strings.Contains(ede.ExtraText, ip) {
		t.Errorf("%s: EDE = %+v, want Blocked naming %s", what, ede, ip)
	}
}

// The 17th address of an answer is recorded and backtracked, and once it is
// known to be Critical the answer is sinkholed for every client.
func TestE2EInspectsEveryAddress(t *testing.T) {
	e := startE2EZone(t, inspectZone, "")
	r := e.query("127.0.0.2", "many.example.org", dns.TypeA)
	if got := answerIPs(r); len(got) != len(manyIPs) || got[len(got)-1] != "45.83.0.21" {
		t.Fatalf("many.example.org answers %v, want %d addresses, 45.83.0.21 last", got, len(manyIPs))
	}
	// Another client's bad.example.org (45.83.0.21 too) gets the verdict
	// whatever happens to many.example.org's 17th address.
	e.query("127.0.0.3", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.3", e.clock.Now(), "5m")
	ans := e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	var found []string
	for _, f := range ans.Found {
		found = append(found, f.IP)
	}
	if !slices.Contains(found, "45.83.0.21") || ans.Backtracked != len(manyIPs) {
		t.Errorf("event backtracked %d: %v; want all %d addresses, 45.83.0.21 among them", ans.Backtracked, found, len(manyIPs))
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict %+v, want suspicious", v)
	}
	// An untagged client under `enforce all` (the default).
	wantBlocked(t, "many.example.org from an untagged client", e.query("127.0.0.9", "many.example.org", dns.TypeA), []string{"0.0.0.0"}, "45.83.0.21")
}

// An HTTPS answer whose ipv4hint is Critical is validated by its hint and
// rewritten per action (sinkhole: no data, with the EDE); its name is
// remembered like an A record's.
func TestE2EInspectsHTTPSHints(t *testing.T) {
	e := startE2EZone(t, inspectZone, "")
	e.postEvent("127.0.0.2", e.clock.Now(), "5m") // tags the client
	if r := e.query("127.0.0.2", "https.example.org", dns.TypeHTTPS); len(r.Answer) != 1 {
		t.Fatalf("first HTTPS answer %v, want the record (pending allow)", r)
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict %+v: the hint was not validated", v)
	}
	wantBlocked(t, "HTTPS of a tagged client", e.query("127.0.0.2", "https.example.org", dns.TypeHTTPS), nil, "45.83.0.21")
	wantBlocked(t, "HTTPS of an untagged client", e.query("127.0.0.9", "https.example.org", dns.TypeHTTPS), nil, "45.83.0.21")
	wantBlocked(t, "A of the remembered name", e.query("127.0.0.9", "https.example.org", dns.TypeA), []string{"0.0.0.0"}, "45.83.0.21")
}

// MX and SRV answers whose targets' glue (additional section) is Critical
// are rewritten; the queried name is not remembered for glue, so its own
// clean address still resolves.
func TestE2EInspectsGlue(t *testing.T) {
	e := startE2EZone(t, inspectZone, "")
	queries := []struct {
		name  string
		qtype uint16
	}{{"mx.example.org", dns.TypeMX}, {"_sip._tcp.example.org", dns.TypeSRV}}
	// Untagged, nothing is validated yet: the glue comes through.
	for _, q := range queries {
		if r := e.query("127.0.0.9", q.name, q.qtype); !slices.Equal(answerIPs(&dns.Msg{Answer: r.Extra}), []string{"45.83.0.21"}) {
			t.Fatalf("%s: additional section %v, want the target's glue 45.83.0.21", q.name, r.Extra)
		}
	}
	// Tagged, the glue is validated (the fake API is fast: the second
	// answer may already be rewritten).
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	for _, q := range queries {
		e.query("127.0.0.2", q.name, q.qtype)
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict %+v: the glue was not validated", v)
	}
	for _, q := range queries {
		what := q.name + " " + dns.TypeToString[q.qtype]
		r := e.query("127.0.0.9", q.name, q.qtype) // untagged, enforce all
		wantBlocked(t, what, r, nil, "45.83.0.21")
		if len(r.Answer)+len(r.Extra) > 1 { // the OPT record
			t.Errorf("%s: rewritten answer still carries %v %v", what, r.Answer, r.Extra)
		}
	}
	if r := e.query("127.0.0.2", "mx.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.10"}) || edeOf(r) != nil {
		t.Errorf("mx.example.org A (clean, its MX's glue is not its own): %v", r)
	}
}

// A DNS64 answer is validated as the IPv4 address it translates to, and
// once that is suspicious the AAAA answer is sinkholed as configured.
func TestE2EInspectsNAT64(t *testing.T) {
	e := startE2EZone(t, inspectZone, "action sinkhole 192.0.2.66 2001:db8::66")
	if r := e.query("127.0.0.2", "nat64.example.org", dns.TypeAAAA); !slices.Equal(answerIPs(r), []string{"64:ff9b::2d53:15"}) {
		t.Fatalf("nat64.example.org AAAA: %v", r)
	}
	ans := e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	if len(ans.Found) != 1 || ans.Found[0].IP != "45.83.0.21" {
		t.Fatalf("event found %+v, want 45.83.0.21 (the NAT64 address's IPv4)", ans.Found)
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict %+v", v)
	}
	if n := e.fake.CallsFor("45.83.0.21"); n != 1 || e.fake.Calls() != 1 {
		t.Errorf("the API saw 45.83.0.21 %d times of %d calls, want the one call", n, e.fake.Calls())
	}
	wantBlocked(t, "NAT64 AAAA of a tagged client", e.query("127.0.0.2", "nat64.example.org", dns.TypeAAAA), []string{"2001:db8::66"}, "45.83.0.21")
}

// publicIPs collects every public address once, past the writer's buffer,
// in both sections, from hints, and as IPv4 for NAT64 and mapped addresses.
func TestPublicIPs(t *testing.T) {
	c := startedPlugin(t, answering(), nil)
	var answer []dns.RR
	var want []netip.Addr
	for i := range 40 {
		ip := fmt.Sprintf("45.83.2.%d", i)
		answer = append(answer, test.A("a.example.org. 300 IN A "+ip), test.A("a.example.org. 300 IN A "+ip)) // each twice
		want = append(want, netip.MustParseAddr(ip))
	}
	svcb := &dns.SVCB{Hdr: dns.RR_Header{Name: "a.example.org.", Rrtype: dns.TypeSVCB, Class: dns.ClassINET}, Priority: 1, Target: ".",
		Value: []dns.SVCBKeyValue{
			&dns.SVCBIPv4Hint{Hint: []net.IP{net.ParseIP("45.83.3.1"), net.ParseIP("10.0.0.1")}},
			&dns.SVCBIPv6Hint{Hint: []net.IP{net.ParseIP("2a0c:9a40:1::21"), net.ParseIP("64:ff9b::2d53:16")}},
		}}
	answer = append(answer, svcb, test.AAAA("a.example.org. 300 IN AAAA ::ffff:45.83.3.2"),
		test.AAAA("a.example.org. 300 IN AAAA 64:ff9b:1::2d53:17")) // local-use NAT64: not public
	want = append(want, netip.MustParseAddr("45.83.3.1"), netip.MustParseAddr("2a0c:9a40:1::21"),
		netip.MustParseAddr("45.83.0.22"), netip.MustParseAddr("45.83.3.2"), netip.MustParseAddr("45.83.3.3"))
	res := &dns.Msg{Answer: answer, Extra: []dns.RR{test.A("glue.example.org. 300 IN A 45.83.3.3"), test.A("glue.example.org. 300 IN A 45.83.2.0")}}

	var f found
	c.publicIPs(res, "a.example.org.", &f)
	got := slices.Clone(f.ips)
	slices.SortFunc(want, netip.Addr.Compare)
	slices.SortFunc(got, netip.Addr.Compare)
	if !slices.Equal(got, want) {
		t.Errorf("publicIPs = %v\nwant %v", got, want)
	}
	// The glue is its owner's; 45.83.2.0 is the queried name's own too.
	for ip, name := range map[string]string{"45.83.3.3": "glue.example.org.", "45.83.2.0": "a.example.org.", "45.83.0.22": "a.example.org."} {
		if i := slices.Index(f.ips, netip.MustParseAddr(ip)); i < 0 || f.name(i) != name {
			t.Errorf("%s is %q's, want %q's", ip, f.name(i), name)
		}
	}
}

// Up to the writer's buffer, and for an answer without a public address,
// inspection allocates nothing.
func TestPublicIPsAllocations(t *testing.T) {
	c := startedPlugin(t, answering(), nil)
	full := new(dns.Msg)
	for i := range inlineIPs {
		full.Answer = append(full.Answer, test.A(fmt.Sprintf("a.example.org. 300 IN A 45.83.2.%d", i)))
	}
	full.Extra = []dns.RR{&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}}
	private := &dns.Msg{Answer: []dns.RR{test.A("a.example.org. 300 IN A 10.0.0.1"), test.CNAME("b.example.org. 300 IN CNAME a.example.org.")},
		Extra: full.Extra}
	var (
		ipBuf  [inlineIPs]netip.Addr
		runBuf [inlineRuns]nameRun
		f      found
	)
	for name, m := range map[string]*dns.Msg{"16 public": full, "none public": private} {
		if n := testing.AllocsPerRun(100, func() {
			f = found{ips: ipBuf[:0], runs: runBuf[:0]}
			c.publicIPs(m, "a.example.org.", &f)
		}); n != 0 {
			t.Errorf("%s: %.1f allocations, want 0", name, n)
		}
	}
}

// A suspicious address is remembered under the name it belongs to: glue
// under its owner (the MX host), not the queried name (the MX owner, whose
// answer is rewritten each time from the verdict); a hint under the
// queried name.
func TestEnforceRemembersTheAddressOwner(t *testing.T) {
	var extra bool
	next := test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		name := r.Question[0].Name
		if extra {
			m.Answer = []dns.RR{test.MX(name + " 300 IN MX 10 mail.example.org.")}
			m.Extra = []dns.RR{test.A("mail.example.org. 300 IN A 45.83.0.21")}
		} else {
			m.Answer = []dns.RR{&dns.HTTPS{SVCB: dns.SVCB{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET},
				Priority: 1, Target: ".", Value: []dns.SVCBKeyValue{&dns.SVCBIPv6Hint{Hint: []net.IP{net.ParseIP("64:ff9b::2d53:15")}}}}}}
		}
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
	c := startedPlugin(t, next, nil)
	c.eng.State().Cache().Put(verdicts.Verdict{IP: netip.MustParseAddr("45.83.0.21"), Outcome: verdicts.Suspicious, Decision: "cip-unit"}, time.Now())

	extra = true
	if m, _, _ := serve(c, "mx.example.org.", dns.TypeMX); len(m.Answer) != 0 || edeOf(m) == nil {
		t.Errorf("MX with suspicious glue: %v, want no data with the EDE", m)
	}
	if _, ok := c.names.Get("mx.example.org.", time.Now()); ok {
		t.Error("mx.example.org. remembered for its target's glue")
	}
	if _, ok := c.names.Get("mail.example.org.", time.Now()); !ok {
		t.Error("mail.example.org. not remembered for its own (glue) address")
	}
	extra = false
	if m, _, _ := serve(c, "h.example.org.", dns.TypeHTTPS); len(m.Answer) != 0 || edeOf(m) == nil {
		t.Errorf("HTTPS with a suspicious NAT64 ipv6hint: %v, want no data with the EDE", m)
	}
	if _, ok := c.names.Get("h.example.org.", time.Now()); !ok {
		t.Error("h.example.org. not remembered for its own hint")
	}
}
