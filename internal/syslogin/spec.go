package syslogin

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Spec is where to listen and whom to hear.
type Spec struct {
	Network string         // "udp" or "tcp"
	Addr    string         // host:port; port 0 picks a free one
	Allow   []netip.Prefix // senders heard; loopback only when empty
}

// String is the spec as configured, "udp://127.0.0.1:5514".
func (s Spec) String() string { return s.Network + "://" + s.Addr }

// ParseSpec reads what follows `connlog syslog` on a connlog line: the
// URL, the FORMAT (returned as it is), then `allow CIDR...`, and returns
// the arguments after those (`alerts [SEVERITY]`) for connlog.ParseAlerts.
// Without allow only loopback senders are heard, and a listener on any
// other address is refused: a syslog port open to the network lets anyone
// who reaches it tag clients and spend API calls.
func ParseSpec(args []string) (spec Spec, format string, rest []string, err error) {
	if len(args) < 2 {
		return Spec{}, "", nil, fmt.Errorf("connlog syslog: want udp://ADDR|tcp://ADDR FORMAT [allow CIDR...] [alerts [SEVERITY]]")
	}
	scheme, addr, ok := strings.Cut(args[0], "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "udp" && scheme != "tcp") {
		return Spec{}, "", nil, fmt.Errorf("connlog syslog: address %q: want udp://HOST:PORT or tcp://HOST:PORT", args[0])
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return Spec{}, "", nil, fmt.Errorf("connlog syslog: address %q: %w", args[0], err)
	}
	spec = Spec{Network: scheme, Addr: addr}
	rest = args[2:]
	if len(rest) > 0 && strings.EqualFold(rest[0], "allow") {
		i := 1
		for ; i < len(rest) && !strings.EqualFold(rest[i], "alerts"); i++ {
			p, err := parsePrefix(rest[i])
			if err != nil {
				return Spec{}, "", nil, fmt.Errorf("connlog syslog: allow: %w", err)
			}
			spec.Allow = append(spec.Allow, p)
		}
		if i == 1 {
			return Spec{}, "", nil, fmt.Errorf("connlog syslog: allow: no CIDR")
		}
		rest = rest[i:]
	}
	if len(spec.Allow) == 0 && !isLoopback(host) {
		return Spec{}, "", nil, fmt.Errorf("connlog syslog: %s listens beyond loopback: name the senders with allow CIDR", spec)
	}
	return spec, args[1], rest, nil
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// allowed reports whether spec hears a.
func (s Spec) allowed(a netip.Addr) bool {
	a = a.Unmap()
	if len(s.Allow) == 0 {
		return a.IsLoopback()
	}
	for _, p := range s.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
