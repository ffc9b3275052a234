// Package dnsreply builds the DNS replies that stand in for an answer: a
// rewritten one (sinkhole, NXDOMAIN, NODATA, REFUSED) with an Extended DNS
// Error (RFC 8914) saying why. A reply is one allocation: the message and
// everything it points at (question, record, OPT, EDE option) are fields
// of one struct, where building it with dns.Msg's helpers takes four to
// eight. Every rewritten answer is built here, on the DNS path.
package dnsreply

import (
	"net"

	"github.com/miekg/dns"
)

// reply is a message with the storage of its sections.
type reply struct {
	msg      dns.Msg
	question [1]dns.Question
	answer   [1]dns.RR
	a        dns.A
	aaaa     dns.AAAA
}

// ednsReply is a reply with an OPT record carrying an EDE option.
type ednsReply struct {
	reply
	extra   [1]dns.RR
	options [1]dns.EDNS0
	opt     dns.OPT
	ede     dns.EDNS0_EDE
}

// Answer says what the reply's answer section holds: Rrtype 0 for nothing,
// dns.TypeA or dns.TypeAAAA for one record of IP, owned by the query name.
type Answer struct {
	Rrtype uint16
	IP     net.IP // shared: packing a message only reads it
	TTL    uint32
}

// Build returns the reply to req (which has one question) with rcode and
// ans, recursion available, and, if and only if req has EDNS0 (a reply
// must not carry OPT otherwise), an OPT record of req's UDP size and DO
// bit with an EDE option of code and text. It is what
// new(dns.Msg).SetReply(req) with those fields and SetEdns0 builds.
func Build(req *dns.Msg, rcode int, ans Answer, code uint16, text string) *dns.Msg {
	opt := req.IsEdns0()
	var (
		r *reply
		e *ednsReply
	)
	if opt == nil {
		r = new(reply)
	} else {
		e = new(ednsReply)
		r = &e.reply
	}
	m := &r.msg
	m.Id, m.Response, m.Opcode = req.Id, true, req.Opcode
	if m.Opcode == dns.OpcodeQuery {
		m.RecursionDesired, m.CheckingDisabled = req.RecursionDesired, req.CheckingDisabled
	}
	m.Rcode, m.RecursionAvailable = rcode, true
	r.question[0] = req.Question[0]
	m.Question = r.question[:]
	hdr := dns.RR_Header{Name: req.Question[0].Name, Rrtype: ans.Rrtype, Class: dns.ClassINET, Ttl: ans.TTL}
	switch ans.Rrtype {
	case dns.TypeA:
		r.a = dns.A{Hdr: hdr, A: ans.IP}
		r.answer[0] = &r.a
		m.Answer = r.answer[:]
	case dns.TypeAAAA:
		r.aaaa = dns.AAAA{Hdr: hdr, AAAA: ans.IP}
		r.answer[0] = &r.aaaa
		m.Answer = r.answer[:]
	}
	if e == nil {
		return m
	}
	e.opt.Hdr.Name, e.opt.Hdr.Rrtype = ".", dns.TypeOPT
	e.opt.SetUDPSize(opt.UDPSize())
	if opt.Do() {
		e.opt.SetDo()
	}
	e.ede = dns.EDNS0_EDE{InfoCode: code, ExtraText: text}
	e.options[0] = &e.ede
	e.opt.Option = e.options[:]
	e.extra[0] = &e.opt
	m.Extra = e.extra[:]
	return m
}
