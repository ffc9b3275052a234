package connlog

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fuzzParser feeds a parser its sample lines and their mutations: it must
// never panic, fail only with a *LineError, and return records with both
// addresses, the same ones every time.
func fuzzParser(f *testing.F, format Format) {
	for _, line := range sampleLines(f, format) {
		f.Add(line)
	}
	p := newTestParser(f, format, testOpts)
	f.Fuzz(func(t *testing.T, line []byte) {
		checkParse(t, p, format, line)
	})
}

// checkParse parses one line and checks what any line must give.
func checkParse(t *testing.T, p *Parser, format Format, line []byte) {
	t.Helper()
	r, err := p.Parse(line)
	if err != nil {
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %v (%T) is not a *LineError", err, err)
		}
		if r != (Record{}) || le.Reason == "" || len(le.Line) > maxSample || le.Format != format {
			t.Fatalf("Parse = %+v, %+v", r, le)
		}
		return
	}
	if !r.Src.IsValid() || !r.Dst.IsValid() {
		t.Fatalf("record without addresses: %+v", r)
	}
	if (r.Proto == "icmp" || r.Proto == "icmpv6") && r.DPort != 0 {
		t.Fatalf("ICMP record with a port: %+v", r)
	}
	if !r.Time.IsZero() && r.Time.Location() != time.UTC {
		t.Fatalf("time not in UTC: %+v", r)
	}
	if len(r.Alert.Signature) > maxSignature+len("...") {
		t.Fatalf("alert signature of %d bytes", len(r.Alert.Signature))
	}
	if again, err := p.Parse(line); err != nil || again != r {
		t.Fatalf("second Parse = %+v, %v; first %+v", again, err, r)
	}
}

func FuzzJSON(f *testing.F)      { fuzzParser(f, JSON) }
func FuzzNetfilter(f *testing.F) { fuzzParser(f, Netfilter) }
func FuzzFortiGate(f *testing.F) { fuzzParser(f, FortiGate) }
func FuzzPaloAlto(f *testing.F)  { fuzzParser(f, PaloAlto) }
func FuzzSuricata(f *testing.F)  { fuzzParser(f, Suricata) }

// FuzzZeek parses a whole Zeek log, headers and records, with a fresh
// Parser each time: what a header changes is part of the input, so that a
// failure reproduces from it alone.
func FuzzZeek(f *testing.F) {
	lines := sampleLines(f, Zeek)
	f.Add(bytes.Join(lines, []byte("\n")))
	for _, line := range lines {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		p := newTestParser(t, Zeek, testOpts)
		for line := range bytes.SplitSeq(text, []byte("\n")) {
			checkParse(t, p, Zeek, line)
		}
	})
}
