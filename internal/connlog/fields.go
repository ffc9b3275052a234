package connlog

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// This file holds the field decoders every format shares. They read bytes
// in place and allocate nothing on the common path (IPv4, known protocols,
// timestamps), which is what keeps each parser above a million lines a second.

// parseAddr parses an IP address. IPv4 is decoded here; anything with a
// colon goes to netip (IPv6 is rarer, and costs one small allocation).
// IPv4-mapped IPv6 addresses are unmapped so that 10.0.0.5 is one client
// whichever socket family logged it.
func parseAddr(b []byte) (netip.Addr, bool) {
	if bytes.IndexByte(b, ':') >= 0 {
		if len(b) > 64 { // longer than any IPv6 address with a sane zone
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(string(b))
		if err != nil {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	var ip [4]byte
	octet, val, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && val == 0 { // leading zero: netip refuses it too
				return netip.Addr{}, false
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, false
			}
		case c == '.':
			if digits == 0 || octet == 3 {
				return netip.Addr{}, false
			}
			ip[octet] = byte(val)
			octet++
			val, digits = 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if octet != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	ip[3] = byte(val)
	return netip.AddrFrom4(ip), true
}

// parsePort parses a decimal port number.
func parsePort(b []byte) (uint16, bool) {
	n, ok := parseUint(b, 5)
	if !ok || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// parseUint parses at most maxDigits decimal digits.
func parseUint(b []byte, maxDigits int) (uint64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// Protocol names, interned: a Record's Proto is always one of these strings
// for the protocols a firewall logs by name, so no line allocates one.
var protoByNumber = func() (t [256]string) {
	for n := range t {
		t[n] = strconv.Itoa(n)
	}
	for n, name := range map[int]string{
		1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 33: "dccp",
		41: "ipv6", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf",
		103: "pim", 112: "vrrp", 132: "sctp", 136: "udplite",
	} {
		t[n] = name
	}
	return t
}()

// protoName returns the interned lower-case name of a protocol given by name
// (TCP, udp, ICMPv6, ipv6-icmp) or by IANA number (6, 17). An unknown short
// name is returned lower-cased; anything else yields "".
func protoName(b []byte) string {
	if len(b) == 0 || len(b) > 16 {
		return ""
	}
	if n, ok := parseUint(b, 3); ok {
		if n > 255 {
			return ""
		}
		return protoByNumber[n]
	}
	var lower [16]byte
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return ""
		}
		lower[i] = c
	}
	switch name := lower[:len(b)]; string(name) {
	case "tcp":
		return protoByNumber[6]
	case "udp":
		return protoByNumber[17]
	case "icmp":
		return protoByNumber[1]
	case "icmpv6", "icmp6", "ipv6-icmp":
		return protoByNumber[58]
	case "igmp":
		return protoByNumber[2]
	case "ipip":
		return protoByNumber[4]
	case "dccp":
		return protoByNumber[33]
	case "ipv6":
		return protoByNumber[41]
	case "gre":
		return protoByNumber[47]
	case "esp":
		return protoByNumber[50]
	case "ah":
		return protoByNumber[51]
	case "ospf":
		return protoByNumber[89]
	case "pim":
		return protoByNumber[103]
	case "vrrp":
		return protoByNumber[112]
	case "sctp":
		return protoByNumber[132]
	case "udplite":
		return protoByNumber[136]
	default:
		return strings.Clone(string(name))
	}
}

// finish applies the rules shared by every format: ICMP has no ports (a
// logged "port" is its type or code), and times are reported in UTC.
func finish(r *Record) {
	if r.Proto == "icmp" || r.Proto == "icmpv6" {
		r.DPort = 0
	}
	if !r.Time.IsZero() {
		r.Time = r.Time.UTC()
	}
}

// epoch turns a Unix timestamp in s, ms, µs or ns, told apart by magnitude,
// into a time. Up to 1e11 are seconds (until the year 5138), up to 1e14
// milliseconds, up to 1e17 microseconds, beyond nanoseconds.
func epoch(n int64) time.Time {
	switch {
	case n < 1e11:
		return time.Unix(n, 0)
	case n < 1e14:
		return time.UnixMilli(n)
	case n < 1e17:
		return time.UnixMicro(n)
	default:
		return time.Unix(0, n)
	}
}

// parseEpoch parses a decimal Unix timestamp, optionally with a fraction of
// a second ("1795773601.123456"); an integer is scaled by epoch.
func parseEpoch(b []byte) (time.Time, bool) {
	whole, frac, dot := bytes.Cut(b, []byte{'.'})
	n, ok := parseUint(whole, 19)
	if !ok || n > 1<<62 {
		return time.Time{}, false
	}
	if !dot {
		return epoch(int64(n)), true
	}
	if n >= 1e11 { // a fraction only makes sense on seconds
		return time.Time{}, false
	}
	ns, ok := parseFraction(frac)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(n), int64(ns)), true
}

// parseFraction reads the digits after a decimal point as nanoseconds;
// digits past the ninth are dropped.
func parseFraction(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	ns := 0
	for i, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if i < 9 {
			ns = ns*10 + int(c-'0')
		}
	}
	for i := len(b); i < 9; i++ {
		ns *= 10
	}
	return ns, true
}

// digits2 and digits4 read fixed-width decimal fields.
func digits2(b []byte) (int, bool) {
	if len(b) < 2 || b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func digits4(b []byte) (int, bool) {
	hi, ok1 := digits2(b)
	if !ok1 || len(b) < 4 {
		return 0, false
	}
	lo, ok2 := digits2(b[2:])
	return hi*100 + lo, ok2
}

// parseDate reads "2026-11-27" or "2026/11/27".
func parseDate(b []byte) (year int, month time.Month, day int, ok bool) {
	if len(b) != 10 || (b[4] != '-' && b[4] != '/') || b[7] != b[4] {
		return 0, 0, 0, false
	}
	y, ok1 := digits4(b)
	m, ok2 := digits2(b[5:])
	d, ok3 := digits2(b[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return 0, 0, 0, false
	}
	return y, time.Month(m), d, true
}

// daysIn returns the number of days in a month, so that a date such as
// 2026-02-30 is refused rather than normalised into March.
func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// parseClock reads "10:00:01" with an optional fraction (".123456"), and
// returns what follows it.
func parseClock(b []byte) (hour, minute, sec, nsec int, rest []byte, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, 0, nil, false
	}
	h, ok1 := digits2(b)
	m, ok2 := digits2(b[3:])
	s, ok3 := digits2(b[6:])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, 0, nil, false
	}
	rest = b[8:]
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		end := 1
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		ns, ok := parseFraction(rest[1:end])
		if !ok {
			return 0, 0, 0, 0, nil, false
		}
		nsec, rest = ns, rest[end:]
	}
	return h, m, s, nsec, rest, true
}

