package criminalip

// This file keeps the original map-based decoder as a reference for the
// equivalence test and fuzz target: Decode must fail where decodeReference
// fails and otherwise return a Report deeply equal to its, for every input
// but those with member names in another case (see checkEquivalent).

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// decodeReference is the original Decode, unchanged but for the names of its
// helpers (prefixed ref).
func decodeReference(body []byte) (*Report, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("report body is JSON null, not an object")
	}
	r := &Report{Raw: body}
	r.IP = refStr(top["ip"])
	if raw, ok := top["status"]; ok && !refIsNull(raw) {
		r.Status = refNum(raw)
		r.HasStatusCode = true
	}
	r.Message = refStr(top["message"])
	r.Issues = refDecodeIssues(refObj(top["issues"]))
	r.Score = refDecodeScore(top["score"])
	for _, p := range refSection(top["port"]) {
		r.Ports = append(r.Ports, refDecodePort(p))
	}
	for _, c := range refSection(top["ip_category"]) {
		r.Categories = append(r.Categories, Category{Type: refStr(c["type"]), DetectSource: refStr(c["detect_source"])})
	}
	for _, v := range refSection(top["vpn"]) {
		r.VPN = append(r.VPN, VPNRecord{Name: refStr(v["vpn_name"]), URL: refStr(v["vpn_url"])})
	}
	for _, v := range refSection(top["anonymous_vpn"]) {
		r.AnonymousVPN = append(r.AnonymousVPN, VPNRecord{Name: refStr(v["vpn_name"]), URL: refStr(v["vpn_url"])})
	}
	for _, v := range refSection(top["vulnerability"]) {
		r.Vulns = append(r.Vulns, Vuln{CVE: refStr(v["cve_id"]), CVSSv3: refFloat(v["cvssv3_score"]), AppName: refStr(v["app_name"])})
	}
	for _, w := range refSection(top["whois"]) {
		r.Whois = append(r.Whois, Whois{
			ASName:      refStr(w["as_name"]),
			ASNumber:    refNum(w["as_no"]),
			OrgName:     refStr(w["org_name"]),
			CountryCode: refStr(w["org_country_code"]),
		})
	}
	r.ProtectedIPs = len(refSection(top["protected_ip"]))
	r.Domains = max(len(refSection(top["domain"])), refNum(refObj(top["domain"])["count"]))
	return r, nil
}

func refDecodeIssues(m map[string]json.RawMessage) Issues {
	return Issues{
		VPN:          refBoolean(m["is_vpn"]),
		AnonymousVPN: refBoolean(m["is_anonymous_vpn"]),
		Tor:          refBoolean(m["is_tor"]),
		Proxy:        refBoolean(m["is_proxy"]),
		Hosting:      refBoolean(m["is_hosting"]),
		Cloud:        refBoolean(m["is_cloud"]),
		Mobile:       refBoolean(m["is_mobile"]),
		Darkweb:      refBoolean(m["is_darkweb"]),
		Scanner:      refBoolean(m["is_scanner"]),
		Snort:        refBoolean(m["is_snort"]),
	}
}

func refDecodeScore(raw json.RawMessage) Score {
	if m := refObj(raw); m != nil {
		return Score{Inbound: refLevel(m["inbound"]), Outbound: refLevel(m["outbound"]), Overall: refLevel(refFirstOf(m, "overall", "total"))}
	}
	return Score{Overall: refLevel(raw)}
}

func refFirstOf(m map[string]json.RawMessage, keys ...string) json.RawMessage {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return nil
}

// refLegacyLevels maps the integer scores of the older /v1/ip/data endpoint.
var refLegacyLevels = map[int]string{1: "Safe", 2: "Low", 3: "Moderate", 4: "Dangerous", 5: "Critical"}

func refLevel(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return refLegacyLevels[refNum(raw)]
	}
	return strings.TrimSpace(refStr(raw))
}

func refDecodePort(m map[string]json.RawMessage) Port {
	return Port{
		Port:            refNum(m["open_port_no"]),
		Socket:          refStr(m["socket"]),
		Protocol:        refStr(m["protocol"]),
		AppName:         refStr(m["app_name"]),
		AppVersion:      refStr(m["app_version"]),
		Tags:            refTags(m["tags"]),
		SSLInfo:         refText(m["ssl_info_raw"]),
		IsVulnerability: refBoolean(m["is_vulnerability"]),
		ConfirmedTime:   refStr(m["confirmed_time"]),
	}
}

// refTags accepts a string, a list of strings, or a list of objects naming the
// tag under one of a few keys.
func refTags(raw json.RawMessage) []string {
	if s := strings.TrimSpace(refStr(raw)); s != "" {
		return []string{s}
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, it := range items {
		s := refStr(it)
		if m := refObj(it); m != nil {
			s = refStr(refFirstOf(m, "tag", "name", "label", "title"))
		}
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// refSection returns the object records of a {count, data[]} block; anything
// else (null, a bare list, a string) yields what can be salvaged.
func refSection(raw json.RawMessage) []map[string]json.RawMessage {
	var items []json.RawMessage
	if m := refObj(raw); m != nil {
		if json.Unmarshal(m["data"], &items) != nil {
			return nil
		}
	} else if json.Unmarshal(raw, &items) != nil {
		return nil
	}
	out := make([]map[string]json.RawMessage, 0, len(items))
	for _, it := range items {
		if m := refObj(it); m != nil {
			out = append(out, m)
		}
	}
	return out
}

func refIsNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func refObj(raw json.RawMessage) map[string]json.RawMessage {
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

// refStr returns a JSON string's value, a number's text, or "".
func refStr(raw json.RawMessage) string {
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

// refText is str, except that an object or list is kept as its compact JSON so
// that keyword searches still see its content.
func refText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && (raw[0] == '{' || raw[0] == '[') {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
		return ""
	}
	return refStr(raw)
}

func refNum(raw json.RawMessage) int {
	f := refFloat(raw)
	if f > 1<<31 || f < -(1<<31) {
		return 0
	}
	return int(f)
}

func refFloat(raw json.RawMessage) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(refStr(raw)), 64)
	if err != nil {
		return 0
	}
	return f
}

// refBoolean accepts true/false, "true"/"True"/"1", and non-zero numbers.
func refBoolean(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "true":
		return true
	case "false", "null", "":
		return false
	}
	b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(refStr(raw))))
	if err == nil {
		return b
	}
	return refFloat(raw) != 0
}
