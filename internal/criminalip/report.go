package criminalip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Report is the decoded answer of GET /v1/asset/ip/report. The answer is
// top-level (no "data" wrapper). Decoding is tolerant of the schema variants
// seen in the wild: a field of an unexpected JSON kind decodes to its zero
// value instead of failing the whole report, because one odd field must not
// cost a verdict that the other fields can give. Only the fields the risk
// evaluator and operators use are typed; Raw keeps the whole body.
type Report struct {
	IP            string
	Issues        Issues
	Score         Score
	Ports         []Port
	Categories    []Category
	VPN           []VPNRecord
	AnonymousVPN  []VPNRecord
	Vulns         []Vuln
	Whois         []Whois
	ProtectedIPs  int
	Status        int    // the body's own "status"; 0 when absent
	Message       string // the body's own "message", if any
	Raw           []byte // the body as received
	HasStatusCode bool   // true when the body carried a "status" field
}

// Issues are the report's boolean flags.
type Issues struct {
	VPN          bool
	AnonymousVPN bool
	Tor          bool
	Proxy        bool
	Hosting      bool
	Cloud        bool
	Mobile       bool
	Darkweb      bool
	Scanner      bool
	Snort        bool
}

// Score holds the reputation levels. The usual shape is an object with
// inbound and outbound words (Safe, Low, Moderate, Dangerous, Critical); some
// answers carry one plain word instead, kept in Overall. Legacy integers 1-5
// are mapped to the words.
type Score struct {
	Inbound  string
	Outbound string
	Overall  string
}