// parseOffset reads a UTC offset: "Z", "+01:00", "+0100" or "-05".
func parseOffset(b []byte) (seconds int, ok bool) {
	if len(b) == 1 && (b[0] == 'Z' || b[0] == 'z') {
		return 0, true
	}
	if len(b) < 3 || (b[0] != '+' && b[0] != '-') {
		return 0, false
	}
	h, ok := digits2(b[1:])
	if !ok || h > 23 {
		return 0, false
	}
	m := 0
	switch rest := b[3:]; {
	case len(rest) == 0:
	case len(rest) == 2:
		m, ok = digits2(rest)
	case len(rest) == 3 && rest[0] == ':':
		m, ok = digits2(rest[1:])
	default:
		ok = false
	}
	if !ok || m > 59 {
		return 0, false
	}
	seconds = h*3600 + m*60
	if b[0] == '-' {
		seconds = -seconds
	}
	return seconds, true
}

// parseTimestamp reads an RFC 3339 timestamp, leniently: the date and the
// clock may be separated by a space, and without an offset the time is
// taken in loc. "2026-11-27T10:00:01.123456+01:00", "2026-11-27 10:00:01".
func parseTimestamp(b []byte, loc *time.Location) (time.Time, bool) {
	if len(b) < 19 || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') {
		return time.Time{}, false
	}
	y, mo, d, ok := parseDate(b[:10])
	if !ok {
		return time.Time{}, false
	}
	h, mi, s, ns, rest, ok := parseClock(b[11:])
	if !ok {
		return time.Time{}, false
	}
	if len(rest) == 0 {
		return time.Date(y, mo, d, h, mi, s, ns, loc), true
	}
	off, ok := parseOffset(rest)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC).Add(-time.Duration(off) * time.Second), true
}
