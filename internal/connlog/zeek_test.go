package connlog

import (
	"slices"
	"strings"
	"testing"
)

// zeekHeader is the header Zeek writes at the top of conn.log.
const zeekHeader = "#separator \\x09\n" +
	"#set_separator\t,\n" +
	"#empty_field\t(empty)\n" +
	"#unset_field\t-\n" +
	"#path\tconn\n" +
	"#open\t2026-11-27-10-00-00\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n" +
	"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n"

// zeekRecord is a conn.log TSV record in the default column order.
func zeekRecord(ts, origH, respH, respP, proto string) string {
	return strings.Join([]string{ts, "CHhAvVGS1DHFjwGM9", origH, "51234", respH, respP, proto, "ssl", "2.105432", "1830", "5120", "SF", "T", "F", "0", "ShADadFf", "12", "2462", "10", "5652", "-"}, "\t")
}

// Single lines, read by a Parser that has seen no header (a file followed
// from its end): the default columns.
func TestZeekLines(t *testing.T) {
	want := rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 443, "tcp")
	runCases(t, Zeek, []parseCase{
		{name: "tsv", line: zeekRecord("1795770001.123456", "10.0.0.5", "45.83.0.21", "443", "tcp"), want: want},
		{name: "tsv ipv6", line: zeekRecord("1795770001.123456", "2001:db8::5", "2a00:1450:4001:829::200e", "443", "tcp"), want: rec("2026-11-27T09:00:01.123456Z", "2001:db8::5", "2a00:1450:4001:829::200e", 443, "tcp")},
		{name: "tsv icmp: the port column holds the code", line: zeekRecord("1795770001.123456", "10.0.0.5", "45.83.0.21", "0", "icmp"), want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 0, "icmp")},
		{name: "tsv unset port and proto", line: zeekRecord("1795770001.123456", "10.0.0.5", "45.83.0.21", "-", "-"), want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "tsv unset ts", line: zeekRecord("-", "10.0.0.5", "45.83.0.21", "443", "tcp"), want: rec("", "10.0.0.5", "45.83.0.21", 443, "tcp")},
		{name: "tsv just the columns read", line: "1795770001.123456\tC1\t10.0.0.5\t51234\t45.83.0.21\t443\ttcp", want: want},
		{name: "tsv unset address", line: zeekRecord("1795770001.123456", "10.0.0.5", "-", "443", "tcp"), err: `bad id.resp_h "-"`},
		{name: "tsv bad address", line: zeekRecord("1795770001.123456", "10.0.0", "45.83.0.21", "443", "tcp"), err: `bad id.orig_h "10.0.0"`},
		{name: "tsv bad port", line: zeekRecord("1795770001.123456", "10.0.0.5", "45.83.0.21", "65536", "tcp"), err: `bad id.resp_p "65536"`},
		{name: "tsv bad ts", line: zeekRecord("2026-11-27", "10.0.0.5", "45.83.0.21", "443", "tcp"), err: `bad ts "2026-11-27"`},
		{name: "tsv truncated", line: "1795770001.123456\tC1\t10.0.0.5\t51234", err: "truncated: 4 columns, want at least 7"},
		{name: "not tsv", line: "Nov 27 10:00:01 zeek1 something happened", err: "truncated"},
		{name: "header", line: "#open\t2026-11-27-10-00-00", skip: true},
		{
			name: "json",
			line: `{"ts":1795770001.123456,"uid":"CHhAvVGS1DHFjwGM9","id.orig_h":"10.0.0.5","id.orig_p":51234,"id.resp_h":"45.83.0.21","id.resp_p":443,"proto":"tcp","service":"ssl","duration":2.105432,"orig_bytes":1830,"resp_bytes":5120,"conn_state":"SF","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"ShADadFf","orig_pkts":12,"orig_ip_bytes":2462,"resp_pkts":10,"resp_ip_bytes":5652}`,
			want: want,
		},
		{
			name: "json iso8601 ts, ipv6",
			line: `{"ts":"2026-11-27T09:00:01.123456Z","uid":"C1","id.orig_h":"2001:db8::5","id.orig_p":51234,"id.resp_h":"2001:db8:ffff::1","id.resp_p":22,"proto":"tcp"}`,
			want: rec("2026-11-27T09:00:01.123456Z", "2001:db8::5", "2001:db8:ffff::1", 22, "tcp"),
		},
		{name: "json unset fields are absent", line: `{"ts":1795770001.123456,"uid":"C1","id.orig_h":"10.0.0.5","id.resp_h":"45.83.0.21"}`, want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 0, "")},
		{name: "json without the responder", line: `{"ts":1795770001.123456,"uid":"C1","id.orig_h":"10.0.0.5","id.resp_p":443}`, err: "no destination address"},
		{name: "json truncated", line: `{"ts":1795770001.123456,"uid":"C1","id.orig_h":"10.0.`, err: "bad JSON"},
	})
}

