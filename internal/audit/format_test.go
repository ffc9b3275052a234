package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cefRecord is a parsed CEF line.
type cefRecord struct {
	Header []string // version, vendor, product, device version, signature, name, severity
	Ext    map[string]string
}

// parseCEF parses one CEF line the way a receiver would: seven
// pipe-separated header fields (\| and \\ escaped), then key=value pairs
// whose values run to the next unescaped "=" preceded by a key.
func parseCEF(t *testing.T, line string) cefRecord {
	t.Helper()
	if strings.ContainsAny(line, "\n\r") {
		t.Fatalf("CEF line spans lines: %q", line)
	}
	if !strings.HasPrefix(line, "CEF:") {
		t.Fatalf("not CEF: %q", line)
	}
	var r cefRecord
	var cur strings.Builder
	i := len("CEF:")
	for ; len(r.Header) < 7 && i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line) && (line[i+1] == '|' || line[i+1] == '\\'):
			cur.WriteByte(line[i+1])
			i++
		case c == '|':
			r.Header = append(r.Header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(r.Header) != 7 {
		t.Fatalf("CEF header has %d fields: %q", len(r.Header), line)
	}
	r.Ext = map[string]string{}
	ext := line[i:]
	// Each unescaped '=' ends a key: the word before it.
	var key string
	cur.Reset()
	for j := 0; j < len(ext); j++ {
		c := ext[j]
		if c == '\\' && j+1 < len(ext) {
			switch ext[j+1] {
			case '\\', '=':
				cur.WriteByte(ext[j+1])
			case 'n':
				cur.WriteByte('\n')
			case 'r':
				cur.WriteByte('\r')
			default:
				t.Fatalf("bad escape \\%c in %q", ext[j+1], ext)
			}
			j++
			continue
		}
		if c != '=' {
			cur.WriteByte(c)
			continue
		}
		s := cur.String()
		sp := strings.LastIndexByte(s, ' ')
		next := s[sp+1:]
		if key != "" {
			if sp < 0 {
				t.Fatalf("no space before key %q in %q", next, ext)
			}
			r.Ext[key] = s[:sp]
		} else if sp >= 0 {
			t.Fatalf("text before the first key in %q", ext)
		}
		key = next
		cur.Reset()
	}
	if key != "" {
		r.Ext[key] = cur.String()
	}
	return r
}

// hostile has every character the formats must escape.
var hostile = Entry{
	Time: fixed, Kind: KindBlock, Decision: "dang|er\\ous", IP: "203.0.113.7", Client: "192.0.2.10",
	Event: "ev=1|2", Ref: "JIRA-1\\n", Qname: "evil.example.\nrt=0 src=6.6.6.6", Reasons: []string{"score=high", "tor|vpn"},
	TTL: 3600, Actor: "admin\\ =x", Detail: "line1\r\nline2 dst=1.1.1.1 \\= \u2028",
	Labels: map[string]string{"rule.id": "a=b;c", "host": "ws|1"},
}

func TestCEFEscapesHostileValues(t *testing.T) {
	m := Meta{Host: "dns|1", Version: "v1.2\\3|4"}
	line := CEF(hostile, m)
	r := parseCEF(t, line)
	wantHeader := []string{"0", "coredns-cip", "coredns-cip", "v1.2\\3|4", "block", "block 203.0.113.7", "8"}
	for i, w := range wantHeader {
		if r.Header[i] != w {
			t.Errorf("header[%d] = %q, want %q (line %q)", i, r.Header[i], w, line)
		}
	}
	want := map[string]string{
		"rt": "1772366400000", "act": "block", "src": "192.0.2.10", "dst": "203.0.113.7",
		"dhost": "evil.example.\nrt=0 src=6.6.6.6", "suser": "admin\\ =x", "msg": "line1\r\nline2 dst=1.1.1.1 \\=  ",
		"dvchost": "dns|1", "reason": "score=high, tor|vpn", "externalId": "ev=1|2",
		"cs1Label": "decision", "cs1": "dang|er\\ous", "cs3Label": "ref", "cs3": "JIRA-1\\n",
		"cs4Label": "labels", "cs4": "host=ws|1;rule.id=a=b;c", "cn1Label": "ttl", "cn1": "3600",
	}
	for k, w := range want {
		if r.Ext[k] != w {
			t.Errorf("%s = %q, want %q\nline %q", k, r.Ext[k], w, line)
		}
	}
	if _, ok := r.Ext["cs2"]; ok {
		t.Errorf("cs2 (non-IP target) set for an IP: %q", line)
	}
}

