package connlog

import (
	"strings"
	"testing"
)

// eve builds an EVE record of the common section, with extra fields
// (`"alert":{...}`) appended.
func eve(eventType, src, dst, dport, proto, extra string) string {
	b := `{"timestamp":"2026-11-27T10:00:01.123456+0100","flow_id":1253817461233781,"in_iface":"eth0","event_type":"` + eventType + `"`
	if src != "" {
		b += `,"src_ip":` + src + `,"src_port":51234`
	}
	if dst != "" {
		b += `,"dest_ip":` + dst
	}
	if dport != "" {
		b += `,"dest_port":` + dport
	}
	if proto != "" {
		b += `,"proto":` + proto
	}
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

const eveAlertObject = `"alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,"signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1","category":"Potentially Bad Traffic","severity":2},"app_proto":"http"`

func TestSuricata(t *testing.T) {
	want := rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 443, "tcp")
	alert := rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 80, "tcp")
	alert.Alert = Alert{Signature: "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1", SignatureID: 2018358, Severity: 2}
	flowObject := `"app_proto":"tls","flow":{"pkts_toserver":12,"pkts_toclient":10,"bytes_toserver":1830,"bytes_toclient":5120,"start":"2026-11-27T09:59:58.001122+0100","end":"2026-11-27T10:00:01.123456+0100","age":3,"state":"closed","reason":"timeout","alerted":false}`
	runCases(t, Suricata, []parseCase{
		{name: "flow", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "443", `"TCP"`, flowObject), want: want},
		{name: "alert", line: eve("alert", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, eveAlertObject), want: alert},
		{
			name: "alert signature is bounded",
			line: eve("alert", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, `"alert":{"signature_id":1,"signature":"`+strings.Repeat("A", 1000)+`","severity":3}`),
			want: func() Record {
				r := alert
				r.Alert = Alert{Signature: strings.Repeat("A", maxSignature) + "...", SignatureID: 1, Severity: 3}
				return r
			}(),
		},
		{
			name: "ipv6 as Suricata writes it, every group in full",
			line: eve("flow", `"2001:0db8:0000:0000:0000:0000:0000:0005"`, `"2a00:1450:4001:0829:0000:0000:0000:200e"`, "443", `"TCP"`, flowObject),
			want: rec("2026-11-27T09:00:01.123456Z", "2001:db8::5", "2a00:1450:4001:829::200e", 443, "tcp"),
		},
		{
			name: "icmp has types, not ports",
			line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "", `"ICMP"`, `"icmp_type":8,"icmp_code":0`),
			want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 0, "icmp"),
		},
		{
			name: "icmpv6",
			line: eve("flow", `"2001:db8::5"`, `"2001:db8:ffff::1"`, "", `"IPv6-ICMP"`, `"icmp_type":128,"icmp_code":0`),
			want: rec("2026-11-27T09:00:01.123456Z", "2001:db8::5", "2001:db8:ffff::1", 0, "icmpv6"),
		},
		{name: "no port, no protocol", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "", "", ""), want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 0, "")},
		{
			name: "no timestamp",
			line: `{"event_type":"flow","src_ip":"10.0.0.5","dest_ip":"45.83.0.21","dest_port":443,"proto":"TCP"}`,
			want: rec("", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{name: "dns record", line: eve("dns", `"10.0.0.5"`, `"10.0.0.1"`, "53", `"UDP"`, `"dns":{"type":"query","id":1,"rrname":"example.com","rrtype":"A"}`), skip: true},
		{name: "http record", line: eve("http", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, `"http":{"hostname":"example.com","url":"/"}`), skip: true},
		{name: "stats record", line: `{"timestamp":"2026-11-27T10:00:01.123456+0100","event_type":"stats","stats":{"uptime":60}}`, skip: true},
		{name: "no event_type", line: `{"src_ip":"10.0.0.5","dest_ip":"45.83.0.21"}`, err: "no event_type"},
		{name: "event_type not a string", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "", "", `"event_type":7`), err: "bad JSON"},
		{name: "alert without alert object", line: eve("alert", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, ""), err: "without an alert object"},
		{name: "alert with a bad severity", line: eve("alert", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, `"alert":{"severity":"high"}`), err: "bad JSON"},
		{name: "no src_ip", line: eve("flow", "", `"45.83.0.21"`, "443", `"TCP"`, ""), err: "no src_ip"},
		{name: "no dest_ip", line: eve("flow", `"10.0.0.5"`, "", "443", `"TCP"`, ""), err: "no dest_ip"},
		{name: "bad src_ip", line: eve("flow", `"10.0.0.300"`, `"45.83.0.21"`, "443", `"TCP"`, ""), err: `bad src_ip "10.0.0.300"`},
		{name: "bad dest_ip", line: eve("flow", `"10.0.0.5"`, `17`, "443", `"TCP"`, ""), err: "bad dest_ip 17"},
		{name: "bad dest_port", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "70000", `"TCP"`, ""), err: "bad dest_port 70000"},
		{name: "bad timestamp", line: strings.Replace(eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "443", `"TCP"`, ""), "2026-11-27T10", "2026-13-27T10", 1), err: "bad timestamp"},
		{name: "truncated", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "443", `"TCP"`, "")[:90], err: "bad JSON"},
		{name: "syslog-wrapped", line: `Nov 27 10:00:01 sensor1 suricata[812]: ` + eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "443", `"TCP"`, ""), err: "not a JSON object"},
	})
}

// The json format reads EVE records too (dest_ip is one of its names), as
// plain connections: it neither filters event types nor keeps alerts.
func TestJSONReadsEVE(t *testing.T) {
	runCases(t, JSON, []parseCase{
		{name: "flow", line: eve("flow", `"10.0.0.5"`, `"45.83.0.21"`, "443", `"TCP"`, ""), want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 443, "tcp")},
		{name: "alert", line: eve("alert", `"10.0.0.5"`, `"45.83.0.21"`, "80", `"TCP"`, eveAlertObject), want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 80, "tcp")},
	})
}