// A Zeek file is read by its headers, which may change mid-file: a new
// column order, another separator or unset marker, another log's #path.
func TestZeekHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []string // the outcome of each line
	}{
		{
			name: "conn.log as Zeek writes it",
			text: zeekHeader + zeekRecord("1795770001.123456", "10.0.0.5", "45.83.0.21", "443", "tcp") + "\n#close\t2026-11-27-11-00-00",
			want: append(slices.Repeat([]string{"skip header"}, 8), "ok 2026-11-27T09:00:01.123456Z 10.0.0.5 45.83.0.21 443 tcp", "skip header"),
		},
		{
			name: "columns reordered after a restart",
			text: zeekHeader + zeekRecord("1795770001", "10.0.0.5", "45.83.0.21", "443", "tcp") + "\n" +
				"#fields\tuid\tid.resp_p\tid.resp_h\tproto\tid.orig_h\tts\n" +
				"C2\t22\t45.83.0.22\tudp\t10.0.0.6\t1795770002\n",
			want: append(slices.Repeat([]string{"skip header"}, 8), "ok 2026-11-27T09:00:01Z 10.0.0.5 45.83.0.21 443 tcp", "skip header", "ok 2026-11-27T09:00:02Z 10.0.0.6 45.83.0.22 22 udp"),
		},
		{
			name: "another separator and unset marker",
			text: "#separator \\x2c\n#unset_field,NONE\n#fields,ts,id.orig_h,id.resp_h,id.resp_p,proto\n1795770001,10.0.0.5,45.83.0.21,NONE,NONE\n1795770001,10.0.0.5,45.83.0.21,-,tcp\n",
			want: append(slices.Repeat([]string{"skip header"}, 3), "ok 2026-11-27T09:00:01Z 10.0.0.5 45.83.0.21 0 ", "error bad id.resp_p \"-\""),
		},
		{
			name: "a dns.log is not read as connections",
			text: "#path\tdns\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\tquery\n1795770001\tC1\t10.0.0.5\t40001\t10.0.0.1\t53\tudp\t4660\texample.com\n#path\tconn\n" + zeekRecord("1795770001", "10.0.0.5", "45.83.0.21", "443", "tcp"),
			want: []string{"skip header", "skip header", `error not a conn.log record (#path "dns")`, "skip header", "ok 2026-11-27T09:00:01Z 10.0.0.5 45.83.0.21 443 tcp"},
		},
		{
			name: "fields without addresses break the records under them",
			text: "#fields\tts\tuid\tproto\n1795770001\tC1\ttcp\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n1795770001\tC1\t10.0.0.5\t1\t45.83.0.21\t443\ttcp",
			want: []string{"error #fields without id.orig_h or id.resp_h in the first 64 columns", "error the #fields header has no id.orig_h or id.resp_h in its first 64 columns", "skip header", "ok 2026-11-27T09:00:01Z 10.0.0.5 45.83.0.21 443 tcp"},
		},
		{
			name: "bad separator keeps the old one",
			text: "#separator tab\n" + zeekRecord("1795770001", "10.0.0.5", "45.83.0.21", "443", "tcp"),
			want: []string{`error bad #separator "tab"`, "ok 2026-11-27T09:00:01Z 10.0.0.5 45.83.0.21 443 tcp"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestParser(t, Zeek, testOpts)
			lines := strings.Split(strings.TrimSuffix(tc.text, "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, %d outcomes", len(lines), len(tc.want))
			}
			for i, line := range lines {
				if got := outcome(p.Parse([]byte(line))); got != tc.want[i] {
					t.Errorf("line %d %.60q: %s, want %s", i+1, line, got, tc.want[i])
				}
			}
		})
	}
}
