package connlog

import (
	"testing"
	"time"
)

const fgHead = `date=2026-11-27 time=10:00:01 eventtime=1795770001123456789 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" `

func TestFortiGate(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	runCases(t, FortiGate, []parseCase{
		{
			name: "forward traffic",
			line: fgHead + `srcip=10.0.0.5 srcport=51234 srcintf="port2" srcintfrole="lan" dstip=45.83.0.21 dstport=22 dstintf="port1" dstintfrole="wan" sessionid=81234567 proto=6 action="accept" policyid=12 service="SSH" duration=20 sentbyte=2048 rcvdbyte=3072`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "eventtime in microseconds",
			line: `date=2026-11-27 time=10:00:01 eventtime=1795770001123456 tz="+0100" type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T09:00:01.123456Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "eventtime in seconds",
			line: `date=2026-11-27 time=10:00:01 eventtime=1795770001 tz="+0100" type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "eventtime wins over date and time",
			line: `date=2020-01-01 time=00:00:00 eventtime=1795770001 type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "date and time at the tz offset",
			line: `date=2026-11-27 time=10:00:01 tz="-0500" logid="0000000013" type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T15:00:01Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "tz with a colon",
			line: `date=2026-11-27 time=10:00:01 tz="+05:30" type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T04:30:01Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "date and time without tz in Location",
			line: `date=2026-11-27 time=10:00:01 logid=0000000013 type=traffic subtype=forward level=notice vd=root srcip=10.0.0.5 srcport=51234 srcintf="internal" dstip=45.83.0.21 dstport=80 dstintf="wan1" proto=6 action=close`,
			opts: &Options{Location: est},
			want: rec("2026-11-27T15:00:01Z", "10.0.0.5", "45.83.0.21", 80, "tcp"),
		},
		{
			name: "tz that is not an offset falls back to Location",
			line: `date=2026-11-27 time=10:00:01 tz="Europe/Berlin" type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("2026-11-27T09:00:01Z", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "no time at all",
			line: `type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=443 proto=6`,
			want: rec("", "10.0.0.5", "45.83.0.21", 443, "tcp"),
		},
		{
			name: "quoted values with spaces, escaped quotes and key=value text",
			line: fgHead + `srcname="printer \"lobby\" dstip=10.9.9.9 proto=17" srcip=10.0.0.5 srcintf="LAN side, floor 2" dstip=45.83.0.21 dstport=993 proto=6 msg="a \\ backslash"`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 993, "tcp"),
		},
		{
			name: "syslog priority",
			line: `<189>` + fgHead + `srcip=10.0.0.5 dstip=45.83.0.21 dstport=8443 proto=6`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 8443, "tcp"),
		},
		{
			name: "syslog header",
			line: `Nov 27 10:00:07 10.0.0.1 ` + fgHead + `srcip=10.0.0.5 dstip=45.83.0.21 dstport=25 proto=6`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 25, "tcp"),
		},
		{
			name: "udp",
			line: fgHead + `srcip=10.0.0.5 srcport=53001 dstip=45.83.0.53 dstport=53 proto=17 service="DNS"`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.53", 53, "udp"),
		},
		{
			name: "icmp without ports",
			line: fgHead + `srcip=10.0.0.5 dstip=45.83.0.40 proto=1 service="PING" icmpid="0x0007" icmptype="0x08" icmpcode="0x00"`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.40", 0, "icmp"),
		},
		{
			name: "ipv6",
			line: fgHead + `srcip=2001:db8:10::5 srcport=51000 dstip=2a0c:9a40:1000::21 dstport=443 proto=6`,
			want: rec("2026-11-27T09:00:01.123456789Z", "2001:db8:10::5", "2a0c:9a40:1000::21", 443, "tcp"),
		},
		{
			name: "truncated in a quoted value after every field",
			line: fgHead + `srcip=10.0.0.5 dstip=45.83.0.21 dstport=22 proto=6 action="acc`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 22, "tcp"),
		},
		{
			name: "no protocol",
			line: fgHead + `srcip=10.0.0.5 dstip=45.83.0.21 dstport=22`,
			want: rec("2026-11-27T09:00:01.123456789Z", "10.0.0.5", "45.83.0.21", 22, ""),
		},
		{name: "event log", line: `date=2026-11-27 time=10:00:13 logid="0100032001" type="event" subtype="system" srcip=10.0.0.2 dstip=10.0.0.1`, err: `not a traffic log (type="event")`},
		{name: "utm log", line: `date=2026-11-27 time=10:00:14 logid="0316013056" type="utm" subtype="webfilter" srcip=10.0.0.16 dstip=45.83.0.29 dstport=443 proto=6`, err: `not a traffic log (type="utm")`},
		{name: "no type", line: `date=2026-11-27 time=10:00:01 srcip=10.0.0.5 dstip=45.83.0.21`, err: "no type= field"},
		{name: "truncated", line: fgHead + `srcip=10.0.0.5 srcport=51234 srci`, err: "no dstip= field"},
		{name: "no source", line: fgHead + `dstip=45.83.0.21 dstport=22 proto=6`, err: "no srcip= field"},
		{name: "bad source", line: fgHead + `srcip=10.0.0.300 dstip=45.83.0.21 dstport=22 proto=6`, err: `bad srcip "10.0.0.300"`},
		{name: "empty destination", line: fgHead + `srcip=10.0.0.5 dstip= dstport=22 proto=6`, err: `bad dstip ""`},
		{name: "bad port", line: fgHead + `srcip=10.0.0.5 dstip=45.83.0.21 dstport=http proto=6`, err: `bad dstport "http"`},
		{name: "bad eventtime", line: `eventtime=17957700010000000000000 type="traffic" srcip=10.0.0.5 dstip=45.83.0.21`, err: "bad eventtime"},
		{name: "bad date", line: `date=2026-02-30 time=10:00:01 type="traffic" srcip=10.0.0.5 dstip=45.83.0.21`, err: "bad date/time"},
		{name: "garbage", line: "this is not a FortiGate log line", err: "no type= field"},
		{name: "only an equals sign", line: "=", err: "no type= field"},
		{name: "blank", line: "   ", skip: true},
	})
}
