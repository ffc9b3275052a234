package criminalip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Report is the decoded answer of GET /v1/asset/ip/report. The answer is
// top-level (no "data" wrapper). Decoding is tolerant of the schema variants
// seen in the wild: a field of an unexpected JSON kind decodes to its zero
// value instead of failing the whole report, because one odd field must not
// cost a verdict that the other fields can give. Only the fields the risk
// evaluator and operators use are typed; Raw keeps the whole body.
type Report struct {
	IP           string
	Issues       Issues
	Score        Score
	Ports        []Port
	Categories   []Category
	VPN          []VPNRecord
	AnonymousVPN []VPNRecord
	Vulns        []Vuln
	Whois        []Whois
	ProtectedIPs int
	// Domains is how many domains the report says point at the IP: the
	// domain block's count (the API's total) or its records, whichever is
	// larger. Many domains mark shared infrastructure (a CDN or hosting
	// front), which is enforced by name, never IP-wide.
	Domains       int
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
// encoding/json does the work: the members Report uses decode into the small
// types below, each of which accepts every shape its member is known to take,
// and all other members are skipped unread. As in any decoding of
// encoding/json into a struct, a member name without an exact match matches
// regardless of case ("IP" fills IP), and of a repeated name the last member
// counts.
func Decode(body []byte) (*Report, error) {
	var w reportJSON
	if err := json.Unmarshal(body, &w); err != nil {
		// Every member type accepts any JSON kind, so a kind error can only
		// be the body's own.
		if _, wrongKind := errors.AsType[*json.UnmarshalTypeError](err); wrongKind {
			return nil, notObject(body)
		}
		return nil, err
	}
	// encoding/json leaves a struct untouched for null, which is no report.
	if bytes.TrimLeft(body, " \t\r\n")[0] == 'n' {
		return nil, notObject(body)
	}
	return w.report(body), nil
}

// notObject describes a valid JSON body that is not an object.
func notObject(body []byte) error {
	kind := "a number"
	switch bytes.TrimLeft(body, " \t\r\n")[0] {
	case 'n':
		kind = "null"
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	}
	return fmt.Errorf("report body is %s, not a JSON object", kind)
}

// reportJSON is the wire form of the members Report uses. Each member type
// resets itself before it decodes, so that of a repeated member the last
// counts, whatever its kind (encoding/json would leave a plain field as it
// was for null).
type reportJSON struct {
	IP           text                  `json:"ip"`
	Status       status                `json:"status"`
	Message      text                  `json:"message"`
	Issues       issuesJSON            `json:"issues"`
	Score        scoreJSON             `json:"score"`
	Port         section[portJSON]     `json:"port"`
	Category     section[categoryJSON] `json:"ip_category"`
	VPN          section[vpnJSON]      `json:"vpn"`
	AnonymousVPN section[vpnJSON]      `json:"anonymous_vpn"`
	Vuln         section[vulnJSON]     `json:"vulnerability"`
	Whois        section[whoisJSON]    `json:"whois"`
	Protected    section[struct{}]     `json:"protected_ip"`
	Domains      domainsJSON           `json:"domain"`
}

func (w *reportJSON) report(body []byte) *Report {
	return &Report{
		IP:            string(w.IP),
		Issues:        Issues(w.Issues),
		Score:         Score(w.Score),
		Ports:         records(w.Port, portJSON.port),
		Categories:    records(w.Category, categoryJSON.category),
		VPN:           records(w.VPN, vpnJSON.vpn),
		AnonymousVPN:  records(w.AnonymousVPN, vpnJSON.vpn),
		Vulns:         records(w.Vuln, vulnJSON.vuln),
		Whois:         records(w.Whois, whoisJSON.whois),
		ProtectedIPs:  w.Protected.objects(),
		Domains:       int(w.Domains),
		Status:        w.Status.code,
		Message:       string(w.Message),
		Raw:           body,
		HasStatusCode: w.Status.set,
	}
}

// status is the body's own "status"; set is false when it is absent or null.
type status struct {
	code int
	set  bool
}

func (s *status) UnmarshalJSON(b []byte) error {
	*s = status{}
	if string(b) != "null" {
		*s = status{code: num(b), set: true}
	}
	return nil
}

// issuesJSON is Issues; anything but an object leaves every flag false.
type issuesJSON Issues

func (is *issuesJSON) UnmarshalJSON(b []byte) error {
	*is = issuesJSON{}
	if b[0] != '{' {
		return nil
	}
	var w struct {
		VPN          flag `json:"is_vpn"`
		AnonymousVPN flag `json:"is_anonymous_vpn"`
		Tor          flag `json:"is_tor"`
		Proxy        flag `json:"is_proxy"`
		Hosting      flag `json:"is_hosting"`
		Cloud        flag `json:"is_cloud"`
		Mobile       flag `json:"is_mobile"`
		Darkweb      flag `json:"is_darkweb"`
		Scanner      flag `json:"is_scanner"`
		Snort        flag `json:"is_snort"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*is = issuesJSON{
		VPN: bool(w.VPN), AnonymousVPN: bool(w.AnonymousVPN), Tor: bool(w.Tor), Proxy: bool(w.Proxy),
		Hosting: bool(w.Hosting), Cloud: bool(w.Cloud), Mobile: bool(w.Mobile), Darkweb: bool(w.Darkweb),
		Scanner: bool(w.Scanner), Snort: bool(w.Snort),
	}
	return nil
}

// scoreJSON is Score: an object of levels, or one level standing alone,
// which goes to Overall.
type scoreJSON Score

func (s *scoreJSON) UnmarshalJSON(b []byte) error {
	if b[0] != '{' {
		*s = scoreJSON{Overall: levelOf(b)}
		return nil
	}
	var w struct {
		Inbound  level    `json:"inbound"`
		Outbound level    `json:"outbound"`
		Overall  optional `json:"overall"`
		Total    optional `json:"total"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	// "total" is an older name of "overall", read only when "overall" is
	// not there at all.
	overall := w.Overall
	if !overall.set {
		overall = w.Total
	}
	*s = scoreJSON{Inbound: string(w.Inbound), Outbound: string(w.Outbound), Overall: overall.level}
	return nil
}

// domainsJSON counts a domain section: its records that are objects, or
// the block's count when that is larger (the API returns a sample).
type domainsJSON int

func (d *domainsJSON) UnmarshalJSON(b []byte) error {
	*d = 0
	var s section[struct{}]
	err := s.UnmarshalJSON(b)
	n := s.objects()
	if b[0] == '{' {
		var c struct {
			Count number `json:"count"`
		}
		if json.Unmarshal(b, &c) == nil {
			n = max(n, int(c.Count))
		}
	}
	*d = domainsJSON(n)
	return err
}

// section holds the records of a {count, data[]} block, or of a bare list.
// Anything else (null, a string, a data that is not a list) holds none.
type section[T any] list[T]

func (s *section[T]) UnmarshalJSON(b []byte) error {
	*s = nil
	switch b[0] {
	case '[':
		return (*list[T])(s).UnmarshalJSON(b)
	case '{':
		var block struct {
			Data []record[T] `json:"data"`
		}
		err := json.Unmarshal(b, &block)
		if _, notList := errors.AsType[*json.UnmarshalTypeError](err); notList {
			// A data that is not a list holds no records, but encoding/json
			// leaves the field as an earlier "data" member set it. Such a
			// block is rare enough to decode again, one list at a time.
			var exact struct {
				Data list[T] `json:"data"`
			}
			err = json.Unmarshal(b, &exact)
			block.Data = exact.Data
		}
		*s = section[T](block.Data)
		return err
	}
	return nil
}

// records converts the records of s that are objects, or returns nil if
// there are none.
func records[T, R any](s section[T], convert func(T) R) []R {
	n := s.objects()
	if n == 0 {
		return nil
	}
	out := make([]R, 0, n)
	for _, r := range s {
		if r.ok {
			out = append(out, convert(r.value))
		}
	}
	return out
}

// objects counts the records of s that are objects.
func (s section[T]) objects() int {
	n := 0
	for _, r := range s {
		if r.ok {
			n++
		}
	}
	return n
}

// list is a JSON list of records; anything else is an empty one.
type list[T any] []record[T]

func (l *list[T]) UnmarshalJSON(b []byte) error {
	*l = nil
	// Most sections of a report are empty lists, which need no second
	// decoder.
	if b[0] != '[' || len(bytes.TrimSpace(b[1:len(b)-1])) == 0 {
		return nil
	}
	return json.Unmarshal(b, (*[]record[T])(l))
}

// record is one element of a list. Elements that are not objects are passed
// over (ok is false), because one odd element must not cost the others.
type record[T any] struct {
	value T
	ok    bool
}

func (r *record[T]) UnmarshalJSON(b []byte) error {
	*r = record[T]{}
	if b[0] != '{' {
		return nil
	}
	r.ok = true
	return json.Unmarshal(b, &r.value)
}

type portJSON struct {
	Port            number  `json:"open_port_no"`
	Socket          text    `json:"socket"`
	Protocol        text    `json:"protocol"`
	AppName         text    `json:"app_name"`
	AppVersion      text    `json:"app_version"`
	Tags            tags    `json:"tags"`
	SSLInfo         rawText `json:"ssl_info_raw"`
	IsVulnerability flag    `json:"is_vulnerability"`
	ConfirmedTime   text    `json:"confirmed_time"`
}

func (p portJSON) port() Port {
	return Port{
		Port:            int(p.Port),
		Socket:          string(p.Socket),
		Protocol:        string(p.Protocol),
		AppName:         string(p.AppName),
		AppVersion:      string(p.AppVersion),
		Tags:            p.Tags,
		SSLInfo:         string(p.SSLInfo),
		IsVulnerability: bool(p.IsVulnerability),
		ConfirmedTime:   string(p.ConfirmedTime),
	}
}

type categoryJSON struct {
	Type         text `json:"type"`
	DetectSource text `json:"detect_source"`
}

func (c categoryJSON) category() Category {
	return Category{Type: string(c.Type), DetectSource: string(c.DetectSource)}
}

type vpnJSON struct {
	Name text `json:"vpn_name"`
	URL  text `json:"vpn_url"`
}

func (v vpnJSON) vpn() VPNRecord {
	return VPNRecord{Name: string(v.Name), URL: string(v.URL)}
}

type vulnJSON struct {
	CVE     text    `json:"cve_id"`
	CVSSv3  decimal `json:"cvssv3_score"`
	AppName text    `json:"app_name"`
}

func (v vulnJSON) vuln() Vuln {
	return Vuln{CVE: string(v.CVE), CVSSv3: float64(v.CVSSv3), AppName: string(v.AppName)}
}

type whoisJSON struct {
	ASName      text   `json:"as_name"`
	ASNumber    number `json:"as_no"`
	OrgName     text   `json:"org_name"`
	CountryCode text   `json:"org_country_code"`
}

func (w whoisJSON) whois() Whois {
	return Whois{ASName: string(w.ASName), ASNumber: int(w.ASNumber), OrgName: string(w.OrgName), CountryCode: string(w.CountryCode)}
}

// tags accepts a string, a list of strings, or a list of objects naming the
// tag under one of a few keys. Blank tags are dropped.
type tags []string

func (t *tags) UnmarshalJSON(b []byte) error {
	*t = nil
	if s := strings.TrimSpace(str(b)); s != "" {
		*t = tags{s}
		return nil
	}
	if b[0] != '[' {
		return nil
	}
	var items []tag
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	for _, it := range items {
		if s := strings.TrimSpace(string(it)); s != "" {
			*t = append(*t, s)
		}
	}
	return nil
}

// tag is one element of a tag list: text, or the first of tag, name, label
// and title that an object has, whatever that member's kind.
type tag string

func (t *tag) UnmarshalJSON(b []byte) error {
	if b[0] != '{' {
		*t = tag(str(b))
		return nil
	}
	var w struct {
		Tag   optional `json:"tag"`
		Name  optional `json:"name"`
		Label optional `json:"label"`
		Title optional `json:"title"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	for _, o := range []optional{w.Tag, w.Name, w.Label} {
		if o.set {
			*t = tag(o.text)
			return nil
		}
	}
	*t = tag(w.Title.text)
	return nil
}

// optional is a member read both as text and as a level, with whether it
// was there at all (null included), for members that stand in for others.
type optional struct {
	text, level string
	set         bool
}

func (o *optional) UnmarshalJSON(b []byte) error {
	*o = optional{text: str(b), level: levelOf(b), set: true}
	return nil
}

// text is a JSON string's value or a number's literal text; any other kind
// is "".
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	*t = text(str(b))
	return nil
}

// rawText is text, except that an object or list is kept as its compact
// JSON, so that keyword searches still see its content.
type rawText string

func (t *rawText) UnmarshalJSON(b []byte) error {
	if b[0] != '{' && b[0] != '[' {
		*t = rawText(str(b))
		return nil
	}
	var buf bytes.Buffer
	buf.Grow(len(b))
	err := json.Compact(&buf, b)
	*t = rawText(buf.String())
	return err
}

// number is an integer given as a number or as text; a fraction is
// truncated, and anything else, or beyond 32 bits, is 0.
type number int

func (n *number) UnmarshalJSON(b []byte) error {
	*n = number(num(b))
	return nil
}

// decimal is a number given as a number or as text; anything else is 0.
type decimal float64

func (d *decimal) UnmarshalJSON(b []byte) error {
	*d = decimal(float(b))
	return nil
}

// flag is a boolean given as true/false, as text ("true", "True", "1"), or
// as a number (non-zero is true).
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	*f = flag(boolean(b))
	return nil
}

// level is a score word; see Score.
type level string

func (l *level) UnmarshalJSON(b []byte) error {
	*l = level(levelOf(b))
	return nil
}

// legacyLevels maps the integer scores of the older /v1/ip/data endpoint.
var legacyLevels = [...]string{1: "Safe", 2: "Low", 3: "Moderate", 4: "Dangerous", 5: "Critical"}

func levelOf(b []byte) string {
	if isNumber(b) {
		if n := num(b); n >= 1 && n < len(legacyLevels) {
			return legacyLevels[n]
		}
		return ""
	}
	return strings.TrimSpace(str(b))
}

func isNumber(b []byte) bool {
	return len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// str returns a JSON string's value, a number's literal text, or "" for any
// other kind.
func str(b []byte) string {
	switch {
	case len(b) > 0 && b[0] == '"':
		// Between the quotes, text without an escape that is valid UTF-8
		// is the value as it stands; this spares most strings a second
		// scan by encoding/json, which would return the same bytes.
		if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
			return string(b[1 : len(b)-1])
		}
		var s string
		if json.Unmarshal(b, &s) != nil {
			return ""
		}
		return s
	case isNumber(b):
		return string(b)
	}
	return ""
}

func num(b []byte) int {
	f := float(b)
	if f > 1<<31 || f < -(1<<31) {
		return 0
	}
	return int(f)
}

func float(b []byte) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(str(b)), 64)
	if err != nil {
		return 0
	}
	return f
}

// boolean accepts true/false, "true"/"True"/"1", and non-zero numbers.
func boolean(b []byte) bool {
	switch string(b) {
	case "true":
		return true
	case "false", "null":
		return false
	}
	v, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(str(b))))
	if err == nil {
		return v
	}
	return float(b) != 0
}
