package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Format is how an entry is written: the plugin's own JSON, Elastic Common
// Schema JSON, or ArcSight CEF.
type Format string

// The formats.
const (
	FormatJSON Format = "json" // the Entry fields, as they always were
	FormatECS  Format = "ecs"  // Elastic Common Schema, nested JSON
	FormatCEF  Format = "cef"  // ArcSight Common Event Format
)

// ECSVersion is the Elastic Common Schema version the ecs format follows.
const ECSVersion = "8.11.0"

// vendor is the device vendor and product in CEF and ECS observer fields.
const vendor = "coredns-cip"

// Meta describes this node in formatted entries.
type Meta struct {
	Host    string // host.name, observer.hostname, CEF dvchost
	Version string // observer.version, the CEF device version
}

// DefaultMeta is this host's name and the binary's module version.
func DefaultMeta() Meta {
	m := Meta{Version: "dev"}
	m.Host, _ = os.Hostname()
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		m.Version = bi.Main.Version
	}
	return m
}

// ParseFormat names a format; json, ecs or cef.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatECS, FormatCEF:
		return f, nil
	}
	return "", fmt.Errorf("format %q: want json, ecs or cef", s)
}

// Encode formats e as one line without its newline. e.Time should be set.
func Encode(f Format, e Entry, m Meta) ([]byte, error) {
	switch f {
	case FormatECS:
		return marshal(ecsOf(e, m))
	case FormatCEF:
		return []byte(CEF(e, m)), nil
	}
	return marshal(e)
}

// marshal is json.Marshal without HTML escaping (qnames and details stay
// readable); control characters, U+2028 and U+2029 stay escaped, so the
// line stays one line.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// alertKinds are the entries that say a client met something suspicious:
// event.kind "alert" in ECS, the higher CEF severities. The rest record
// what operators and hooks did ("event").
var alertKinds = map[Kind]int{KindBlock: 8, KindVerdict: 7, KindRewrite: 6}

// outcome is event.outcome: a hook's failure or a refused answer is a
// failure, everything else a decision that took effect.
func outcome(k Kind) string {
	if k == KindHookFailed || k == KindFailClosed {
		return "failure"
	}
	return "success"
}

// target splits an entry's IP field, which also holds CIDR ranges and
// allowlisted domains, into an address or the text that is not one.
func target(s string) (addr string, other string) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), ""
	}
	return "", s
}

// reason is event.reason and the CEF reason: the risk reasons, or else
// the free-text detail.
func reason(e Entry) string {
	if len(e.Reasons) > 0 {
		return strings.Join(e.Reasons, ", ")
	}
	return e.Detail
}

