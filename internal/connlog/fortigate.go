package connlog

import (
	"bytes"
	"time"
)

// FortiGate lines are FortiOS key=value logs, as kept on disk, exported
// from FortiAnalyzer or sent by syslog (then after a syslog header):
//
//	date=2026-11-27 time=10:00:01 eventtime=1795773601123456789 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=10.0.0.5 srcport=51234 srcintf="port2" dstip=45.83.0.21 dstport=22 dstintf="port1" proto=6 action="accept" service="SSH" ...
//
// String values are quoted and may hold spaces and backslash-escaped
// quotes. Only type=traffic lines are connections; the event and UTM logs
// sent down the same stream are LineErrors. The time is eventtime (FortiOS
// 6.2 and later; seconds, microseconds or nanoseconds since the epoch),
// else date= and time= with the tz= offset if any. The scan stops once it
// has every field it needs, well before the byte counters at the end.
func (p *Parser) parseFortiGate(line []byte) (Record, error) {
	var (
		date, clock, eventTime, tz, src, dst, dport, proto              []byte
		haveType, haveSrc, haveDst, haveDPort, haveProto, haveEventTime bool
	)
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != '=' && line[i] != ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		if line[i] == ' ' { // a word of a syslog header, not a key
			continue
		}
		key := line[start:i]
		i++
		var val []byte
		if i < len(line) && line[i] == '"' {
			i++
			start = i
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			val = line[start:min(i, len(line))]
			i++
		} else {
			start = i
			for i < len(line) && line[i] != ' ' {
				i++
			}
			val = line[start:i]
		}
		if len(key) > 0 && key[0] == '<' { // "<189>date=": a syslog priority
			if end := bytes.IndexByte(key, '>'); end >= 0 {
				key = key[end+1:]
			}
		}
		switch string(key) {
		case "date":
			date = val
		case "time":
			clock = val
		case "eventtime":
			eventTime, haveEventTime = val, true
		case "tz":
			tz = val
		case "type":
			if string(val) != "traffic" {
				return Record{}, p.failf(line, "not a traffic log (type=%.40q)", val)
			}
			haveType = true
		case "srcip":
			src, haveSrc = val, true
		case "dstip":
			dst, haveDst = val, true
		case "dstport":
			dport, haveDPort = val, true
		case "proto":
			proto, haveProto = val, true
		default:
			continue
		}
		if haveType && haveSrc && haveDst && haveProto && haveEventTime && (haveDPort || string(proto) == "1" || string(proto) == "58") {
			break
		}
	}
	switch {
	case !haveType:
		return Record{}, p.fail(line, "no type= field: not a FortiGate log")
	case !haveSrc:
		return Record{}, p.fail(line, "no srcip= field")
	case !haveDst:
		return Record{}, p.fail(line, "no dstip= field")
	}
	var (
		r  Record
		ok bool
	)
	if r.Src, ok = parseAddr(src); !ok {
		return Record{}, p.failf(line, "bad srcip %.64q", src)
	}
	if r.Dst, ok = parseAddr(dst); !ok {
		return Record{}, p.failf(line, "bad dstip %.64q", dst)
	}
	if haveDPort {
		if r.DPort, ok = parsePort(dport); !ok {
			return Record{}, p.failf(line, "bad dstport %.64q", dport)
		}
	}
	r.Proto = protoName(proto)
	switch {
	case haveEventTime:
		n, ok := parseUint(eventTime, 19)
		if !ok || n > 1<<62 {
			return Record{}, p.failf(line, "bad eventtime %.64q", eventTime)
		}
		r.Time = epoch(int64(n))
	case date != nil || clock != nil:
		t, ok := p.fortiTime(date, clock, tz)
		if !ok {
			return Record{}, p.failf(line, "bad date/time %.64q %.64q", date, clock)
		}
		r.Time = t
	}
	return r, nil
}

// fortiTime reads date=2026-11-27 time=10:00:01 at the tz="+0100" offset,
// or in Options.Location if tz is absent or not an offset.
func (p *Parser) fortiTime(date, clock, tz []byte) (time.Time, bool) {
	y, mo, d, ok := parseDate(date)
	if !ok {
		return time.Time{}, false
	}
	h, mi, s, ns, rest, ok := parseClock(clock)
	if !ok || len(rest) > 0 {
		return time.Time{}, false
	}
	if off, ok := parseOffset(tz); ok {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC).Add(-time.Duration(off) * time.Second), true
	}
	return time.Date(y, mo, d, h, mi, s, ns, p.loc), true
}