func TestCEFKinds(t *testing.T) {
	for _, tc := range []struct {
		e        Entry
		sev      string
		ext      map[string]string
		nonempty []string
	}{
		{Entry{Time: fixed, Kind: KindVerdict, IP: "2001:db8::1", Client: "10.0.0.1"}, "7", map[string]string{"dst": "2001:db8::1"}, nil},
		{Entry{Time: fixed, Kind: KindBlock, IP: "198.51.100.0/24", Actor: "ops"}, "8", map[string]string{"cs2Label": "target", "cs2": "198.51.100.0/24", "suser": "ops"}, nil},
		{Entry{Time: fixed, Kind: KindAllow, IP: "example.com"}, "3", map[string]string{"cs2": "example.com", "outcome": "success"}, nil},
		{Entry{Time: fixed, Kind: KindHookFailed, IP: "203.0.113.1", Detail: "nft: boom"}, "5", map[string]string{"outcome": "failure", "msg": "nft: boom"}, nil},
	} {
		r := parseCEF(t, CEF(tc.e, Meta{Version: "dev"}))
		if r.Header[6] != tc.sev {
			t.Errorf("%s: severity %s, want %s", tc.e.Kind, r.Header[6], tc.sev)
		}
		for k, w := range tc.ext {
			if r.Ext[k] != w {
				t.Errorf("%s: %s = %q, want %q", tc.e.Kind, k, r.Ext[k], w)
			}
		}
		if _, ok := r.Ext["dst"]; ok && r.Ext["cs2"] != "" {
			t.Errorf("%s: both dst and cs2 for %q", tc.e.Kind, tc.e.IP)
		}
	}
}

// field walks a decoded JSON object along a dotted path; ECS keys with
// dots in their names ("@timestamp") are not walked into.
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}