// Levels returns the non-empty score words in a stable order.
func (s Score) Levels() []string {
	var out []string
	for _, v := range []string{s.Inbound, s.Outbound, s.Overall} {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Port is one record of the report's port section. Several records may
// describe the same port at different times.
type Port struct {
	Port       int
	Socket     string
	Protocol   string
	AppName    string
	AppVersion string
	Tags       []string
	// SSLInfo is ssl_info_raw as text; an object variant is kept as its JSON.
	SSLInfo         string
	IsVulnerability bool
	ConfirmedTime   string
}

// Category is one ip_category record, e.g. type "proxy" or "tor".
type Category struct {
	Type         string
	DetectSource string
}

// VPNRecord is one vpn or anonymous_vpn record.
type VPNRecord struct {
	Name string
	URL  string
}

// Vuln is one vulnerability record.
type Vuln struct {
	CVE     string
	CVSSv3  float64
	AppName string
}

// Whois is one whois record.
type Whois struct {
	ASName      string
	ASNumber    int
	OrgName     string
	CountryCode string
}

// Decode parses a report body. It fails only when the body is not a JSON
// object; see Report for how odd fields are treated.
//
// Decode reads the body in place, without reflection: one pass checks it
// against the JSON grammar (the rules and nesting limit of encoding/json) and
// notes where the members Report uses are; a second pass reads just those
// members. A body that is not a valid JSON object is handed to encoding/json
// so that the error reads exactly as json.Unmarshal words it.
func Decode(body []byte) (*Report, error) {
	var t topLevel
	start := skipSpace(body, 0)
	if start == len(body) || body[start] != '{' || !t.scan(body, start) {
		if err := bodyError(body); err != nil {
			return nil, err
		}
		// encoding/json accepted an object that scan refused (which the
		// tests say cannot happen). It is valid JSON, so walk it instead.
		t.walk(body, start)
	}
	r := &Report{Raw: body}
	r.IP = str(t.ip)
	if t.status != nil && string(t.status) != "null" {
		r.Status = num(t.status)
		r.HasStatusCode = true
	}
	r.Message = str(t.message)
	r.Issues = decodeIssues(t.issues)
	r.Score = decodeScore(t.score)
	r.Ports = decodeSection(t.port, decodePort)
	r.Categories = decodeSection(t.category, decodeCategory)
	r.VPN = decodeSection(t.vpn, decodeVPN)
	r.AnonymousVPN = decodeSection(t.anonVPN, decodeVPN)
	r.Vulns = decodeSection(t.vuln, decodeVuln)
	r.Whois = decodeSection(t.whois, decodeWhois)
	r.ProtectedIPs = len(decodeSection(t.protected, skipRecord))
	return r, nil
}

var errNullBody = errors.New("report body is JSON null, not an object")

// bodyError returns the error json.Unmarshal gives for a body that is not a
// JSON object, or nil if it is one after all.
func bodyError(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return err
	}
	if top == nil {
		return errNullBody
	}
	return nil
}

// topLevel holds the values, as they stand in the body, of the top-level
// members Decode uses; nil for an absent one. Where a name is repeated the
// last member counts, as with json.Unmarshal into a map.
type topLevel struct {
	ip, status, message, issues, score                   []byte
	port, category, vpn, anonVPN, vuln, whois, protected []byte
}

func (t *topLevel) set(name, v []byte) {
	switch string(name) {
	case "ip":
		t.ip = v
	case "status":
		t.status = v
	case "message":
		t.message = v
	case "issues":
		t.issues = v
	case "score":
		t.score = v
	case "port":
		t.port = v
	case "ip_category":
		t.category = v
	case "vpn":
		t.vpn = v
	case "anonymous_vpn":
		t.anonVPN = v
	case "vulnerability":
		t.vuln = v
	case "whois":
		t.whois = v
	case "protected_ip":
		t.protected = v
	}
}

// scan checks that b is one JSON object, starting at b[i], with nothing but
// space after it, and notes the members Decode uses.
func (t *topLevel) scan(b []byte, i int) bool {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		k := i
		if i = validString(b, i); i < 0 {
			return false
		}
		key := b[k+1 : i-1]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return false
		}
		v := skipSpace(b, i+1)
		if i = validValue(b, v, 1); i < 0 {
			return false
		}
		t.set(unescapeName(key), b[v:i])
		if i = skipSpace(b, i); i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// walk notes the members Decode uses of the valid JSON object at b[i].
func (t *topLevel) walk(b []byte, i int) {
	*t = topLevel{}
	for m := (members{b: b, i: i}); m.next(); {
		t.set(m.name(), m.value())
	}
}

// From here on values come from a body already checked, so the walk only
// looks for boundaries. A converter takes one member's value as it stands
// in the body (a whole JSON token, no space around it), or nil when the
// member is absent; a record decoder takes the body and the index of the
// record's '{' and returns the index just past its '}'.

// decodeSection returns the object records of a {count, data[]} block, or of
// a bare list; anything else (null, a string, a data that is not a list)
// yields none. Elements that are not objects are passed over.
func decodeSection[T any](v []byte, record func([]byte, int) (T, int)) []T {
	if len(v) == 0 {
		return nil
	}
	switch v[0] {
	case '[':
		out, _ := decodeList(v, 0, record)
		return out
	case '{':
		var out []T
		for m := (members{b: v}); m.next(); {
			if string(m.name()) != "data" {
				continue
			}
			out = nil
			if v[m.i] == '[' {
				var end int
				out, end = decodeList(v, m.i, record)
				m.skipTo(end)
			}
		}
		return out
	}
	return nil
}

// decodeList decodes the object records of the list starting at b[i] and
// returns them with the index just past the list.
func decodeList[T any](b []byte, i int, record func([]byte, int) (T, int)) ([]T, int) {
	var buf [8]T // most lists are short: gather on the stack, then copy once
	out := buf[:0]
	e := elements{b: b, i: i}
	for e.next() {
		if b[e.i] == '{' {
			r, end := record(b, e.i)
			out = append(out, r)
			e.skipTo(end)
		}
	}
	if len(out) == 0 {
		return nil, e.i
	}
	return slices.Clone(out), e.i
}

func skipRecord(b []byte, i int) (struct{}, int) {
	return struct{}{}, skipValue(b, i)
}

func decodeIssues(v []byte) Issues {
	var is Issues
	if len(v) == 0 || v[0] != '{' {
		return is
	}
	for m := (members{b: v}); m.next(); {
		switch string(m.name()) {
		case "is_vpn":
			is.VPN = boolean(m.value())
		case "is_anonymous_vpn":
			is.AnonymousVPN = boolean(m.value())
		case "is_tor":
			is.Tor = boolean(m.value())
		case "is_proxy":
			is.Proxy = boolean(m.value())
		case "is_hosting":
			is.Hosting = boolean(m.value())
		case "is_cloud":
			is.Cloud = boolean(m.value())
		case "is_mobile":
			is.Mobile = boolean(m.value())
		case "is_darkweb":
			is.Darkweb = boolean(m.value())
		case "is_scanner":
			is.Scanner = boolean(m.value())
		case "is_snort":
			is.Snort = boolean(m.value())
		}
	}
	return is
}

func decodeScore(v []byte) Score {
	if len(v) == 0 || v[0] != '{' {
		return Score{Overall: level(v)}
	}
	var s Score
	var overall, total []byte
	for m := (members{b: v}); m.next(); {
		switch string(m.name()) {
		case "inbound":
			s.Inbound = level(m.value())
		case "outbound":
			s.Outbound = level(m.value())
		case "overall":
			overall = m.value()
		case "total":
			total = m.value()
		}
	}
	if overall == nil {
		overall = total
	}
	s.Overall = level(overall)
	return s
}

// legacyLevels maps the integer scores of the older /v1/ip/data endpoint.
var legacyLevels = [...]string{1: "Safe", 2: "Low", 3: "Moderate", 4: "Dangerous", 5: "Critical"}

func level(v []byte) string {
	if isNumber(v) {
		if n := num(v); n >= 1 && n < len(legacyLevels) {
			return legacyLevels[n]
		}
		return ""
	}
	return strings.TrimSpace(str(v))
}

func decodePort(b []byte, i int) (Port, int) {
	var p Port
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "open_port_no":
			p.Port = num(m.value())
		case "socket":
			p.Socket = str(m.value())
		case "protocol":
			p.Protocol = str(m.value())
		case "app_name":
			p.AppName = str(m.value())
		case "app_version":
			p.AppVersion = str(m.value())
		case "tags":
			p.Tags = tags(m.value())
		case "ssl_info_raw":
			p.SSLInfo = text(m.value())
		case "is_vulnerability":
			p.IsVulnerability = boolean(m.value())
		case "confirmed_time":
			p.ConfirmedTime = str(m.value())
		}
	}
	return p, m.i
}