type ecsEntry struct {
	Timestamp   string            `json:"@timestamp"`
	ECS         ecsVersion        `json:"ecs"`
	Event       ecsEvent          `json:"event"`
	Message     string            `json:"message,omitempty"`
	Source      *ecsIP            `json:"source,omitempty"`
	Destination *ecsDestination   `json:"destination,omitempty"`
	DNS         *ecsDNS           `json:"dns,omitempty"`
	Rule        *ecsName          `json:"rule,omitempty"`
	Threat      *ecsThreat        `json:"threat,omitempty"`
	User        *ecsName          `json:"user,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Observer    ecsObserver       `json:"observer"`
	Host        *ecsName          `json:"host,omitempty"`
}

type ecsVersion struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	Kind     string   `json:"kind"`
	Category []string `json:"category"`
	Type     []string `json:"type"`
	Action   string   `json:"action"`
	Outcome  string   `json:"outcome"`
	Reason   string   `json:"reason,omitempty"`
	ID       string   `json:"id,omitempty"`
	End      string   `json:"end,omitempty"`
	Module   string   `json:"module"`
}

type ecsIP struct {
	IP string `json:"ip"`
}

type ecsDestination struct {
	IP     string `json:"ip,omitempty"`
	Domain string `json:"domain,omitempty"`
}

type ecsDNS struct {
	Question ecsName `json:"question"`
}

type ecsName struct {
	Name string `json:"name"`
}

type ecsThreat struct {
	Indicator ecsIndicator `json:"indicator"`
}

type ecsIndicator struct {
	IP   string `json:"ip"`
	Type string `json:"type"`
}

type ecsObserver struct {
	Vendor   string `json:"vendor"`
	Product  string `json:"product"`
	Type     string `json:"type"`
	Version  string `json:"version,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// ecsOf maps e onto ECS fields; docs/integrations/siem.md has the table.
func ecsOf(e Entry, m Meta) ecsEntry {
	x := ecsEntry{
		Timestamp: e.Time.UTC().Format(time.RFC3339Nano),
		ECS:       ecsVersion{ECSVersion},
		Event: ecsEvent{Kind: "event", Category: []string{"network"}, Type: []string{"info"}, Action: string(e.Kind),
			Outcome: outcome(e.Kind), Reason: reason(e), ID: e.Event, Module: "cipvalidate"},
		Message:  e.Detail,
		Observer: ecsObserver{Vendor: vendor, Product: vendor, Type: "dns", Version: m.Version, Hostname: m.Host},
	}
	if _, ok := alertKinds[e.Kind]; ok {
		x.Event.Kind = "alert"
	}
	switch e.Kind {
	case KindVerdict:
		x.Event.Category, x.Event.Type = []string{"threat"}, []string{"indicator"}
	case KindBlock, KindRewrite, KindFailClosed:
		x.Event.Type = []string{"denied"}
	case KindAllow:
		x.Event.Type = []string{"allowed"}
	}
	if e.TTL > 0 {
		x.Event.End = e.Time.Add(time.Duration(e.TTL) * time.Second).UTC().Format(time.RFC3339Nano)
	}
	if e.Client != "" {
		x.Source = &ecsIP{e.Client}
	}
	addr, other := target(e.IP)
	labels := map[string]string{}
	switch {
	case addr != "":
		x.Destination = &ecsDestination{IP: addr}
		typ := "ipv4-addr"
		if strings.Contains(addr, ":") {
			typ = "ipv6-addr"
		}
		x.Threat = &ecsThreat{ecsIndicator{IP: addr, Type: typ}}
	case strings.Contains(other, "/"):
		labels["cidr"] = other // ECS has no range field; destination.ip must be one address
	case other != "":
		x.Destination = &ecsDestination{Domain: other}
	}
	if e.Qname != "" {
		x.DNS = &ecsDNS{ecsName{e.Qname}}
	}
	if e.Decision != "" {
		x.Rule = &ecsName{e.Decision}
	}
	if e.Actor != "" {
		x.User = &ecsName{e.Actor}
	}
	if m.Host != "" {
		x.Host = &ecsName{m.Host}
	}
	for k, v := range e.Labels {
		labels[strings.ReplaceAll(k, ".", "_")] = v // ECS label keys hold no dots
	}
	if e.Ref != "" {
		labels["ref"] = e.Ref
	}
	if len(labels) > 0 {
		x.Labels = labels
	}
	return x
}

// CEF formats e as one ArcSight CEF line:
// CEF:0|coredns-cip|coredns-cip|VERSION|KIND|NAME|SEVERITY|EXTENSION.
func CEF(e Entry, m Meta) string {
	sev := 3
	if s, ok := alertKinds[e.Kind]; ok {
		sev = s
	} else if outcome(e.Kind) == "failure" {
		sev = 5
	}
	var b strings.Builder
	b.WriteString("CEF:0|")
	for _, h := range []string{vendor, vendor, m.Version, string(e.Kind), cefName(e), strconv.Itoa(sev)} {
		b.WriteString(cefHeader(h))
		b.WriteByte('|')
	}
	addr, other := target(e.IP)
	ext := [][2]string{
		{"rt", strconv.FormatInt(e.Time.UnixMilli(), 10)}, {"act", string(e.Kind)}, {"outcome", outcome(e.Kind)},
		{"src", e.Client}, {"dst", addr}, {"dhost", e.Qname}, {"suser", e.Actor}, {"msg", e.Detail}, {"dvchost", m.Host},
		{"reason", reason(e)}, {"externalId", e.Event},
		{"cs1Label", "decision"}, {"cs1", e.Decision},
		{"cs2Label", "target"}, {"cs2", other},
		{"cs3Label", "ref"}, {"cs3", e.Ref},
		{"cs4Label", "labels"}, {"cs4", cefLabels(e.Labels)},
	}
	if e.TTL > 0 {
		ext = append(ext, [2]string{"cn1Label", "ttl"}, [2]string{"cn1", strconv.FormatInt(e.TTL, 10)})
	}
	sep := ""
	for i, kv := range ext {
		// A label without its value says nothing: skip both.
		if kv[1] == "" || strings.HasSuffix(kv[0], "Label") && i+1 < len(ext) && ext[i+1][1] == "" {
			continue
		}
		b.WriteString(sep + kv[0] + "=" + cefValue(kv[1]))
		sep = " "
	}
	return b.String()
}

// cefName is the header's human-readable event name.
func cefName(e Entry) string {
	if e.IP == "" {
		return string(e.Kind)
	}
	return string(e.Kind) + " " + e.IP
}

// cefLabels flattens an event's labels as k=v pairs separated by ";",
// sorted for stable lines; cefValue escapes the "=".
func cefLabels(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ";")
}

// cefHeader escapes a header field: backslash and pipe are escaped;
// newlines and other control characters, which CEF headers cannot hold,
// become spaces.
func cefHeader(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '|':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cefValue escapes an extension value: backslash, equals, CR and LF
// (as \r and \n); other control characters become spaces so the line
// stays one line.
func cefValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '=':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