func TestECSFields(t *testing.T) {
	line, err := Encode(FormatECS, hostile, Meta{Host: "dns1", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(line), "\n\r\u2028") {
		t.Fatalf("ECS line spans lines: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	for path, want := range map[string]any{
		"@timestamp": "2026-03-01T12:00:00Z", "ecs.version": ECSVersion,
		"event.kind": "alert", "event.action": "block", "event.outcome": "success", "event.reason": "score=high, tor|vpn",
		"event.id": "ev=1|2", "event.end": "2026-03-01T13:00:00Z",
		"source.ip": "192.0.2.10", "destination.ip": "203.0.113.7", "dns.question.name": hostile.Qname,
		"rule.name": "dang|er\\ous", "threat.indicator.ip": "203.0.113.7", "threat.indicator.type": "ipv4-addr",
		"user.name": "admin\\ =x", "labels.rule_id": "a=b;c", "labels.host": "ws|1", "labels.ref": "JIRA-1\\n",
		"observer.product": "coredns-cip", "observer.version": "v1", "observer.hostname": "dns1", "host.name": "dns1",
		"message": hostile.Detail,
	} {
		p := strings.Split(path, ".")
		if path == "@timestamp" {
			p = []string{path}
		}
		if got := field(m, p...); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
}

func TestECSKinds(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want map[string]any
	}{
		{Entry{Time: fixed, Kind: KindVerdict, IP: "2001:db8::1"}, map[string]any{"event.kind": "alert", "event.category": []any{"threat"}, "threat.indicator.type": "ipv6-addr"}},
		{Entry{Time: fixed, Kind: KindRewrite, IP: "203.0.113.1"}, map[string]any{"event.kind": "alert", "event.type": []any{"denied"}}},
		{Entry{Time: fixed, Kind: KindUnblock, IP: "198.51.100.0/24"}, map[string]any{"event.kind": "event", "labels.cidr": "198.51.100.0/24", "destination": nil}},
		{Entry{Time: fixed, Kind: KindAllow, IP: "example.com"}, map[string]any{"event.type": []any{"allowed"}, "destination.domain": "example.com", "threat": nil}},
		{Entry{Time: fixed, Kind: KindHookFailed}, map[string]any{"event.outcome": "failure", "event.kind": "event"}},
	} {
		line, err := Encode(FormatECS, tc.e, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		for path, want := range tc.want {
			got, _ := json.Marshal(field(m, strings.Split(path, ".")...))
			w, _ := json.Marshal(want)
			if string(got) != string(w) {
				t.Errorf("%s: %s = %s, want %s", tc.e.Kind, path, got, w)
			}
		}
	}
}

// The json format is the Entry schema, unchanged: Encode and the file agree
// byte for byte.
func TestJSONFormatUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	l := openTest(t, path)
	l.Write(hostile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, err := Encode(FormatJSON, hostile, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(line)+"\n" {
		t.Errorf("file %q\nencode %q", data, line)
	}
	if !strings.HasPrefix(string(data), `{"time":"2026-03-01T12:00:00Z","kind":"block","decision":"dang|er\\ous"`) {
		t.Errorf("json schema changed: %s", data)
	}
}

func TestFileInCEFAndECS(t *testing.T) {
	for _, f := range []Format{FormatCEF, FormatECS} {
		path := filepath.Join(t.TempDir(), "a.log")
		l, err := OpenSpec(Spec{Path: path, Format: f})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(hostile)
		l.Write(Entry{Time: fixed, Kind: KindAllow, IP: "192.0.2.1"})
		_ = l.Close()
		data, _ := os.ReadFile(path)
		got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(got) != 2 {
			t.Fatalf("%s: %d lines: %q", f, len(got), data)
		}
		if f == FormatCEF {
			if r := parseCEF(t, got[1]); r.Header[4] != "allow" {
				t.Errorf("cef: %q", got[1])
			}
		} else if !json.Valid([]byte(got[0])) || !strings.Contains(got[1], `"action":"allow"`) {
			t.Errorf("ecs: %q", data)
		}
	}
}

func TestParseOption(t *testing.T) {
	var s Spec
	for _, args := range [][]string{
		{"/var/log/a.log", "format", "ecs"},
		{"syslog", "udp://127.0.0.1:514"},
		{"syslog", "tls://siem.example:6514", "format", "cef", "ca", "/etc/ca.pem", "app", "dns-audit"},
	} {
		if err := ParseOption(args, &s); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if s.Path != "/var/log/a.log" || s.Format != FormatECS || len(s.Syslog) != 2 ||
		s.Syslog[0] != (SyslogSpec{URL: "udp://127.0.0.1:514", Format: FormatJSON}) ||
		s.Syslog[1] != (SyslogSpec{URL: "tls://siem.example:6514", Format: FormatCEF, CA: "/etc/ca.pem", App: "dns-audit"}) {
		t.Errorf("%+v", s)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/other.log"}, "second file"},
		{[]string{"syslog", "udp://127.0.0.1:514"}, "given twice"},
		{[]string{"syslog", "tcp://h:1", "format", "xml"}, `format "xml"`},
		{[]string{"syslog"}, "want udp://"},
		{[]string{"syslog", "http://h:1"}, "scheme"},
		{[]string{"syslog", "tcp://h"}, "HOST:PORT"},
		{[]string{"syslog", "tcp://h:1", "ca", "/c"}, "tls:// only"},
		{[]string{"syslog", "tcp://h:1", "app", "a b"}, "app"},
		{[]string{"syslog", "tcp://h:1", "format"}, "needs a value"},
		{[]string{"syslog", "tcp://h:1", "colour", "red"}, "unknown argument"},
	} {
		s := Spec{Path: "/a", Syslog: []SyslogSpec{{URL: "udp://127.0.0.1:514"}}}
		err := ParseOption(tc.args, &s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
