package connlog

import (
	"testing"
	"time"
)

func TestJSON(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	want := rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp")
	runCases(t, JSON, []parseCase{
		{name: "short names", line: `{"time":"2026-11-27T10:00:01+01:00","src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`, want: want},
		{name: "long names", line: `{"timestamp":"2026-11-27T09:00:01Z","source":"10.0.0.5","destination":"45.83.0.21","dst_port":22,"protocol":"TCP"}`, want: want},
		{name: "ip names", line: `{"ts":"2026-11-27T09:00:01Z","src_ip":"10.0.0.5","dst_ip":"45.83.0.21","dest_port":"22","transport":"tcp"}`, want: want},
		{name: "run-together names", line: `{"@timestamp":"2026-11-27T09:00:01Z","srcip":"10.0.0.5","dstip":"45.83.0.21","dstport":22,"proto":6}`, want: want},
		{name: "client and dest", line: `{"time":"2026-11-27T09:00:01Z","client":"10.0.0.5","dest":"45.83.0.21","port":22,"proto":"tcp"}`, want: want},
		{name: "flow exporter names", line: `{"time":"2026-11-27T09:00:01Z","src_addr":"10.0.0.5","dst_addr":"45.83.0.21","dst_port":22,"proto":"6"}`, want: want},
		{
			name: "ecs nested",
			line: `{"@timestamp":"2026-11-27T09:00:01.000Z","event":{"category":["network"]},"source":{"ip":"10.0.0.5","port":51234},"destination":{"ip":"45.83.0.21","port":22},"network":{"transport":"tcp","iana_number":"6","type":"ipv4"}}`,
			want: want,
		},
		{
			name: "ecs flat dotted keys",
			line: `{"@timestamp":"2026-11-27T09:00:01Z","source.ip":"10.0.0.5","source.port":51234,"destination.ip":"45.83.0.21","destination.port":22,"network.transport":"tcp"}`,
			want: want,
		},
		{
			name: "ecs iana number only",
			line: `{"@timestamp":"2026-11-27T09:00:01Z","source":{"ip":"10.0.0.5"},"destination":{"ip":"45.83.0.21","port":22},"network":{"iana_number":"17"}}`,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "udp"),
		},
		{
			name: "ecs destination.address",
			line: `{"@timestamp":"2026-11-27T09:00:01Z","source":{"address":"10.0.0.5"},"destination":{"address":"45.83.0.21","port":"22"},"network.transport":"tcp"}`,
			want: want,
		},
		{
			name: "zeek conn.log",
			line: `{"ts":1795770001.0,"uid":"CzY1x2abcDEF3ghi4","id.orig_h":"10.0.0.5","id.orig_p":51234,"id.resp_h":"45.83.0.21","id.resp_p":22,"proto":"tcp","conn_state":"S0"}`,
			want: want,
		},
		{name: "unix seconds", line: `{"ts":1795770001,"src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`, want: want},
		{
			name: "fractional unix seconds",
			line: `{"ts":1795770001.25,"src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`,
			want: rec("2026-11-27T09:00:01.25Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "unix milliseconds",
			line: `{"ts":1795770001250,"src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`,
			want: rec("2026-11-27T09:00:01.25Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{name: "unix seconds in exponent form", line: `{"ts":1.795770001e9,"src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`, want: want},
		{name: "unix seconds as a string", line: `{"ts":"1795770001","src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`, want: want},
		{
			name: "rfc 3339 with fraction",
			line: `{"time":"2026-11-27T10:00:01.123456789+01:00","src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "time without zone in Location",
			line: `{"time":"2026-11-27 10:00:01","src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`,
			opts: &Options{Location: est},
			want: rec("2026-11-27T15:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{name: "no time", line: `{"src":"10.0.0.5","dst":"45.83.0.21","dport":22,"proto":"tcp"}`, want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp")},
		{name: "no port, no protocol", line: `{"src":"10.0.0.5","dst":"45.83.0.21"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "port in the destination string", line: `{"src":"10.0.0.5","dst":"45.83.0.21:22","proto":"tcp"}`, want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp")},
		{
			name: "ipv6 with port",
			line: `{"src":"2001:db8:10::5","dst":"[2a0c:9a40:1000::21]:443","proto":"tcp"}`,
			want: rec("", "2001:db8:10::5", "2a0c:9a40:1000::21", 443, "tcp"),
		},
		{name: "a port field wins over the destination's", line: `{"src":"10.0.0.5","dst":"45.83.0.21:8080","dport":22,"proto":"tcp"}`, want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp")},
		{name: "icmp by number drops the port", line: `{"src":"10.0.0.5","dst":"45.83.0.21","port":8,"proto":1}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "icmp")},
		{name: "protocol number as a string", line: `{"src":"10.0.0.5","dst":"45.83.0.21","dport":53,"proto":"17"}`, want: rec("", "10.0.0.5", "45.83.0.21", 53, "udp")},
		{name: "unreadable protocol is unknown", line: `{"src":"10.0.0.5","dst":"45.83.0.21","dport":53,"proto":{"name":"x"}}`, want: rec("", "10.0.0.5", "45.83.0.21", 53, "")},
		{name: "first name wins", line: `{"src":"10.0.0.5","source":{"ip":"10.9.9.9"},"dst":"45.83.0.21","destination.ip":"45.83.0.99"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "a valid name wins over a bad one", line: `{"client":"laptop-42","source.ip":"10.0.0.5","dst":"45.83.0.21"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "nulls are absent", line: `{"src":null,"source":"10.0.0.5","dst":"45.83.0.21","dport":null,"proto":null,"time":null}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "network that is not an object", line: `{"src":"10.0.0.5","dst":"45.83.0.21","network":"corp","proto":"tcp"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "tcp")},
		{name: "escapes in values", line: `{"src":"10.0.0.\u0035","dst":"45.83.0.21","note":"a \"quoted\", comma"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "mapped ipv4", line: `{"src":"::ffff:10.0.0.5","dst":"45.83.0.21"}`, want: rec("", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "keys in capitals", line: `{"SRC":"10.0.0.5","Dst":"45.83.0.21","DPort":22,"PROTO":"tcp"}`, want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp")},
		{name: "truncated", line: `{"time":"2026-11-27T10:00:14+01:00","src":"10.0.0.17","dst":"45.83.0.31","dport":22,"pro`, err: "bad JSON at byte"},
		{name: "trailing garbage", line: `{"src":"10.0.0.5","dst":"45.83.0.21"} x`, err: "bad JSON"},
		{name: "array", line: `["10.0.0.5","45.83.0.21"]`, err: "not a JSON object"},
		{name: "text", line: `not json`, err: "not a JSON object"},
		{name: "no source", line: `{"dst":"45.83.0.21"}`, err: "no source address field"},
		{name: "no destination", line: `{"src":"10.0.0.5","destination":{"domain":"example.com"}}`, err: "no destination address field"},
		{name: "bad source", line: `{"src":"10.0.0.300","dst":"45.83.0.21"}`, err: `bad source address "10.0.0.300"`},
		{name: "source a number", line: `{"src":167772165,"dst":"45.83.0.21"}`, err: "bad source address 167772165"},
		{name: "bad destination", line: `{"src":"10.0.0.5","dst":{"ip":"example.com"}}`, err: `bad destination address "example.com"`},
		{name: "bad port", line: `{"src":"10.0.0.5","dst":"45.83.0.21","dport":"ssh"}`, err: `bad destination port "ssh"`},
		{name: "port out of range", line: `{"src":"10.0.0.5","dst":"45.83.0.21","dport":70000}`, err: "bad destination port 70000"},
		{name: "bad time", line: `{"time":"yesterday","src":"10.0.0.5","dst":"45.83.0.21"}`, err: `bad time "yesterday"`},
		{name: "negative time", line: `{"ts":-5,"src":"10.0.0.5","dst":"45.83.0.21"}`, err: "bad time -5"},
		{name: "empty object", line: `{}`, err: "no source address field"},
		{name: "blank", line: "\t", skip: true},
	})
}
