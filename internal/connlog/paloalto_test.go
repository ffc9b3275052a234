package connlog

import (
	"strings"
	"testing"
	"time"
)

// panTraffic builds a PAN-OS traffic log CSV line from a typical one, with
// some fields (by position) replaced by raw CSV text.
func panTraffic(set map[int]string) string {
	f := strings.Split("1,2026/11/27 10:00:01,012801000001,TRAFFIC,end,2561,2026/11/27 10:00:01,10.0.0.5,45.83.0.21,198.51.100.10,45.83.0.21,allow-ssh,corp\\alice,,ssh,vsys1,trust,untrust,ethernet1/2,ethernet1/1,syslog-fwd,2026/11/27 10:00:01,123456,1,51234,22,40001,22,0x400064,tcp,allow,5120,2048,3072,30,2026/11/27 09:59:40,20,any,,7001,0x0,10.0.0.0-10.255.255.255,Germany,,15,15,tcp-fin,0,0,0,0,,pa-fw1,from-policy,,,0,,0,,N/A,0,0,0,0", ",")
	for i, v := range set {
		f[i] = v
	}
	return strings.Join(f, ",")
}

func TestPaloAlto(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	runCases(t, PaloAlto, []parseCase{
		{
			name: "syslog",
			line: "Nov 27 10:00:01 pa-fw1 " + panTraffic(nil),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "rfc5424 syslog",
			line: "<14>1 2026-11-27T10:00:01+01:00 pa-fw1 - - - - " + panTraffic(nil),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "csv export",
			line: panTraffic(nil),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "generated time, not receive time, in Location",
			line: panTraffic(map[int]string{1: "2026/11/27 10:05:00", 6: "2026/11/27 10:00:01"}),
			opts: &Options{Location: est},
			want: rec("2026-11-27T15:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "destination before NAT",
			line: panTraffic(map[int]string{8: "45.83.0.99", 10: "10.1.1.1", 27: "8022"}),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.99", 22, "tcp"),
		},
		{
			name: "quoted fields with commas and quotes",
			line: panTraffic(map[int]string{11: `"allow web, and mail"`, 12: `"corp\bob ""the builder"", ops"`, 14: `"web-browsing"`}),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "every field quoted",
			line: `"1","2026/11/27 10:00:01","012801000001","TRAFFIC","deny","2561","2026/11/27 10:00:01","10.0.0.5","45.83.0.24","","","block-smtp","","","smtp","vsys1","trust","untrust","ethernet1/2","ethernet1/1","fwd","2026/11/27 10:00:01","1","1","40101","25","0","0","0x0","tcp","deny"`,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.24", 25, "tcp"),
		},
		{
			name: "ipv6",
			line: panTraffic(map[int]string{7: "2001:db8:10::5", 8: "2a0c:9a40:1000::21", 9: "", 10: "", 25: "443"}),
			want: rec("2026-11-27T09:00:01Z", "2001:db8:10::5", "2a0c:9a40:1000::21", 443, "tcp"),
		},
		{
			name: "icmp",
			line: panTraffic(map[int]string{24: "0", 25: "0", 29: "icmp", 14: "ping"}),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 0, "icmp"),
		},
		{
			name: "udp, drop",
			line: panTraffic(map[int]string{4: "drop", 25: "53", 29: "udp", 30: "drop"}),
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 53, "udp"),
		},
		{
			name: "ipv6-icmp",
			line: panTraffic(map[int]string{7: "2001:db8:10::5", 8: "2a0c:9a40:1000::21", 25: "0", 29: "ipv6-icmp"}),
			want: rec("2026-11-27T09:00:01Z", "2001:db8:10::5", "2a0c:9a40:1000::21", 0, "icmpv6"),
		},
		{
			name: "exactly 30 fields, empty port and time",
			line: strings.Join(strings.Split(panTraffic(map[int]string{6: "", 25: ""}), ",")[:30], ","),
			want: rec("", "10.0.0.5", "45.83.0.21", 0, "tcp"),
		},
		{name: "export header", line: "Domain,Receive Time,Serial #,Type,Threat/Content Type,Config Version,Generate Time,Source address,Destination address", skip: true},
		{name: "quoted export header", line: `"Domain","Receive Time","Serial #","Type"`, skip: true},
		{name: "documentation header", line: "FUTURE_USE, Receive Time, Serial Number, Type, Threat/Content Type", skip: true},
		{name: "threat", line: panTraffic(map[int]string{3: "THREAT", 4: "url"}), err: `not a traffic log (type="THREAT")`},
		{name: "system", line: "Nov 27 10:00:12 pa-fw1 1,2026/11/27 10:00:12,012801000001,SYSTEM,general,2561,2026/11/27 10:00:12,,general,,0,0,general,informational,\"User admin logged in\",7006,0x0", err: `not a traffic log (type="SYSTEM")`},
		{name: "truncated", line: strings.Join(strings.Split(panTraffic(nil), ",")[:29], ","), err: "truncated: 29 fields, want at least 30"},
		{name: "bad source", line: panTraffic(map[int]string{7: "10.0.0"}), err: `bad source address "10.0.0"`},
		{name: "bad destination", line: panTraffic(map[int]string{8: "host.example"}), err: `bad destination address "host.example"`},
		{name: "bad port", line: panTraffic(map[int]string{25: "-1"}), err: `bad destination port "-1"`},
		{name: "bad time", line: panTraffic(map[int]string{6: "27/11/2026 10:00:01"}), err: "bad generated time"},
		{name: "unterminated quote", line: panTraffic(map[int]string{12: `"corp\carol`}), err: "unterminated quoted field 13"},
		{name: "text after a quote", line: panTraffic(map[int]string{11: `"rule"x`}), err: "text after quoted field 12"},
		{name: "garbage", line: "hello, world", err: "not a PAN-OS CSV log: too few fields (2)"},
		{name: "no commas", line: "hello world", err: "not a PAN-OS CSV log: too few fields (1)"},
		{name: "comment", line: "# export of 2026-11-27", skip: true},
	})
}
