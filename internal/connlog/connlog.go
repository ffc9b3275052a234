// Package connlog parses the connection logs network teams export from
// firewalls and flow collectors into connection records: who (source)
// reached what (destination address and port), when. The formats:
//
//	json       JSON lines, with src/dst/dport style fields or the ECS names
//	           (source.ip, destination.ip, destination.port, @timestamp)
//	netfilter  Linux kernel LOG target lines (SRC= DST= PROTO= DPT=)
//	fortigate  FortiGate key=value traffic logs (srcip= dstip= dstport=)
//	paloalto   Palo Alto Networks traffic logs, CSV (syslog or export)
//	suricata   Suricata EVE JSON, flow and alert records
//	zeek       Zeek conn.log, TSV (by its #fields header) or JSON
//
// A Parser reads one line at a time. A line that is not a connection
// record (another log type, a header, a broken line) is an error of type
// *LineError; callers count and skip it. Lines that carry nothing by design
// (blank lines, # comments, CSV and Zeek headers, the EVE records that are
// not flow or alert) are *LineErrors too, but they also match ErrSkip, so
// callers can skip them without counting them as broken:
//
//	for sc.Scan() {
//		rec, err := p.Parse(sc.Bytes())
//		switch {
//		case errors.Is(err, connlog.ErrSkip):
//		case err != nil:
//			broken++ // a *connlog.LineError: Reason, and Line for a sample
//		default:
//			use(rec)
//		}
//	}
//
// Record.Proto is one of a fixed set of lower-case names (tcp, udp, icmp,
// icmpv6, sctp, udplite, dccp, gre, esp, ah, igmp, ipip, ipv6, ospf, pim,
// vrrp), the decimal number of a protocol without one of those names
// ("253"), or a lower-cased name the log gave that is not in the set. ICMP
// records have no port, even where a log puts the ICMP type or code in a
// port field.
package connlog

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Record is one connection.
type Record struct {
	Time  time.Time  // when the connection was seen; zero if the line has none
	Src   netip.Addr // the client
	Dst   netip.Addr // the destination
	DPort uint16     // destination port, 0 if unknown (ICMP, or not logged)
	Proto string     // "tcp", "udp", "icmp", ... lower case; "" if unknown
	Alert Alert      // the IDS alert the record reports; zero for a plain connection
}

// Alert is what an IDS said about a connection (Suricata EVE alert
// records), for callers that tag the client of an alert. Signature is the
// sensor's text as logged (at most 256 bytes): sanitise it before a log
// line.
type Alert struct {
	Signature   string // the rule's message, "ET MALWARE ..."
	SignatureID uint64 // the rule's sid
	Severity    int    // 1 (high) to 4 (low) in Suricata's default classification; 0 if not an alert
}

// IsAlert reports whether the record is an IDS alert.
func (a Alert) IsAlert() bool { return a != Alert{} }

// Format names a log format.
type Format string

// The formats.
const (
	JSON      Format = "json"
	Netfilter Format = "netfilter"
	FortiGate Format = "fortigate"
	PaloAlto  Format = "paloalto"
	Suricata  Format = "suricata"
	Zeek      Format = "zeek"
)

// Formats lists every format, for flags and messages.
var Formats = []Format{JSON, Netfilter, FortiGate, PaloAlto, Suricata, Zeek}

// ErrSkip matches the *LineError of a line with nothing to parse by design:
// a blank line, a # comment, a CSV header.
var ErrSkip = errors.New("connlog: not a record")

// ErrUnknownFormat matches the error of ParseFormat and NewParser for a
// format name they do not know.
var ErrUnknownFormat = errors.New("connlog: unknown format")

// LineError says why a line is not a connection record.
type LineError struct {
	Format Format
	Reason string // what is wrong, e.g. `no DST= field`, `not a traffic log (type="event")`
	Line   string // the line's first 200 bytes, for a log sample

	skip bool // blank, comment or header: matches ErrSkip
}

func (e *LineError) Error() string {
	return "connlog: " + string(e.Format) + " line: " + e.Reason
}

// Unwrap returns ErrSkip for a line with nothing to parse by design, nil
// for a broken one.
func (e *LineError) Unwrap() error {
	if e.skip {
		return ErrSkip
	}
	return nil
}

// maxSample bounds LineError.Line.
const maxSample = 200

