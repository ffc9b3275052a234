package cipvalidate

import (
	"net"
	"net/netip"

	"github.com/coredns-cip/coredns-cip/internal/publicip"

	"github.com/miekg/dns"
)

// inlineIPs and inlineRuns size the writer's buffers: more distinct public
// IPs, or more names owning them, than almost any answer carries. Beyond
// them an answer costs allocations, never a dropped address.
const (
	inlineIPs  = 16
	inlineRuns = 4
)

// found is the public IPs of one answer, each once, in runs that belong to
// one name each: the queried name's own first, then the owners of glue.
type found struct {
	ips   []netip.Addr
	runs  []nameRun
	index map[netip.Addr]struct{} // ips as a set, once ips outgrows inlineIPs
}

// nameRun ends a run of found.ips that are one name's addresses.
type nameRun struct {
	name string
	end  int // the run is ips[previous run's end:end]
}

// name returns the name whose address ips[i] is.
func (f *found) name(i int) string {
	for _, r := range f.runs {
		if i < r.end {
			return r.name
		}
	}
	return ""
}

// publicIPs collects into f the addresses in res that are worth validating
// (public, not excluded, not allowlisted): those of A and AAAA records and
// of HTTPS/SVCB ipv4hint and ipv6hint. The answer section's, a CNAME
// chain's targets included, are qname's own; the additional section's (the
// glue of SRV, MX and HTTPS/SVCB targets) are their owner's, and skipped
// if the configuration allowlists that owner. An address a NAT64 gateway
// translates counts as the IPv4 address it carries (publicip.Unwrap).
func (c *CIPValidate) publicIPs(res *dns.Msg, qname string, f *found) {
	c.appendRun(f, qname, res.Answer)
	extra := res.Extra
	for i := 0; i < len(extra); {
		name := extra[i].Header().Name
		j := i + 1
		for j < len(extra) && extra[j].Header().Name == name {
			j++
		}
		// The allowlist is asked only about owners of addresses: most
		// additional sections hold just the OPT record.
		if carriesAddrs(extra[i:j]) && (name == qname || !c.eng.AllowedName(name)) {
			c.appendRun(f, name, extra[i:j])
		}
		i = j
	}
}

// appendRun appends the public addresses of rrs to f as name's.
func (c *CIPValidate) appendRun(f *found, name string, rrs []dns.RR) {
	start := len(f.ips)
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			c.appendIP(f, rr.A)
		case *dns.AAAA:
			c.appendIP(f, rr.AAAA)
		case *dns.HTTPS:
			c.appendHints(f, &rr.SVCB)
		case *dns.SVCB:
			c.appendHints(f, rr)
		}
	}
	if len(f.ips) == start {
		return
	}
	if n := len(f.runs); n > 0 && f.runs[n-1].name == name {
		f.runs[n-1].end = len(f.ips)
		return
	}
	f.runs = append(f.runs, nameRun{name: name, end: len(f.ips)})
}

// appendHints appends the public addresses of rr's ipv4hint and ipv6hint:
// a client may connect to them without asking for A or AAAA.
func (c *CIPValidate) appendHints(f *found, rr *dns.SVCB) {
	for _, kv := range rr.Value {
		var hint []net.IP
		switch kv := kv.(type) {
		case *dns.SVCBIPv4Hint:
			hint = kv.Hint
		case *dns.SVCBIPv6Hint:
			hint = kv.Hint
		}
		for _, ip := range hint {
			c.appendIP(f, ip)
		}
	}
}

// appendIP appends raw to f if it is worth validating and not there yet.
func (c *CIPValidate) appendIP(f *found, raw net.IP) {
	ip, ok := netip.AddrFromSlice(raw)
	if !ok {
		return
	}
	if ip = ip.Unmap(); ip.Is6() { // A records skip the call
		ip = publicip.Unwrap(ip)
	}
	if !c.eng.Validatable(ip) || f.has(ip) {
		return
	}
	f.ips = append(f.ips, ip)
	if f.index != nil {
		f.index[ip] = struct{}{}
	}
}

// has reports whether ip was found already: by a scan while the IPs fit the
// buffer, through a set beyond, so a huge answer costs n, not n², lookups.
func (f *found) has(ip netip.Addr) bool {
	if len(f.ips) < inlineIPs {
		return seen(f.ips, ip)
	}
	if f.index == nil {
		f.index = make(map[netip.Addr]struct{}, 2*len(f.ips))
		for _, x := range f.ips {
			f.index[x] = struct{}{}
		}
	}
	_, ok := f.index[ip]
	return ok
}

func seen(ips []netip.Addr, ip netip.Addr) bool {
	for _, x := range ips {
		if x == ip {
			return true
		}
	}
	return false
}

// carriesAddrs reports whether one of rrs can carry an address.
func carriesAddrs(rrs []dns.RR) bool {
	for _, rr := range rrs {
		switch rr.(type) {
		case *dns.A, *dns.AAAA, *dns.HTTPS, *dns.SVCB:
			return true
		}
	}
	return false
}
