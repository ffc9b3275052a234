package clientid

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
)

var (
	forwarder = netip.MustParseAddr("192.0.2.53")
	stranger  = netip.MustParseAddr("198.51.100.9")
)

func trusted(t testing.TB) *Trusted {
	t.Helper()
	tr, err := Parse([]string{"ecs", "192.0.2.48/28", "2001:db8::53"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// query is a query with one OPT record holding opts.
func query(opts ...dns.EDNS0) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = opts
	return m
}

func subnet(family uint16, mask uint8, addr string) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: mask, Address: net.ParseIP(addr)}
}

func TestFrom(t *testing.T) {
	tr := trusted(t)
	v6fwd := netip.MustParseAddr("2001:db8::53")
	tests := []struct {
		name   string
		tr     *Trusted
		msg    *dns.Msg
		remote netip.Addr
		want   string
	}{
		{"trusted IPv4 /32", tr, query(subnet(1, 32, "10.1.2.3")), forwarder, "10.1.2.3"},
		{"trusted IPv6 /128", tr, query(subnet(2, 128, "2001:db8:1::7")), v6fwd, "2001:db8:1::7"},
		{"IPv4 client through an IPv6 forwarder", tr, query(subnet(1, 32, "10.1.2.3")), v6fwd, "10.1.2.3"},
		{"untrusted source: ECS ignored", tr, query(subnet(1, 32, "10.1.2.3")), stranger, stranger.String()},
		{"no client_from: ECS ignored", nil, query(subnet(1, 32, "10.1.2.3")), forwarder, forwarder.String()},
		{"trusted, no EDNS0", tr, func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("a.", dns.TypeA); return m }(), forwarder, forwarder.String()},
		{"trusted, EDNS0 without ECS", tr, query(&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}), forwarder, forwarder.String()},
		{"shorter prefix /24", tr, query(subnet(1, 24, "10.1.2.0")), forwarder, forwarder.String()},
		{"shorter prefix with host bits", tr, query(subnet(1, 24, "10.1.2.3")), forwarder, forwarder.String()},
		{"IPv6 /56", tr, query(subnet(2, 56, "2001:db8:1::")), forwarder, forwarder.String()},
		{"zero prefix", tr, query(subnet(1, 0, "0.0.0.0")), forwarder, forwarder.String()},
		{"prefix longer than the address", tr, query(subnet(1, 33, "10.1.2.3")), forwarder, forwarder.String()},
		{"IPv4 family with an IPv6 address", tr, query(subnet(1, 32, "2001:db8::1")), forwarder, forwarder.String()},
		{"IPv6 family with an IPv4 address", tr, query(subnet(2, 128, "10.1.2.3")), forwarder, forwarder.String()},
		{"IPv6 /32 is not a host", tr, query(subnet(2, 32, "2001:db8::1")), forwarder, forwarder.String()},
		{"unknown family", tr, query(subnet(3, 32, "10.1.2.3")), forwarder, forwarder.String()},
		{"no address", tr, query(&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32}), forwarder, forwarder.String()},
		{"unspecified address", tr, query(subnet(1, 32, "0.0.0.0")), forwarder, forwarder.String()},
		{"two ECS options", tr, query(subnet(1, 32, "10.1.2.3"), subnet(1, 32, "10.1.2.4")), forwarder, forwarder.String()},
		{"ECS after another option", tr, query(&dns.EDNS0_NSID{Code: dns.EDNS0NSID}, subnet(1, 32, "10.1.2.3")), forwarder, "10.1.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.msg.String()
			if got := tc.tr.From(tc.msg, tc.remote); got.String() != tc.want {
				t.Errorf("From = %s, want %s", got, tc.want)
			}
			if tc.msg.String() != before {
				t.Errorf("From changed the query:\n%s\nwas\n%s", tc.msg, before)
			}
		})
	}
}

// What a forwarder sends on the wire names its client once unpacked.
func TestFromWire(t *testing.T) {
	tr := trusted(t)
	buf, err := query(subnet(1, 32, "10.1.2.3")).Pack()
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatal(err)
	}
	if got := tr.From(m, forwarder); got.String() != "10.1.2.3" {
		t.Errorf("From(unpacked) = %s, want 10.1.2.3", got)
	}
}

func kept(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := forwarderKept.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestForwarderKeptCounted(t *testing.T) {
	tr := trusted(t)
	before := kept(t)
	tr.From(query(subnet(1, 24, "10.1.2.0")), forwarder) // counted: trusted, no single client
	tr.From(query(), forwarder)                          // counted
	tr.From(query(subnet(1, 32, "10.1.2.3")), forwarder) // a client: not counted
	tr.From(query(), stranger)                           // untrusted: not counted
	if got := kept(t) - before; got != 2 {
		t.Errorf("client_ecs_missing_total rose by %v, want 2", got)
	}
}

func TestParse(t *testing.T) {
	for _, bad := range [][]string{nil, {"ecs"}, {"proxy", "10.0.0.1"}, {"ecs", "not-an-ip"}, {"ecs", "10.0.0.0/33"}} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "ecs") {
			t.Errorf("Parse(%q): %v, want it to name ecs", bad, err)
		}
	}
	tr, err := Parse([]string{"ecs", "10.0.0.1", "10.1.0.0/16", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"10.0.0.1": true, "10.0.0.2": false, "10.1.9.9": true, "fd00::1": true, "fe80::1": false} {
		if got := tr.trusts(netip.MustParseAddr(addr)); got != want {
			t.Errorf("trusts(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestFromDoesNotAllocate(t *testing.T) {
	tr := trusted(t)
	msgs := map[string]struct {
		m *dns.Msg
		r netip.Addr
	}{
		"untrusted":      {query(subnet(1, 32, "10.1.2.3")), stranger},
		"trusted no ECS": {query(), forwarder},
		"trusted ECS":    {query(subnet(1, 32, "10.1.2.3")), forwarder},
	}
	for name, q := range msgs {
		if n := testing.AllocsPerRun(100, func() { tr.From(q.m, q.r) }); n != 0 {
			t.Errorf("%s: %v allocations per query, want 0", name, n)
		}
	}
}

// BenchmarkFrom is the cost per query: it runs on every query of a server
// with client_from.
func BenchmarkFrom(b *testing.B) {
	tr := trusted(b)
	var none *Trusted
	for _, bc := range []struct {
		name string
		tr   *Trusted
		m    *dns.Msg
		r    netip.Addr
	}{
		{"no_client_from", none, query(subnet(1, 32, "10.1.2.3")), forwarder},
		{"untrusted", tr, query(subnet(1, 32, "10.1.2.3")), stranger},
		{"trusted_no_ECS", tr, query(), forwarder},
		{"trusted_ECS", tr, query(subnet(1, 32, "10.1.2.3")), forwarder},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.tr.From(bc.m, bc.r)
			}
		})
	}
}
