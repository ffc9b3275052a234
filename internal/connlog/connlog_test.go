package connlog

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parsers' output")

// Test options: a fixed zone and a "now" in January, so that the December
// lines of the samples fall in the previous year.
var (
	cet      = time.FixedZone("CET", 3600)
	testNow  = time.Date(2027, time.January, 15, 12, 0, 0, 0, time.UTC)
	testOpts = Options{Location: cet, Now: func() time.Time { return testNow }}
)

func newTestParser(t testing.TB, f Format, opts Options) *Parser {
	t.Helper()
	p, err := NewParser(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleLines reads testdata/<format>.log.
func sampleLines(t testing.TB, f Format) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", string(f)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

// outcome renders what Parse made of a line, one line of a golden file.
func outcome(r Record, err error) string {
	var le *LineError
	switch {
	case err == nil:
		ts := "-"
		if !r.Time.IsZero() {
			ts = r.Time.Format(time.RFC3339Nano)
		}
		return fmt.Sprintf("ok %s %s %s %d %s", ts, r.Src, r.Dst, r.DPort, r.Proto)
	case errors.Is(err, ErrSkip):
		return "skip " + err.(*LineError).Reason
	case errors.As(err, &le):
		return "error " + le.Reason
	default:
		return "unexpected error type " + err.Error()
	}
}

// TestSamples parses every sample file and compares each line's outcome
// with the golden file next to it (go test -update rewrites them).
func TestSamples(t *testing.T) {
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			p := newTestParser(t, f, testOpts)
			var got strings.Builder
			var records, broken int
			for i, line := range sampleLines(t, f) {
				r, err := p.Parse(line)
				fmt.Fprintf(&got, "%d: %s\n", i+1, outcome(r, err))
				var le *LineError
				switch {
				case err == nil:
					records++
					if !r.Src.IsValid() || !r.Dst.IsValid() {
						t.Errorf("line %d: record without addresses: %+v", i+1, r)
					}
				case errors.As(err, &le):
					if le.Format != f || le.Line != sample(trimLine(line)) || le.Reason == "" {
						t.Errorf("line %d: LineError %+v does not describe the line", i+1, le)
					}
					if !errors.Is(err, ErrSkip) {
						broken++
					}
				default:
					t.Errorf("line %d: error %v is not a *LineError", i+1, err)
				}
			}
			if records < 10 || broken < 3 {
				t.Errorf("%d records and %d broken lines; the samples should have at least 10 and 3", records, broken)
			}
			golden := filepath.Join("testdata", string(f)+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("outcomes differ from %s (go test -update rewrites it):\n%s", golden, lineDiff(string(want), got.String()))
			}
		})
	}
}

// lineDiff lists the lines that differ between two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "- %s\n+ %s\n", wl, gl)
		}
	}
	return b.String()
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
	}{
		{"json", JSON}, {"JSON", JSON}, {" ecs ", JSON}, {"ndjson", JSON},
		{"netfilter", Netfilter}, {"iptables", Netfilter}, {"nftables", Netfilter}, {"ufw", Netfilter},
		{"fortigate", FortiGate}, {"FortiGate", FortiGate}, {"fortios", FortiGate},
		{"paloalto", PaloAlto}, {"PAN-OS", PaloAlto}, {"panos", PaloAlto},
		{"suricata", Suricata}, {"EVE", Suricata}, {"suricata-eve", Suricata},
		{"zeek", Zeek}, {"Bro", Zeek}, {"zeek-conn", Zeek},
	} {
		got, err := ParseFormat(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, f := range Formats {
		if got, err := ParseFormat(string(f)); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	_, err := ParseFormat("cisco-asa")
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("ParseFormat(cisco-asa) error = %v, want ErrUnknownFormat", err)
	}
	for _, f := range Formats {
		if !strings.Contains(err.Error(), string(f)) {
			t.Errorf("error %q does not list %s", err, f)
		}
	}
}

func TestNewParserUnknownFormat(t *testing.T) {
	p, err := NewParser("cef", Options{})
	if p != nil || !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "json, netfilter, fortigate, paloalto") {
		t.Fatalf("NewParser(cef) = %v, %v; want ErrUnknownFormat listing the formats", p, err)
	}
}

// Blank lines and comments are skipped the same way in every format.
func TestSkipLines(t *testing.T) {
	for _, f := range Formats {
		p := newTestParser(t, f, Options{})
		for _, line := range []string{"", "   ", "\t\r", "\r", "# a comment", "  # indented comment", "\xef\xbb\xbf"} {
			_, err := p.Parse([]byte(line))
			var le *LineError
			if !errors.Is(err, ErrSkip) || !errors.As(err, &le) || le.Format != f {
				t.Errorf("%s: Parse(%q) error = %v, want a *LineError matching ErrSkip", f, line, err)
			}
		}
	}
}

