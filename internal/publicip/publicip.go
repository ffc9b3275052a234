// Package publicip decides whether an address is globally routable, and so
// worth sending to a threat-intelligence API. It follows the IANA IPv4 and
// IPv6 Special-Purpose Address Registries (RFC 6890 and updates), like
// Python's ipaddress.is_global that the original tool used.
package publicip

import (
	"fmt"
	"net/netip"
)

// special is one special-purpose block and what it is, for error messages.
type special struct {
	prefix netip.Prefix
	what   string
}

// Non-global blocks. Order does not matter; the lists are short enough that a
// linear scan costs less than a map or trie lookup would.
var specials4 = mustPrefixes([][2]string{
	{"0.0.0.0/8", "\"this network\" (RFC 791)"},
	{"10.0.0.0/8", "private (RFC 1918)"},
	{"100.64.0.0/10", "shared address space / CGNAT (RFC 6598)"},
	{"127.0.0.0/8", "loopback (RFC 1122)"},
	{"169.254.0.0/16", "link-local (RFC 3927)"},
	{"172.16.0.0/12", "private (RFC 1918)"},
	{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
	{"192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"},
	{"192.31.196.0/24", "AS112 (RFC 7535)"},
	{"192.52.193.0/24", "AMT (RFC 7450)"},
	{"192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"},
	{"192.168.0.0/16", "private (RFC 1918)"},
	{"192.175.48.0/24", "AS112 direct delegation (RFC 7534)"},
	{"198.18.0.0/15", "benchmarking (RFC 2544)"},
	{"198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"},
	{"203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"},
	{"224.0.0.0/4", "multicast (RFC 5771)"},
	{"240.0.0.0/4", "reserved (RFC 1112)"},
	{"255.255.255.255/32", "limited broadcast (RFC 919)"},
})

var specials6 = mustPrefixes([][2]string{
	{"::/128", "unspecified (RFC 4291)"},
	{"::1/128", "loopback (RFC 4291)"},
	{"::ffff:0:0/96", "IPv4-mapped (RFC 4291)"},
	{"64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"},
	{"100::/64", "discard-only (RFC 6666)"},
	{"2001::/23", "IETF protocol assignments (RFC 2928)"},
	{"2001:db8::/32", "documentation (RFC 3849)"},
	{"2002::/16", "6to4 (RFC 3056)"},
	{"3fff::/20", "documentation (RFC 9637)"},
	{"5f00::/16", "segment routing SIDs (RFC 9602)"},
	{"fc00::/7", "unique local (RFC 4193)"},
	{"fe80::/10", "link-local (RFC 4291)"},
	{"fec0::/10", "deprecated site-local (RFC 3879)"},
	{"ff00::/8", "multicast (RFC 4291)"},
})

// Blocks inside 2001::/23 that the registry marks globally reachable.
var global6 = mustPrefixes([][2]string{
	{"2001:1::1/128", "PCP anycast"},
	{"2001:1::2/128", "TURN anycast"},
	{"2001:3::/32", "AMT"},
	{"2001:4:112::/48", "AS112-v6"},
	{"2001:20::/28", "ORCHIDv2"},
	{"2001:30::/28", "DRIP"},
})

// Is reports whether addr is a globally routable unicast address. An
// IPv4-mapped IPv6 address is judged as the IPv4 address it carries, so
// ::ffff:10.0.0.1 is not public but ::ffff:45.83.0.10 is.
//
// It runs on every DNS answer, so the common cases take a table lookup: an
// IPv4 address whose first octet no special block touches, or an IPv6
// address in 2000::/3 outside the few special blocks there.
func Is(addr netip.Addr) bool {
	if addr.Is4() {
		switch first4[addr.As4()[0]] {
		case octetPublic:
			return true
		case octetSpecial:
			return false
		}
	} else if addr.Is6() && !addr.Is4In6() && addr.Zone() == "" {
		b := addr.As16()
		if b[0]&0xe0 == 0x20 && b[0] != 0x20 && b[0] != 0x3f {
			return true // 2100::/8 .. 3eff::/8: no special block there
		}
	}
	return Why(addr) == ""
}

// What a first IPv4 octet says about an address.
const (
	octetCheck   = iota // some special block starts with this octet: check
	octetPublic         // no special block starts with it
	octetSpecial        // the whole /8 is special
)

// first4 classifies every first octet, from specials4.
var first4 = func() (t [256]uint8) {
	for i := range t {
		t[i] = octetPublic
	}
	for _, s := range specials4 {
		p := s.prefix
		lo := p.Addr().As4()[0]
		if p.Bits() >= 8 {
			if p.Bits() == 8 {
				t[lo] = octetSpecial
			} else if t[lo] != octetSpecial {
				t[lo] = octetCheck
			}
			continue
		}
		for o := int(lo); o < int(lo)+1<<(8-p.Bits()); o++ {
			t[o] = octetSpecial
		}
	}
	return t
}()

// NAT64 is the IPv4/IPv6 translation well-known prefix (RFC 6052): a NAT64
// gateway forwards a packet for 64:ff9b::a.b.c.d to the IPv4 address
// a.b.c.d, so that is the host a DNS64 answer leads to.
//
// The local-use prefix 64:ff9b:1::/48 (RFC 8215) is left out on purpose: a
// network may translate with any prefix from /48 to /96 inside it, and
// where the IPv4 bits sit depends on that length (RFC 6052, section 2.2),
// which an address does not tell.
var NAT64 = netip.MustParsePrefix("64:ff9b::/96")

// Unwrap returns the IPv4 address that addr stands for when it is
// IPv4-mapped (::ffff:a.b.c.d) or in the NAT64 prefix (64:ff9b::a.b.c.d),
// and addr otherwise. Threat intelligence knows hosts by their IPv4
// address, so that is the one to judge, record and validate.
func Unwrap(addr netip.Addr) netip.Addr {
	if addr.Is4() {
		return addr
	}
	if addr.Is4In6() {
		return addr.Unmap()
	}
	if addr.Zone() == "" && NAT64.Contains(addr) {
		b := addr.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return addr
}

// Why returns "" for a public address, otherwise a short phrase saying which
// special-purpose block holds it, e.g. "private (RFC 1918)".
func Why(addr netip.Addr) string {
	if !addr.IsValid() {
		return "not a valid IP address"
	}
	addr = addr.WithZone("")
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.Is4() {
		for _, s := range specials4 {
			if s.prefix.Contains(addr) {
				return s.what
			}
		}
		return ""
	}
	for _, s := range global6 {
		if s.prefix.Contains(addr) {
			return ""
		}
	}
	for _, s := range specials6 {
		if s.prefix.Contains(addr) {
			return s.what
		}
	}
	// Only 2000::/3 is allocated global unicast; anything else is reserved.
	if addr.As16()[0]&0xe0 != 0x20 {
		return "reserved IPv6 (outside 2000::/3)"
	}
	return ""
}

// WhyPrefix returns "" for a prefix whose every address is public,
// otherwise a short phrase naming a special-purpose block it overlaps.
func WhyPrefix(p netip.Prefix) string {
	p = p.Masked()
	if why := Why(p.Addr()); why != "" {
		return why
	}
	list := specials6
	if p.Addr().Is4() {
		list = specials4
	}
	for _, s := range list {
		if s.prefix.Overlaps(p) {
			return "it overlaps " + s.prefix.String() + ", " + s.what
		}
	}
	return ""
}

// Check parses s and returns the address if it is public, or an error that
// says why not ("10.0.0.1 is not a public IP: private (RFC 1918)").
func Check(s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if why := Why(addr); why != "" {
		return addr, fmt.Errorf("%s is not a public IP: %s", addr, why)
	}
	return addr.WithZone("").Unmap(), nil
}

func mustPrefixes(list [][2]string) []special {
	out := make([]special, 0, len(list))
	for _, l := range list {
		out = append(out, special{prefix: netip.MustParsePrefix(l[0]), what: l[1]})
	}
	return out
}
