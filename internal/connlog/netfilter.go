package connlog

import (
	"bytes"
	"time"
)

// Netfilter lines are what the kernel's LOG target (iptables -j LOG,
// nftables' log statement) prints, as syslog, the journal or dmesg show it:
//
//	Nov 27 10:00:01 fw1 kernel: [12345.678901] DROP IN=eth0 OUT=eth1 MAC=... SRC=10.0.0.5 DST=45.83.0.21 LEN=60 ... PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0
//
// The body is space-separated tokens, KEY=VALUE or bare flags, after a
// free-form prefix chosen by the administrator. IPv6 addresses are printed
// in full (2001:0db8:0000:...), PROTO= is a name (TCP, UDP, UDPLITE, SCTP,
// DCCP, ICMP, ICMPv6) or a number, and ICMP has TYPE= CODE= but no ports.
// An ICMP error quotes the packet it is about in brackets, with SRC= DST=
// DPT= of its own ("[SRC=... DST=... ]"), and a fragment notes
// "INCOMPLETE [n bytes]": the scan stops at a bracket after PROTO=, so
// only the outer header is read.
func (p *Parser) parseNetfilter(line []byte) (Record, error) {
	var (
		src, dst, proto, dport               []byte
		haveSrc, haveDst, haveProto, haveDPT bool
	)
scan:
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		tok := line[start:i]
		if len(tok) == 0 {
			continue
		}
		switch tok[0] {
		case '[':
			if haveProto {
				break scan
			}
		case 'S':
			if !haveSrc && bytes.HasPrefix(tok, []byte("SRC=")) {
				src, haveSrc = tok[4:], true
			}
		case 'D':
			switch {
			case !haveDst && bytes.HasPrefix(tok, []byte("DST=")):
				dst, haveDst = tok[4:], true
			case !haveDPT && bytes.HasPrefix(tok, []byte("DPT=")):
				dport, haveDPT = tok[4:], true
			}
		case 'P':
			if !haveProto && bytes.HasPrefix(tok, []byte("PROTO=")) {
				proto, haveProto = tok[6:], true
			}
		}
	}
	switch {
	case !haveSrc && !haveDst:
		return Record{}, p.fail(line, "no SRC= and DST= fields: not a netfilter LOG line")
	case !haveSrc:
		return Record{}, p.fail(line, "no SRC= field")
	case !haveDst:
		return Record{}, p.fail(line, "no DST= field")
	}
	var (
		r  Record
		ok bool
	)
	if r.Src, ok = parseAddr(src); !ok {
		return Record{}, p.failf(line, "bad SRC= address %.64q", src)
	}
	if r.Dst, ok = parseAddr(dst); !ok {
		return Record{}, p.failf(line, "bad DST= address %.64q", dst)
	}
	if haveDPT {
		if r.DPort, ok = parsePort(dport); !ok {
			return Record{}, p.failf(line, "bad DPT= port %.64q", dport)
		}
	}
	r.Proto = protoName(proto)
	r.Time = p.syslogTime(line)
	return r, nil
}

// syslogTime reads the timestamp a syslog daemon, the journal or dmesg -T
// put before a kernel message:
//
//	Nov 27 10:00:01 host kernel: ...                 (RFC 3164, no year)
//	Nov  7 10:00:01.123456 host kernel: ...          (journalctl -o short-precise)
//	2026-11-27T10:00:01.123456+01:00 host kernel: ... (RFC 3339, rsyslog, journalctl -o short-iso)
//	<4>1 2026-11-27T10:00:01Z host kernel - - - ...   (RFC 5424)
//	[Fri Nov 27 10:00:01 2026] ...                    (dmesg -T)
//
// A line without one (plain dmesg, "[12345.678901]") has a zero time; so
// has one whose header is not a timestamp this knows, since the record
// itself does not depend on it.
func (p *Parser) syslogTime(line []byte) time.Time {
	b := line
	if len(b) > 0 && b[0] == '<' { // syslog priority
		end := bytes.IndexByte(b[:min(len(b), 6)], '>')
		if end < 0 {
			return time.Time{}
		}
		b = b[end+1:]
		if len(b) > 2 && b[0] == '1' && b[1] == ' ' { // RFC 5424 version
			b = b[2:]
		}
	}
	switch {
	case len(b) >= 19 && b[4] == '-':
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			end = len(b)
		}
		if t, ok := parseTimestamp(b[:end], p.loc); ok {
			return t
		}
	case len(b) >= 15 && b[3] == ' ':
		if t, _, ok := p.bsdTime(b, 0); ok {
			return t
		}
	case len(b) >= 26 && b[0] == '[' && b[4] == ' ':
		// dmesg -T: "[Fri Nov 27 10:00:01 2026]", in local time.
		b = b[5:]
		end := bytes.IndexByte(b, ']')
		if end < 5 || b[end-5] != ' ' {
			return time.Time{}
		}
		year, ok := digits4(b[end-4 : end])
		if !ok {
			return time.Time{}
		}
		if t, rest, ok := p.bsdTime(b[:end-5], year); ok && len(rest) == 0 {
			return t
		}
	}
	return time.Time{}
}

// bsdTime reads "Nov 27 10:00:01" (the day may be space-padded, the
// seconds may have a fraction) and returns what follows. With year 0 the
// year comes from Options.
func (p *Parser) bsdTime(b []byte, year int) (time.Time, []byte, bool) {
	if len(b) < 14 {
		return time.Time{}, nil, false
	}
	month := monthByName(b[:3])
	if month == 0 || b[3] != ' ' {
		return time.Time{}, nil, false
	}
	b = b[4:]
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	day, n := 0, 0
	for n < len(b) && n < 2 && b[n] >= '0' && b[n] <= '9' {
		day = day*10 + int(b[n]-'0')
		n++
	}
	if n == 0 || n >= len(b) || b[n] != ' ' {
		return time.Time{}, nil, false
	}
	h, m, s, ns, rest, ok := parseClock(b[n+1:])
	if !ok || (len(rest) > 0 && rest[0] != ' ') {
		return time.Time{}, nil, false
	}
	if year == 0 {
		year = p.syslogYear(month)
	}
	if day < 1 || day > daysIn(month, year) {
		return time.Time{}, nil, false
	}
	return time.Date(year, month, day, h, m, s, ns, p.loc), rest, true
}

// syslogYear is the year of a syslog timestamp in month: Options.Year, or
// the current year unless that puts the line in the future.
func (p *Parser) syslogYear(month time.Month) int {
	if p.year != 0 {
		return p.year
	}
	now := p.now().In(p.loc)
	if month > now.Month() {
		return now.Year() - 1
	}
	return now.Year()
}

func monthByName(b []byte) time.Month {
	switch string(b) {
	case "Jan":
		return time.January
	case "Feb":
		return time.February
	case "Mar":
		return time.March
	case "Apr":
		return time.April
	case "May":
		return time.May
	case "Jun":
		return time.June
	case "Jul":
		return time.July
	case "Aug":
		return time.August
	case "Sep":
		return time.September
	case "Oct":
		return time.October
	case "Nov":
		return time.November
	case "Dec":
		return time.December
	}
	return 0
}