// ParseFormat returns the format a name stands for, case-insensitively.
// Besides the Formats it knows a few common aliases: iptables, nftables and
// ufw for netfilter; fortios for fortigate; panos and pan-os for paloalto;
// jsonl, ndjson and ecs for json; eve and suricata-eve for suricata; bro and
// zeek-conn for zeek.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "json", "jsonl", "ndjson", "ecs":
		return JSON, nil
	case "netfilter", "iptables", "nftables", "ufw":
		return Netfilter, nil
	case "fortigate", "fortios":
		return FortiGate, nil
	case "paloalto", "panos", "pan-os":
		return PaloAlto, nil
	case "suricata", "eve", "suricata-eve":
		return Suricata, nil
	case "zeek", "bro", "zeek-conn":
		return Zeek, nil
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrUnknownFormat, s, formatList())
}

func formatList() string {
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// Options tune how a Parser reads timestamps. The zero value is ready to use.
type Options struct {
	// Year is the year of syslog timestamps, which have none ("Nov 27
	// 10:00:01"). Zero means: the current year, or the previous one when the
	// line's month is after the current month (a December line read in
	// January).
	Year int
	// Location is the time zone of timestamps that carry none: syslog
	// headers and dmesg -T, FortiGate date= time= without tz=, PAN-OS
	// times, JSON times without an offset. Nil means time.Local.
	Location *time.Location
	// Now returns the current time, for Year's default. Nil means time.Now.
	Now func() time.Time
}

// Parser turns log lines of one format into Records. It is safe for
// concurrent use. It holds no state between lines, but for one: a zeek
// Parser reads records by the last Zeek header it parsed, so give each
// Zeek file a Parser of its own.
type Parser struct {
	format Format
	year   int
	loc    *time.Location
	now    func() time.Time
	zeek   atomic.Pointer[zeekColumns] // nil until a Zeek header: zeekDefault
}

// NewParser returns a Parser for format f.
func NewParser(f Format, opts Options) (*Parser, error) {
	switch f {
	case JSON, Netfilter, FortiGate, PaloAlto, Suricata, Zeek:
	default:
		return nil, fmt.Errorf("%w %q (want one of %s)", ErrUnknownFormat, string(f), formatList())
	}
	p := &Parser{format: f, year: opts.Year, loc: opts.Location, now: opts.Now}
	if p.loc == nil {
		p.loc = time.Local
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Parse parses one line, without its newline; a trailing carriage return,
// surrounding white space and a leading UTF-8 byte order mark are ignored.
// The Record does not refer to line's memory, so the caller may reuse it.
// Times are returned in UTC. A line that is not a record yields a
// *LineError, which also matches ErrSkip if the line is blank, a comment
// (starting with #), a header or a record of a kind the format logs beside
// connections (EVE dns, http, stats, ...).
func (p *Parser) Parse(line []byte) (Record, error) {
	line = trimLine(line)
	if len(line) == 0 {
		return Record{}, p.skip(line, "empty")
	}
	if line[0] == '#' {
		if p.format == Zeek {
			return Record{}, p.zeekHeader(line)
		}
		return Record{}, p.skip(line, "comment")
	}
	var (
		r   Record
		err error
	)
	switch p.format {
	case JSON:
		r, err = p.parseJSON(line)
	case Netfilter:
		r, err = p.parseNetfilter(line)
	case FortiGate:
		r, err = p.parseFortiGate(line)
	case PaloAlto:
		r, err = p.parsePaloAlto(line)
	case Suricata:
		r, err = p.parseSuricata(line)
	case Zeek:
		r, err = p.parseZeek(line)
	}
	if err != nil {
		return Record{}, err
	}
	finish(&r)
	return r, nil
}

// fail returns the *LineError for a broken line.
func (p *Parser) fail(line []byte, reason string) error {
	return &LineError{Format: p.format, Reason: reason, Line: sample(line)}
}

// failf is fail with a formatted reason.
func (p *Parser) failf(line []byte, format string, args ...any) error {
	return p.fail(line, fmt.Sprintf(format, args...))
}

// skip returns the *LineError for a line with nothing to parse by design.
func (p *Parser) skip(line []byte, reason string) error {
	return &LineError{Format: p.format, Reason: reason, Line: sample(line), skip: true}
}

// sample copies the start of line for LineError.Line.
func sample(line []byte) string {
	if len(line) <= maxSample {
		return string(line)
	}
	return string(line[:runeCut(line, maxSample)])
}

// truncate copies at most n bytes of b, marking a cut with "...".
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:runeCut(b, n)]) + "..."
}

// runeCut returns where to cut b, at most n bytes in and not inside a
// UTF-8 sequence.
func runeCut(b []byte, n int) int {
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

// trimLine strips a byte order mark and surrounding white space (including
// the \r of a CRLF file).
func trimLine(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		b = b[3:]
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
