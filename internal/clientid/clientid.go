// Package clientid says who a DNS client is when its queries arrive through
// a forwarder: a query from a trusted forwarder that carries an EDNS0 Client
// Subnet option with a full-length address (/32, /128) is the query of that
// address. Every other query is the query of its source address, so no
// client can choose its own identity.
package clientid

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/coredns-cip/coredns-cip/internal/optval"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// forwarderKept counts the queries of trusted forwarders that named no
// single client (no ECS, a shorter prefix, a malformed option): they stay
// the forwarder's, and a rising count means a forwarder is not configured
// to send /32 (/128) ECS. Counted here rather than per server by the
// plugin: it is about the forwarder's configuration, not a server's traffic.
var forwarderKept = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: plugin.Namespace, Subsystem: "cipvalidate", Name: "client_ecs_missing_total",
	Help: "Queries from trusted forwarders (client_from ecs) without a full-length ECS address; they count as the forwarder's.",
})

// Collector is this package's metric, for the plugin's list of its metrics.
func Collector() prometheus.Collector { return forwarderKept }

// Trusted is the set of forwarders whose ECS option names the client. The
// nil *Trusted trusts nobody.
type Trusted struct {
	prefixes []netip.Prefix
}

// Parse reads the arguments of `client_from ecs CIDR...`.
func Parse(args []string) (*Trusted, error) {
	if len(args) < 2 || args[0] != "ecs" {
		return nil, errors.New("want ecs CIDR... (the forwarders whose ECS option names the client)")
	}
	t := &Trusted{}
	for _, a := range args[1:] {
		p, err := optval.Prefix(a)
		if err != nil {
			return nil, fmt.Errorf("ecs: %w", err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// From returns the client of msg, which came from remote: the full-length
// ECS address if remote is trusted and msg carries exactly one well-formed
// such option, otherwise remote. It does not allocate and does not change
// msg: whether the option travels on is the forwarding plugins' business.
func (t *Trusted) From(msg *dns.Msg, remote netip.Addr) netip.Addr {
	if t == nil || !t.trusts(remote) {
		return remote
	}
	if client, ok := ecsClient(msg); ok {
		return client
	}
	forwarderKept.Inc()
	return remote
}

func (t *Trusted) trusts(remote netip.Addr) bool {
	for _, p := range t.prefixes {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// ecsClient returns the address of msg's ECS option when it names one host.
// RFC 7871 section 7.1.2: a query with more than one ECS option is
// malformed; so is one whose family and address disagree.
func ecsClient(msg *dns.Msg) (netip.Addr, bool) {
	opt := msg.IsEdns0()
	if opt == nil {
		return netip.Addr{}, false
	}
	var found *dns.EDNS0_SUBNET
	for _, o := range opt.Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			if found != nil {
				return netip.Addr{}, false
			}
			found = s
		}
	}
	if found == nil {
		return netip.Addr{}, false
	}
	var addr netip.Addr
	switch found.Family {
	case 1: // IPv4; miekg/dns may hold it in 16 bytes
		if v4 := found.Address.To4(); v4 != nil && found.SourceNetmask == 32 {
			addr = netip.AddrFrom4([4]byte(v4))
		}
	case 2:
		if len(found.Address) == 16 && found.Address.To4() == nil && found.SourceNetmask == 128 {
			addr = netip.AddrFrom16([16]byte(found.Address))
		}
	}
	if !addr.IsValid() || addr.IsUnspecified() {
		return netip.Addr{}, false
	}
	return addr, true
}

// Addr returns the IP of a DNS client's address (the ResponseWriter's
// RemoteAddr) without allocating, unmapped from IPv4-in-IPv6.
func Addr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	case interface{ Unwrap() net.Addr }: // proxyproto's UDP client, without String's allocation
		return Addr(a.Unwrap())
	default:
		if a == nil {
			return netip.Addr{}
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
