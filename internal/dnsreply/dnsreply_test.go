package dnsreply_test

import (
	"bytes"
	"net"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/dnsreply"

	"github.com/miekg/dns"
)

// reference builds the reply with dns.Msg's helpers, as the plugin did
// before Build.
func reference(req *dns.Msg, rcode int, ans dnsreply.Answer, code uint16, text string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Rcode = rcode
	m.RecursionAvailable = true
	hdr := dns.RR_Header{Name: req.Question[0].Name, Class: dns.ClassINET, Ttl: ans.TTL, Rrtype: ans.Rrtype}
	switch ans.Rrtype {
	case dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: ans.IP}}
	case dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: ans.IP}}
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
	}
	return m
}

// TestBuildIsTheReference checks that a client gets, byte for byte, the
// reply the helpers build: every rcode and answer of a rewrite, with and
// without EDNS0 (with the DO bit or not), for queries with RD and CD set
// or not, and another opcode.
func TestBuildIsTheReference(t *testing.T) {
	sink4, sink6 := net.ParseIP("0.0.0.0").To4(), net.ParseIP("::")
	answers := []dnsreply.Answer{{}, {Rrtype: dns.TypeA, IP: sink4, TTL: 60}, {Rrtype: dns.TypeAAAA, IP: sink6, TTL: 30}}
	n := 0
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
		for _, edns := range []int{0, 1, 2} { // none, EDNS0, EDNS0 with DO
			for _, bits := range []int{0, 1, 2, 3} {
				req := new(dns.Msg)
				req.SetQuestion("Www.Example.org.", qtype)
				req.Id = uint16(4242 + bits)
				req.RecursionDesired, req.CheckingDisabled = bits&1 != 0, bits&2 != 0
				if bits == 3 {
					req.Opcode = dns.OpcodeNotify
				}
				if edns > 0 {
					req.SetEdns0(1232+uint16(edns), edns == 2)
				}
				for _, rcode := range []int{dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeRefused} {
					for _, ans := range answers {
						text := "cipvalidate: 45.83.0.11 suspicious (SCORE: inbound Critical); scope everyone; decision cip-0123456789ab"
						got := dnsreply.Build(req, rcode, ans, dns.ExtendedErrorCodeBlocked, text)
						want := reference(req, rcode, ans, dns.ExtendedErrorCodeBlocked, text)
						gb, err := got.Pack()
						if err != nil {
							t.Fatal(err)
						}
						wb, err := want.Pack()
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(gb, wb) || got.String() != want.String() {
							t.Fatalf("qtype %d, edns %d, bits %d, rcode %d, answer %+v:\ngot  %s\nwant %s", qtype, edns, bits, rcode, ans, got, want)
						}
						n++
					}
				}
			}
		}
	}
	if n != 3*3*4*3*3 {
		t.Fatalf("%d cases compared", n)
	}
}

// TestBuildAllocatesOnce checks the point of Build: one allocation per
// reply (the helpers take four without EDNS0, eight with).
func TestBuildAllocatesOnce(t *testing.T) {
	req := new(dns.Msg)
	req.SetQuestion("www.example.org.", dns.TypeA)
	req.SetEdns0(1232, true)
	ans := dnsreply.Answer{Rrtype: dns.TypeA, IP: net.IPv4zero.To4(), TTL: 60}
	if n := testing.AllocsPerRun(100, func() {
		dnsreply.Build(req, dns.RcodeSuccess, ans, dns.ExtendedErrorCodeBlocked, "text")
	}); n != 1 {
		t.Fatalf("%v allocations per reply, want 1", n)
	}
}
