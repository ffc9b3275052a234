package connlog

import (
	"testing"
	"time"
)

const nfBody = "IN=eth0 OUT=eth1 MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=10.0.0.5 DST=45.83.0.21 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0"

func TestNetfilter(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	runCases(t, Netfilter, []parseCase{
		{
			name: "syslog tcp",
			line: "Nov 27 10:00:01 fw1 kernel: [12345.678901] FWD-ACCEPT " + nfBody,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "rfc3339 syslog with offset ignores Location",
			line: "2026-11-27T10:00:01.123456+01:00 fw1 kernel: DROP " + nfBody,
			opts: &Options{Location: est},
			want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "rfc3339 without colon in offset (journalctl short-iso)",
			line: "2026-11-27T10:00:01+0100 fw1 kernel: DROP " + nfBody,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "rfc5424",
			line: "<4>1 2026-11-27T09:00:01Z fw1 kernel - - - DROP " + nfBody,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "priority and space-padded day",
			line: "<4>Nov  7 10:00:01 fw1 kernel: DROP " + nfBody,
			want: rec("2026-11-07T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "fractional syslog seconds (journalctl short-precise)",
			line: "Nov 27 10:00:01.250000 fw1 kernel: DROP " + nfBody,
			want: rec("2026-11-27T09:00:01.25Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "syslog time in Location",
			line: "Nov 27 10:00:01 fw1 kernel: DROP " + nfBody,
			opts: &Options{Location: est, Year: 2026},
			want: rec("2026-11-27T15:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "december line read in january is last year",
			line: "Dec 31 23:59:59 fw1 kernel: DROP " + nfBody,
			opts: at("2027-01-01T00:30:00+01:00"),
			want: rec("2026-12-31T22:59:59Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "january line read in january is this year",
			line: "Jan  1 00:00:01 fw1 kernel: DROP " + nfBody,
			opts: at("2027-01-01T00:30:00+01:00"),
			want: rec("2026-12-31T23:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "december line read in december is this year",
			line: "Dec 31 23:59:59 fw1 kernel: DROP " + nfBody,
			opts: at("2026-12-31T23:59:59+01:00"),
			want: rec("2026-12-31T22:59:59Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "the current month is judged in Location",
			line: "Jan  1 00:00:01 fw1 kernel: DROP " + nfBody,
			opts: at("2026-12-31T23:30:00Z"), // already January in CET
			want: rec("2026-12-31T23:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "Year option wins",
			line: "Dec 31 23:59:59 fw1 kernel: DROP " + nfBody,
			opts: &Options{Year: 2030, Location: time.UTC},
			want: rec("2030-12-31T23:59:59Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "february 29 outside a leap year has no time",
			line: "Feb 29 10:00:00 fw1 kernel: DROP " + nfBody,
			opts: &Options{Year: 2026},
			want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "dmesg without wall time",
			line: "[12345.678901] DROP " + nfBody,
			want: rec("", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "dmesg -T",
			line: "[Sat Nov  7 10:00:01 2026] DROP " + nfBody,
			want: rec("2026-11-07T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "bare fields",
			line: "SRC=10.0.0.5 DST=45.83.0.21 PROTO=UDP SPT=5000 DPT=53",
			want: rec("", "10.0.0.5", "45.83.0.21", 53, "udp"),
		},
		{
			name: "ipv6 in full form",
			line: "Nov 27 10:00:01 fw1 kernel: V6 IN=eth0 OUT=eth1 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2a0c:9a40:0001:0000:0000:0000:0000:0021 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=TCP SPT=51000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0",
			want: rec("2026-11-27T09:00:01Z", "2001:db8::1", "2a0c:9a40:1::21", 443, "tcp"),
		},
		{
			name: "icmp has no port",
			line: "Nov 27 10:00:01 fw1 kernel: ICMP IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=45.83.0.40 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.40", 0, "icmp"),
		},
		{
			name: "icmp error quotes the packet it is about",
			line: "Nov 27 10:00:01 fw1 kernel: ICMP IN=eth1 OUT=eth0 SRC=10.0.0.1 DST=45.83.0.30 LEN=96 TOS=0x00 PREC=0xC0 TTL=64 ID=6001 PROTO=ICMP TYPE=3 CODE=3 [SRC=45.83.0.30 DST=10.0.0.1 LEN=68 TOS=0x00 PREC=0x00 TTL=1 ID=6000 PROTO=UDP SPT=45000 DPT=33434 LEN=48 ]",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.1", "45.83.0.30", 0, "icmp"),
		},
		{
			name: "icmpv6",
			line: "Nov 27 10:00:01 fw1 kernel: V6 IN=eth0 OUT=eth1 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2a0c:9a40:0001:0000:0000:0000:0000:0021 LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=1 SEQ=1",
			want: rec("2026-11-27T09:00:01Z", "2001:db8::1", "2a0c:9a40:1::21", 0, "icmpv6"),
		},
		{
			name: "numeric protocol",
			line: "Nov 27 10:00:01 fw1 kernel: X IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=45.83.0.53 LEN=60 PROTO=17 SPT=5353 DPT=5353 LEN=40",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.53", 5353, "udp"),
		},
		{
			name: "unnamed protocol number",
			line: "Nov 27 10:00:01 fw1 kernel: X IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=45.83.0.53 LEN=60 PROTO=253",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.53", 0, "253"),
		},
		{
			name: "prefix without a trailing space",
			line: "Nov 27 10:00:01 fw1 kernel: DROP" + nfBody,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "fragment without ports",
			line: "Nov 27 10:00:01 fw1 kernel: F IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=45.83.0.31 LEN=1500 TTL=63 ID=14 MF FRAG:185 PROTO=UDP INCOMPLETE [1480 bytes]",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.31", 0, "udp"),
		},
		{
			name: "crlf and tabs",
			line: "Nov 27 10:00:01 fw1 kernel:\tDROP\t" + nfBody + "\r",
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{name: "truncated", line: "Nov 27 10:00:01 fw1 kernel: DROP IN=eth0 OUT=eth1 SRC=10.0.0.5 DS", err: "no DST= field"},
		{name: "no source", line: "Nov 27 10:00:01 fw1 kernel: DROP IN=eth0 DST=45.83.0.21 PROTO=TCP", err: "no SRC= field"},
		{name: "other kernel message", line: "Nov 27 10:00:01 fw1 kernel: eth0: link up", err: "not a netfilter LOG line"},
		{name: "arp", line: "Nov 27 10:00:01 fw1 kernel: ARP IN=eth0 OUT= ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 IPSRC=10.0.0.1 IPDST=10.0.0.2", err: "not a netfilter LOG line"},
		{name: "bad source", line: "SRC=10.0.0.256 DST=45.83.0.21 PROTO=TCP DPT=22", err: `bad SRC= address "10.0.0.256"`},
		{name: "empty destination", line: "SRC=10.0.0.5 DST= PROTO=TCP DPT=22", err: `bad DST= address ""`},
		{name: "bad port", line: "SRC=10.0.0.5 DST=45.83.0.21 PROTO=TCP DPT=65536", err: `bad DPT= port "65536"`},
		{name: "garbage", line: "\x00\xff\xfe binary junk", err: "not a netfilter LOG line"},
		{name: "comment", line: "# iptables -j LOG", skip: true},
	})
}