func TestLineError(t *testing.T) {
	p := newTestParser(t, Netfilter, Options{})
	long := "kernel: " + strings.Repeat("é", 150) // 308 bytes, 2-byte runes
	_, err := p.Parse([]byte(long))
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a *LineError", err)
	}
	if errors.Is(err, ErrSkip) {
		t.Error("a broken line matches ErrSkip")
	}
	if len(le.Line) > 200 || !strings.HasPrefix(long, le.Line) || len(le.Line) < 198 {
		t.Errorf("Line is %d bytes %q, want the first 200 bytes cut on a rune boundary", len(le.Line), le.Line)
	}
	if got, want := le.Error(), "connlog: netfilter line: no SRC= and DST= fields: not a netfilter LOG line"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// A Record must not keep the caller's buffer alive or change with it.
func TestRecordDoesNotAliasLine(t *testing.T) {
	for _, f := range Formats {
		p := newTestParser(t, f, testOpts)
		// The first record: a Zeek sample starts with its header.
		lines := sampleLines(t, f)
		n := slices.IndexFunc(lines, func(l []byte) bool { _, err := p.Parse(l); return err == nil })
		if n < 0 {
			t.Fatalf("%s: no record in the sample", f)
		}
		line := append([]byte(nil), lines[n]...)
		want, err := p.Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range line {
			line[i] = 'x'
		}
		got, _ := p.Parse(lines[n])
		if got != want {
			t.Errorf("%s: record changed with its line: %+v, then %+v", f, want, got)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for invalid
	}{
		{"10.0.0.5", "10.0.0.5"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.255.255.255", "255.255.255.255"},
		{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
		{"::ffff:10.0.0.5", "10.0.0.5"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"10.0.0.256", ""},
		{"10.0.0", ""},
		{"10.0.0.5.6", ""},
		{"010.0.0.5", ""},
		{"10..0.5", ""},
		{"10.0.0.", ""},
		{"1e.0.0.5", ""},
		{"", ""},
		{"2001:db8::g", ""},
		{strings.Repeat("1:", 40), ""},
	} {
		got, ok := parseAddr([]byte(tc.in))
		if ok != (tc.want != "") || (ok && got.String() != tc.want) {
			t.Errorf("parseAddr(%q) = %v, %v; want %q", tc.in, got, ok, tc.want)
		}
		if ok {
			if ref, err := netip.ParseAddr(tc.in); err != nil || ref.Unmap() != got {
				t.Errorf("parseAddr(%q) = %v, netip says %v, %v", tc.in, got, ref, err)
			}
		}
	}
}

func TestProtoName(t *testing.T) {
	for in, want := range map[string]string{
		"TCP": "tcp", "tcp": "tcp", "6": "tcp", "006": "tcp", "UDP": "udp", "17": "udp",
		"ICMP": "icmp", "1": "icmp", "ICMPv6": "icmpv6", "ipv6-icmp": "icmpv6", "58": "icmpv6",
		"UDPLITE": "udplite", "SCTP": "sctp", "47": "gre", "253": "253", "256": "",
		"QUIC": "quic", "": "", "tcp udp": "", "a-very-long-protocol-name": "",
	} {
		if got := protoName([]byte(in)); got != want {
			t.Errorf("protoName(%q) = %q, want %q", in, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { protoName([]byte("TCP")) }); a != 0 {
		t.Errorf("protoName allocates %v times for a known name", a)
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time // zero for invalid
	}{
		{"2026-11-27T10:00:01Z", time.Date(2026, 11, 27, 10, 0, 1, 0, time.UTC)},
		{"2026-11-27T10:00:01+01:00", time.Date(2026, 11, 27, 9, 0, 1, 0, time.UTC)},
		{"2026-11-27T10:00:01.123456789-05:30", time.Date(2026, 11, 27, 15, 30, 1, 123456789, time.UTC)},
		{"2026-11-27T10:00:01.1234567891+0100", time.Date(2026, 11, 27, 9, 0, 1, 123456789, time.UTC)},
		{"2026-11-27 10:00:01", time.Date(2026, 11, 27, 10, 0, 1, 0, cet)},
		{"2026/11/27 10:00:01", time.Date(2026, 11, 27, 10, 0, 1, 0, cet)},
		{"2028-02-29T00:00:00Z", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"2026-02-29T00:00:00Z", time.Time{}},
		{"2026-11-31T00:00:00Z", time.Time{}},
		{"2026-13-01T00:00:00Z", time.Time{}},
		{"2026-11-27T24:00:00Z", time.Time{}},
		{"2026-11-27T10:00:01+1", time.Time{}},
		{"2026-11-27T10:00:01.", time.Time{}},
		{"2026-11-27T10:00", time.Time{}},
		{"2026-11-27X10:00:01Z", time.Time{}},
		{"2026/11-27 10:00:01", time.Time{}},
	} {
		got, ok := parseTimestamp([]byte(tc.in), cet)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
}

func TestEpoch(t *testing.T) {
	want := time.Date(2026, 11, 27, 9, 0, 1, 0, time.UTC)
	for _, in := range []string{"1795770001", "1795770001000", "1795770001000000", "1795770001000000000", "1795770001.0"} {
		got, ok := parseEpoch([]byte(in))
		if !ok || !got.Equal(want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if got, ok := parseEpoch([]byte("1795770001.5")); !ok || !got.Equal(want.Add(500*time.Millisecond)) {
		t.Errorf("parseEpoch(1795770001.5) = %v, %v", got, ok)
	}
	for _, in := range []string{"", "-1", "1795770001000.5", "1e9", "17957700010000000000000", "12a"} {
		if got, ok := parseEpoch([]byte(in)); ok {
			t.Errorf("parseEpoch(%q) = %v, want an error", in, got)
		}
	}
}

// parseCase is one line and what Parse should make of it.
type parseCase struct {
	name string
	line string
	opts *Options // nil: testOpts
	want Record   // when neither err nor skip is set
	err  string   // a substring of the LineError's Reason
	skip bool     // the line matches ErrSkip
}

func runCases(t *testing.T, f Format, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOpts
			if tc.opts != nil {
				opts = *tc.opts
			}
			got, err := newTestParser(t, f, opts).Parse([]byte(tc.line))
			var le *LineError
			switch {
			case tc.skip:
				if !errors.Is(err, ErrSkip) {
					t.Fatalf("Parse = %+v, %v; want a line to skip", got, err)
				}
			case tc.err != "":
				if !errors.As(err, &le) || errors.Is(err, ErrSkip) {
					t.Fatalf("Parse = %+v, %v; want a LineError %q", got, err, tc.err)
				}
				if !strings.Contains(le.Reason, tc.err) || le.Format != f || le.Line != sample(trimLine([]byte(tc.line))) {
					t.Errorf("LineError = %+v, want Reason containing %q and the line", le, tc.err)
				}
				if got != (Record{}) {
					t.Errorf("Parse returned %+v with its error", got)
				}
			case err != nil:
				t.Fatalf("Parse: %v", err)
			default:
				if !got.Time.Equal(tc.want.Time) || got.Src != tc.want.Src || got.Dst != tc.want.Dst || got.DPort != tc.want.DPort || got.Proto != tc.want.Proto {
					t.Errorf("Parse =\n\t%s\nwant\n\t%s", outcome(got, nil), outcome(tc.want, nil))
				}
				if got.Alert != tc.want.Alert {
					t.Errorf("Alert = %+v, want %+v", got.Alert, tc.want.Alert)
				}
				if !got.Time.IsZero() && got.Time.Location() != time.UTC {
					t.Errorf("Time %v is not in UTC", got.Time)
				}
			}
		})
	}
}

// rec builds a Record; ts is RFC 3339 or "" for no time.
func rec(ts, src, dst string, dport uint16, proto string) Record {
	r := Record{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), DPort: dport, Proto: proto}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			panic(err)
		}
		r.Time = t
	}
	return r
}

// at returns Options with Now fixed at ts (RFC 3339) and the CET zone.
func at(ts string) *Options {
	now, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	return &Options{Location: cet, Now: func() time.Time { return now }}
}

// One Parser serves several goroutines; go test -race checks it. A Zeek
// header changes how the lines after it are read, so the Zeek sample goes
// without its headers: a Parser's state is per file, not per goroutine.
func TestConcurrentParse(t *testing.T) {
	for _, f := range Formats {
		p := newTestParser(t, f, testOpts)
		lines := sampleLines(t, f)
		if f == Zeek {
			lines = slices.DeleteFunc(lines, func(l []byte) bool { return bytes.HasPrefix(l, []byte("#")) })
		}
		want := make([]string, len(lines))
		for i, line := range lines {
			want[i] = outcome(p.Parse(line))
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i, line := range lines {
					if got := outcome(p.Parse(line)); got != want[i] {
						t.Errorf("%s line %d: %s, alone %s", f, i+1, got, want[i])
					}
				}
			})
		}
		wg.Wait()
	}
}
