package criminalip

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
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
func Decode(body []byte) (*Report, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("report body is JSON null, not an object")
	}
	r := &Report{Raw: body}
	r.IP = str(top["ip"])
	if raw, ok := top["status"]; ok && !isNull(raw) {
		r.Status = num(raw)
		r.HasStatusCode = true
	}
	r.Message = str(top["message"])
	r.Issues = decodeIssues(obj(top["issues"]))
	r.Score = decodeScore(top["score"])
	for _, p := range section(top["port"]) {
		r.Ports = append(r.Ports, decodePort(p))
	}
	for _, c := range section(top["ip_category"]) {
		r.Categories = append(r.Categories, Category{Type: str(c["type"]), DetectSource: str(c["detect_source"])})
	}
	for _, v := range section(top["vpn"]) {
		r.VPN = append(r.VPN, VPNRecord{Name: str(v["vpn_name"]), URL: str(v["vpn_url"])})
	}
	for _, v := range section(top["anonymous_vpn"]) {
		r.AnonymousVPN = append(r.AnonymousVPN, VPNRecord{Name: str(v["vpn_name"]), URL: str(v["vpn_url"])})
	}
	for _, v := range section(top["vulnerability"]) {
		r.Vulns = append(r.Vulns, Vuln{CVE: str(v["cve_id"]), CVSSv3: float(v["cvssv3_score"]), AppName: str(v["app_name"])})
	}
	for _, w := range section(top["whois"]) {
		r.Whois = append(r.Whois, Whois{
			ASName:      str(w["as_name"]),
			ASNumber:    num(w["as_no"]),
			OrgName:     str(w["org_name"]),
			CountryCode: str(w["org_country_code"]),
		})
	}
	r.ProtectedIPs = len(section(top["protected_ip"]))
	return r, nil
}

func decodeIssues(m map[string]json.RawMessage) Issues {
	return Issues{
		VPN:          boolean(m["is_vpn"]),
		AnonymousVPN: boolean(m["is_anonymous_vpn"]),
		Tor:          boolean(m["is_tor"]),
		Proxy:        boolean(m["is_proxy"]),
		Hosting:      boolean(m["is_hosting"]),
		Cloud:        boolean(m["is_cloud"]),
		Mobile:       boolean(m["is_mobile"]),
		Darkweb:      boolean(m["is_darkweb"]),
		Scanner:      boolean(m["is_scanner"]),
		Snort:        boolean(m["is_snort"]),
	}
}

func decodeScore(raw json.RawMessage) Score {
	if m := obj(raw); m != nil {
		return Score{Inbound: level(m["inbound"]), Outbound: level(m["outbound"]), Overall: level(firstOf(m, "overall", "total"))}
	}
	return Score{Overall: level(raw)}
}

func firstOf(m map[string]json.RawMessage, keys ...string) json.RawMessage {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return nil
}

// legacyLevels maps the integer scores of the older /v1/ip/data endpoint.
var legacyLevels = map[int]string{1: "Safe", 2: "Low", 3: "Moderate", 4: "Dangerous", 5: "Critical"}

func level(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return legacyLevels[num(raw)]
	}
	return strings.TrimSpace(str(raw))
}

func decodePort(m map[string]json.RawMessage) Port {
	return Port{
		Port:            num(m["open_port_no"]),
		Socket:          str(m["socket"]),
		Protocol:        str(m["protocol"]),
		AppName:         str(m["app_name"]),
		AppVersion:      str(m["app_version"]),
		Tags:            tags(m["tags"]),
		SSLInfo:         text(m["ssl_info_raw"]),
		IsVulnerability: boolean(m["is_vulnerability"]),
		ConfirmedTime:   str(m["confirmed_time"]),
	}
}

// tags accepts a string, a list of strings, or a list of objects naming the
// tag under one of a few keys.
func tags(raw json.RawMessage) []string {
	if s := strings.TrimSpace(str(raw)); s != "" {
		return []string{s}
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		s := str(it)
		if m := obj(it); m != nil {
			s = str(firstOf(m, "tag", "name", "label", "title"))
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// section returns the object records of a {count, data[]} block; anything
// else (null, a bare list, a string) yields what can be salvaged.
func section(raw json.RawMessage) []map[string]json.RawMessage {
	var items []json.RawMessage
	if m := obj(raw); m != nil {
		if json.Unmarshal(m["data"], &items) != nil {
			return nil
		}
	} else if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	out := make([]map[string]json.RawMessage, 0, len(items))
	for _, it := range items {
		if m := obj(it); m != nil {
			out = append(out, m)
		}
	}
	return out
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func obj(raw json.RawMessage) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// str returns a JSON string's value, a number's text, or "".
func str(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
	}
	return ""
}

// text is str, except that an object or list is kept as its compact JSON so
// that keyword searches still see its content.
func text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
		return ""
	}
	return str(raw)
}

func num(raw json.RawMessage) int {
	f := float(raw)
	if f > 1<<31 || f < -(1<<31) {
		return 0
	}
	return int(f)
}

func float(raw json.RawMessage) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(str(raw)), 64)
	if err != nil {
		return 0
	}
	return f
}

// boolean accepts true/false, "true"/"True"/"1", and non-zero numbers.
func boolean(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "true":
		return true
	case "false", "null", "":
		return false
	}
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(str(raw))))
	if err == nil {
		return b
	}
	return float(raw) != 0
}