func decodeCategory(b []byte, i int) (Category, int) {
	var c Category
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "type":
			c.Type = str(m.value())
		case "detect_source":
			c.DetectSource = str(m.value())
		}
	}
	return c, m.i
}

func decodeVPN(b []byte, i int) (VPNRecord, int) {
	var r VPNRecord
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "vpn_name":
			r.Name = str(m.value())
		case "vpn_url":
			r.URL = str(m.value())
		}
	}
	return r, m.i
}

func decodeVuln(b []byte, i int) (Vuln, int) {
	var v Vuln
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "cve_id":
			v.CVE = str(m.value())
		case "cvssv3_score":
			v.CVSSv3 = float(m.value())
		case "app_name":
			v.AppName = str(m.value())
		}
	}
	return v, m.i
}

func decodeWhois(b []byte, i int) (Whois, int) {
	var w Whois
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "as_name":
			w.ASName = str(m.value())
		case "as_no":
			w.ASNumber = num(m.value())
		case "org_name":
			w.OrgName = str(m.value())
		case "org_country_code":
			w.CountryCode = str(m.value())
		}
	}
	return w, m.i
}

// tags accepts a string, a list of strings, or a list of objects naming the
// tag under one of a few keys.
func tags(v []byte) []string {
	if s := strings.TrimSpace(str(v)); s != "" {
		return []string{s}
	}
	if len(v) == 0 || v[0] != '[' {
		return nil
	}
	var out []string
	for e := (elements{b: v}); e.next(); {
		var s string
		if v[e.i] == '{' {
			name, end := tagName(v, e.i)
			e.skipTo(end)
			s = str(name)
		} else {
			s = str(e.value())
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// tagName returns the value of the first of tag, name, label and title that
// the object at b[i] has, whatever that value is.
func tagName(b []byte, i int) ([]byte, int) {
	var tag, name, label, title []byte
	m := members{b: b, i: i}
	for m.next() {
		switch string(m.name()) {
		case "tag":
			tag = m.value()
		case "name":
			name = m.value()
		case "label":
			label = m.value()
		case "title":
			title = m.value()
		}
	}
	switch {
	case tag != nil:
		return tag, m.i
	case name != nil:
		return name, m.i
	case label != nil:
		return label, m.i
	}
	return title, m.i
}

func isNumber(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// str returns a JSON string's value, a number's text, or "".
func str(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	switch {
	case v[0] == '"':
		return unquote(v[1 : len(v)-1])
	case isNumber(v):
		return string(v)
	}
	return ""
}

// text is str, except that an object or list is kept as its compact JSON so
// that keyword searches still see its content.
func text(v []byte) string {
	if len(v) > 0 && (v[0] == '{' || v[0] == '[') {
		return compact(v)
	}
	return str(v)
}

// compact is json.Compact for a valid value: it drops the space outside
// strings.
func compact(v []byte) string {
	var sb strings.Builder
	start := 0
	for i := 0; i < len(v); {
		switch v[i] {
		case '"':
			i = skipString(v, i)
		case ' ', '\t', '\n', '\r':
			if sb.Cap() == 0 {
				sb.Grow(len(v))
			}
			sb.Write(v[start:i])
			for i < len(v) && isSpace(v[i]) {
				i++
			}
			start = i
		default:
			i++
		}
	}
	if sb.Cap() == 0 {
		return string(v)
	}
	sb.Write(v[start:])
	return sb.String()
}

func num(v []byte) int {
	f := float(v)
	if f > 1<<31 || f < -(1<<31) {
		return 0
	}
	return int(f)
}

func float(v []byte) float64 {
	var f float64
	var err error
	if isNumber(v) {
		f, err = strconv.ParseFloat(string(v), 64)
	} else {
		f, err = strconv.ParseFloat(strings.TrimSpace(str(v)), 64)
	}
	if err != nil {
		return 0
	}
	return f
}

// boolean accepts true/false, "true"/"True"/"1", and non-zero numbers.
func boolean(v []byte) bool {
	switch string(v) {
	case "true":
		return true
	case "false", "null", "":
		return false
	}
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(str(v))))
	if err == nil {
		return b
	}
	return float(v) != 0
}

// unquote returns the value of a JSON string from its text between the
// quotes, as encoding/json decodes it (this follows its unquoteBytes):
// escapes resolved, and invalid UTF-8 and unpaired surrogates replaced by
// U+FFFD. s must come from valid JSON.
func unquote(s []byte) string {
	r := 0
	for r < len(s) {
		c := s[r]
		if c == '\\' || c == '"' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			r++
			continue
		}
		rr, size := utf8.DecodeRune(s[r:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		r += size
	}
	if r == len(s) {
		return string(s)
	}
	var sb strings.Builder
	sb.Grow(len(s) + 2*utf8.UTFMax)
	sb.Write(s[:r])
	for r < len(s) {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				rr := getu4(s[r-1:])
				r += 4
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r+1:])); dec != unicode.ReplacementChar {
						r += 6
						sb.WriteRune(dec)
						break
					}
					rr = unicode.ReplacementChar
				}
				sb.WriteRune(rr)
			default: // '"', '\\', '/'
				sb.WriteByte(s[r])
			}
			r++
		case c < utf8.RuneSelf:
			start := r
			for r < len(s) && s[r] < utf8.RuneSelf && s[r] != '\\' {
				r++
			}
			sb.Write(s[start:r])
		default:
			rr, size := utf8.DecodeRune(s[r:])
			if rr == utf8.RuneError && size == 1 {
				sb.WriteRune(rr)
			} else {
				sb.Write(s[r : r+size])
			}
			r += size
		}
	}
	return sb.String()
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value,
// or it returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// The grammar check. It accepts exactly what encoding/json accepts.

