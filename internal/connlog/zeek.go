package connlog

import (
	"bytes"
	"strconv"
)

// Zeek lines are conn.log records, in either of Zeek's writers' formats,
// told apart line by line:
//
//	JSON (LogAscii::use_json): one object a line, with the keys of the TSV
//	columns: {"ts":1795770001.123456,"uid":"C...","id.orig_h":"10.0.0.5",
//	"id.orig_p":51234,"id.resp_h":"45.83.0.21","id.resp_p":443,"proto":"tcp",...}
//
//	TSV (the default): # header lines, then tab-separated records whose
//	column order the #fields header gives:
//	#separator \x09
//	#unset_field	-
//	#path	conn
//	#fields	ts	uid	id.orig_h	id.orig_p	id.resp_h	id.resp_p	proto	service	...
//	1795770001.123456	CHhAvVGS1DHFjwGM9	10.0.0.5	51234	45.83.0.21	443	tcp	ssl	...
//
// The originator (id.orig_h) is the client, the responder (id.resp_h and
// id.resp_p) the destination. A Parser keeps the last #separator,
// #unset_field, #path and #fields it read, so a file whose header changes
// (a restart with other fields) is read by its new columns; until it has
// read a header (a file followed from its end) it assumes Zeek's default
// conn.log columns and tab. Records of a log whose #path is not conn are
// LineErrors: dns.log, for one, has the same id.* columns, but its
// responders are DNS servers, not the destinations clients reached.
type zeekColumns struct {
	sep                            byte
	unset                          string
	path                           string // "" until a #path header; then conn, dns, ...
	ts, origH, respH, respP, proto int
	need                           int // the number of columns a record must have: the highest index read + 1
}

// zeekDefault is conn.log's column order since Zeek 2 (ts uid id.orig_h
// id.orig_p id.resp_h id.resp_p proto service duration ...).
var zeekDefault = zeekColumns{sep: '\t', unset: "-", ts: 0, origH: 2, respH: 4, respP: 5, proto: 6, need: 7}

// zeekMaxColumns bounds the columns a record is read from, so that a
// record is split on the stack.
const zeekMaxColumns = 64

// setFields finds the columns a record is read from in a #fields header.
// It reports whether the addresses are among the first zeekMaxColumns.
func (c *zeekColumns) setFields(names [][]byte) bool {
	c.ts, c.origH, c.respH, c.respP, c.proto = -1, -1, -1, -1, -1
	for i, n := range names {
		switch string(n) {
		case "ts":
			c.ts = i
		case "id.orig_h":
			c.origH = i
		case "id.resp_h":
			c.respH = i
		case "id.resp_p":
			c.respP = i
		case "proto":
			c.proto = i
		}
	}
	c.need = max(c.ts, c.origH, c.respH, c.respP, c.proto) + 1
	if c.need > zeekMaxColumns {
		c.origH, c.respH = -1, -1
	}
	return c.origH >= 0 && c.respH >= 0
}

func (p *Parser) parseZeek(line []byte) (Record, error) {
	if line[0] == '{' {
		return p.parseJSON(line)
	}
	c := p.zeek.Load()
	if c == nil {
		c = &zeekDefault
	}
	if c.origH < 0 || c.respH < 0 {
		return Record{}, p.failf(line, "the #fields header has no id.orig_h or id.resp_h in its first %d columns", zeekMaxColumns)
	}
	if c.path != "" && c.path != "conn" {
		return Record{}, p.failf(line, "not a conn.log record (#path %.40q)", c.path)
	}
	var cols [zeekMaxColumns][]byte
	n := 0
	for rest := line; n < len(cols) && n < c.need; n++ {
		i := bytes.IndexByte(rest, c.sep)
		if i < 0 {
			cols[n], rest = rest, nil
			n++
			break
		}
		cols[n], rest = rest[:i], rest[i+1:]
	}
	if n < c.need {
		return Record{}, p.failf(line, "truncated: %d columns, want at least %d", n, c.need)
	}
	unset := func(i int) bool { return i < 0 || string(cols[i]) == c.unset }
	var (
		r  Record
		ok bool
	)
	if r.Src, ok = parseAddr(cols[c.origH]); !ok {
		return Record{}, p.failf(line, "bad id.orig_h %.64q", cols[c.origH])
	}
	if r.Dst, ok = parseAddr(cols[c.respH]); !ok {
		return Record{}, p.failf(line, "bad id.resp_h %.64q", cols[c.respH])
	}
	if !unset(c.respP) {
		if r.DPort, ok = parsePort(cols[c.respP]); !ok {
			return Record{}, p.failf(line, "bad id.resp_p %.40q", cols[c.respP])
		}
	}
	if !unset(c.proto) {
		r.Proto = protoName(cols[c.proto])
	}
	if !unset(c.ts) {
		if r.Time, ok = parseEpoch(cols[c.ts]); !ok {
			return Record{}, p.failf(line, "bad ts %.40q", cols[c.ts])
		}
	}
	return r, nil
}

// zeekHeader reads a # line of a Zeek log: the headers that say how to
// read the records change the Parser's columns; every # line is skipped.
func (p *Parser) zeekHeader(line []byte) error {
	old := p.zeek.Load()
	if old == nil {
		old = &zeekDefault
	}
	c := *old
	if v, ok := bytes.CutPrefix(line, []byte("#separator ")); ok {
		// Zeek writes the separator escaped: "\x09".
		if s, err := strconv.Unquote(`"` + string(v) + `"`); err == nil && len(s) == 1 {
			c.sep = s[0]
			p.zeek.Store(&c)
			return p.skip(line, "header")
		}
		return p.failf(line, "bad #separator %.20q", v)
	}
	name, v, _ := bytes.Cut(line, []byte{c.sep})
	switch string(name) {
	case "#unset_field":
		c.unset = string(v)
	case "#path":
		c.path = string(v)
	case "#fields":
		if !c.setFields(bytes.Split(v, []byte{c.sep})) {
			p.zeek.Store(&c) // records under this header are broken, not read by the old one
			return p.failf(line, "#fields without id.orig_h or id.resp_h in the first %d columns", zeekMaxColumns)
		}
	default:
		return p.skip(line, "header")
	}
	p.zeek.Store(&c)
	return p.skip(line, "header")
}
