package connlog

import "bytes"

// PAN-OS traffic log fields by position, counted from 0. The order is the
// one PAN-OS documents for syslog ("Traffic Log Fields": FUTURE_USE, Receive
// Time, Serial Number, Type, Threat/Content Type, FUTURE_USE, Generated
// Time, Source Address, Destination Address, NAT Source IP, NAT Destination
// IP, Rule Name, Source User, Destination User, Application, Virtual System,
// Source Zone, Destination Zone, Inbound Interface, Outbound Interface, Log
// Action, FUTURE_USE, Session ID, Repeat Count, Source Port, Destination
// Port, NAT Source Port, NAT Destination Port, Flags, Protocol, Action,
// ...), and the web interface's CSV export has the same columns under its
// own names ("Domain,Receive Time,Serial #,Type,...,IP Protocol,Action,...").
const (
	panType      = 3  // TRAFFIC, THREAT, SYSTEM, ...
	panGenerated = 6  // 2026/11/27 10:00:01, the firewall's local time
	panSrc       = 7  // Source Address
	panDst       = 8  // Destination Address (before NAT)
	panDPort     = 25 // Destination Port
	panProto     = 29 // tcp, udp, icmp, ...
	panFields    = panProto + 1
)

// PaloAlto lines are PAN-OS traffic logs in CSV, as a syslog message (the
// syslog header then runs into the first field, which PAN-OS leaves for
// future use) or as a line of a CSV export:
//
//	Nov 27 10:00:01 pa-fw1 1,2026/11/27 10:00:01,012801000001,TRAFFIC,end,2561,2026/11/27 10:00:01,10.0.0.5,45.83.0.21,...,51234,22,...,tcp,allow,...
//
// Fields may be quoted, with commas inside and "" for a quote. Other log
// types (THREAT, SYSTEM, ...) are LineErrors; a header line is skipped.
// Only the first 30 fields are read.
func (p *Parser) parsePaloAlto(line []byte) (Record, error) {
	var f [panFields][]byte
	n := 0
	for i := 0; n < panFields && i <= len(line); n++ {
		if i < len(line) && line[i] == '"' {
			end := i + 1
			for {
				q := bytes.IndexByte(line[end:], '"')
				if q < 0 {
					return Record{}, p.failf(line, "unterminated quoted field %d", n+1)
				}
				end += q + 1
				if end < len(line) && line[end] == '"' { // "" inside quotes
					end++
					continue
				}
				break
			}
			f[n] = line[i+1 : end-1]
			if end < len(line) && line[end] != ',' {
				return Record{}, p.failf(line, "text after quoted field %d", n+1)
			}
			i = end + 1
			continue
		}
		comma := bytes.IndexByte(line[i:], ',')
		if comma < 0 {
			f[n], i = line[i:], len(line)+1
			continue
		}
		f[n], i = line[i:i+comma], i+comma+1
	}
	if bytes.HasPrefix(line, []byte("FUTURE_USE")) || n > 1 && string(bytes.TrimSpace(f[1])) == "Receive Time" {
		return Record{}, p.skip(line, "header")
	}
	if n <= panType {
		return Record{}, p.failf(line, "not a PAN-OS CSV log: too few fields (%d)", n)
	}
	if string(f[panType]) != "TRAFFIC" {
		return Record{}, p.failf(line, "not a traffic log (type=%.40q)", f[panType])
	}
	if n < panFields {
		return Record{}, p.failf(line, "truncated: %d fields, want at least %d", n, panFields)
	}
	var (
		r  Record
		ok bool
	)
	if r.Src, ok = parseAddr(f[panSrc]); !ok {
		return Record{}, p.failf(line, "bad source address %.64q", f[panSrc])
	}
	if r.Dst, ok = parseAddr(f[panDst]); !ok {
		return Record{}, p.failf(line, "bad destination address %.64q", f[panDst])
	}
	if len(f[panDPort]) > 0 {
		if r.DPort, ok = parsePort(f[panDPort]); !ok {
			return Record{}, p.failf(line, "bad destination port %.40q", f[panDPort])
		}
	}
	r.Proto = protoName(f[panProto])
	if len(f[panGenerated]) > 0 {
		if r.Time, ok = parseTimestamp(f[panGenerated], p.loc); !ok {
			return Record{}, p.failf(line, "bad generated time %.40q", f[panGenerated])
		}
	}
	return r, nil
}