// maxDepth is encoding/json's nesting limit: deeper bodies are invalid.
const maxDepth = 10000

func isSpace(c byte) bool {
	return c <= ' ' && (c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// validValue checks the value starting at b[i] and returns the index just
// past it, or -1. depth is the number of enclosing objects and arrays.
func validValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		return validString(b, i)
	case '{':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = validString(b, i); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = validValue(b, skipSpace(b, i+1), depth); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case '}':
				return i + 1
			default:
				return -1
			}
		}
	case '[':
		if depth++; depth > maxDepth {
			return -1
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = validValue(b, i, depth); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	case 't':
		return validLiteral(b, i, "true")
	case 'f':
		return validLiteral(b, i, "false")
	case 'n':
		return validLiteral(b, i, "null")
	}
	return validNumber(b, i)
}

func validLiteral(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		if i++; i >= len(b) {
			return -1
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}

// plain marks the bytes a JSON string holds as they are: not a quote, not a
// backslash, not a control character. Any other byte, invalid UTF-8 included,
// is allowed, as encoding/json allows it.
var plain = func() (t [256]bool) {
	for c := ' '; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validString checks the string starting at b[i] (a quote) and returns the
// index just past its closing quote, or -1.
func validString(b []byte, i int) int {
	for i++; ; i++ {
		if i = plainRun(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i++; i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

// plainRun returns the index of the first byte from b[i] on that is not
// plain, or len(b). It tests eight bytes at a time while it can.
func plainRun(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (ones * '"')
		s := x ^ (ones * '\\')
		// A high bit is set for each byte below 0x20, quote or backslash,
		// and may be set wrongly only above such a byte; so the lowest one
		// set marks the first byte that is not plain.
		if t := ((x-ones*0x20)&^x | (q-ones)&^q | (s-ones)&^s) & highs; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i += 2 { // past a backslash and the byte it escapes
		if i = plainRun(b, i); i >= len(b) {
			return len(b)
		}
		if b[i] == '"' {
			return i + 1
		}
	}
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// members walks the members of the object starting at b[i]. After next
// reports a member, i is the index of its value, which the caller may read
// with value, or decode itself and pass the index after it to skipTo, or
// leave for next to skip. When next reports no more members, i is the index
// just past the object.
type members struct {
	b    []byte
	i    int
	key  []byte // the current member's name as written, escapes included
	past bool   // the current value is still to be skipped
}

func (m *members) next() bool {
	b, i := m.b, m.i
	if m.past {
		i = skipValue(b, i)
	}
	m.past = false
	i = skipSpace(b, i)
	if b[i] == '}' { // after the last member
		m.i = i + 1
		return false
	}
	if i = skipSpace(b, i+1); b[i] == '}' { // past '{' or ','
		m.i = i + 1
		return false
	}
	end := skipString(b, i)
	m.key = b[i+1 : end-1]
	m.i = skipSpace(b, skipSpace(b, end)+1) // past ':'
	m.past = true
	return true
}

// value returns the current member's value.
func (m *members) value() []byte {
	start := m.i
	m.i = skipValue(m.b, start)
	m.past = false
	return m.b[start:m.i]
}

func (m *members) skipTo(end int) {
	m.i = end
	m.past = false
}

// name returns the current member's name, unescaped.
func (m *members) name() []byte {
	return unescapeName(m.key)
}

// unescapeName returns a member name, as written between its quotes,
// unescaped.
func unescapeName(key []byte) []byte {
	for _, c := range key {
		if c == '\\' {
			return []byte(unquote(key))
		}
	}
	return key
}

// elements walks the elements of the list starting at b[i], in the manner of
// members.
type elements struct {
	b    []byte
	i    int
	past bool
}

func (e *elements) next() bool {
	b, i := e.b, e.i
	if e.past {
		i = skipValue(b, i)
	}
	e.past = false
	i = skipSpace(b, i)
	if b[i] == ']' {
		e.i = i + 1
		return false
	}
	if i = skipSpace(b, i+1); b[i] == ']' {
		e.i = i + 1
		return false
	}
	e.i = i
	e.past = true
	return true
}

func (e *elements) value() []byte {
	start := e.i
	e.i = skipValue(e.b, start)
	e.past = false
	return e.b[start:e.i]
}

func (e *elements) skipTo(end int) {
	e.i = end
	e.past = false
}
