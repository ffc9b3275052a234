package syslogin

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func frames(t *testing.T, stream string) ([]string, error) {
	t.Helper()
	f := NewFramer(strings.NewReader(stream))
	var out []string
	for {
		msg, err := f.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(msg))
	}
}

func TestFramer(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		want         []string
		err          error
	}{
		{"octet counting", "5 <1>ab3 <2>", []string{"<1>ab", "<2>"}, nil},
		{"octet counting with newlines", "5 <1>ab\n4 <2>\n\n", []string{"<1>ab", "<2>"}, nil},
		{"newline", "<1>a\r\n<2>b\n\n<3>c", []string{"<1>a", "<2>b", "<3>c"}, nil},
		{"nul", "<1>a\x00<2>b\x00", []string{"<1>a", "<2>b"}, nil},
		{"octet count cut short", "9 <1>", nil, errFraming},
		{"octet count not a number", "5 <1>ab x", []string{"<1>ab"}, errFraming},
		{"octet count too big", "65537 x", nil, ErrTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := frames(t, tc.stream)
			if !errors.Is(err, tc.err) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("frames %q = %q, %v; want %q, %v", tc.stream, got, err, tc.want, tc.err)
			}
		})
	}
}

// An oversized line is skipped, and the lines after it still arrive.
func TestFramerLongLine(t *testing.T) {
	stream := "<1>a\n" + strings.Repeat("x", MaxMessage+1) + "\n<2>b\n"
	f := NewFramer(strings.NewReader(stream))
	var got []string
	tooBig := 0
	for {
		msg, err := f.Next()
		if errors.Is(err, ErrTooBig) {
			tooBig++
			continue
		}
		if err != nil {
			break
		}
		got = append(got, string(msg))
	}
	if tooBig != 1 || strings.Join(got, "|") != "<1>a|<2>b" {
		t.Errorf("got %q, %d too big; want <1>a and <2>b around one too big", got, tooBig)
	}
	exact := strings.Repeat("y", MaxMessage)
	if got, err := frames(t, exact+"\n"); err != nil || len(got) != 1 || got[0] != exact {
		t.Errorf("a message of exactly MaxMessage bytes: %d messages, %v", len(got), err)
	}
}

func TestBody(t *testing.T) {
	const (
		nf = "[12345.678901] DROP IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=45.83.0.21 PROTO=TCP SPT=1 DPT=22"
		fg = `date=2026-12-07 time=04:00:00 type="traffic" srcip=10.0.0.5 dstip=45.83.0.21 dstport=22`
	)
	for _, tc := range []struct{ msg, want string }{
		{"<4>Dec  7 04:00:00 fw1 kernel: " + nf, nf},             // rsyslog/journald forwarding the kernel
		{"<4>1 2026-12-07T04:00:00Z fw1 kernel - - - " + nf, nf}, // RFC 5424
		{"<4>1 2026-12-07T04:00:00Z fw1 kernel - - [x@1 a=\"b\"] " + nf, nf},
		{"<189>" + fg, fg},                     // FortiGate's own syslog: no header at all
		{"<189>Dec  7 04:00:00 fw1 " + fg, fg}, // FortiGate through a relay
		{"<14>Dec  7 04:00:00 ids suricata[12]: {\"event_type\":\"flow\"}", `{"event_type":"flow"}`},
		{fg, fg}, // no PRI either
		{"<9999>x", "<9999>x"},
	} {
		if got := string(Body([]byte(tc.msg))); got != tc.want {
			t.Errorf("Body(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// FuzzSyslog feeds streams to the framer and each frame to Body: neither
// may panic, and no frame is longer than MaxMessage.
func FuzzSyslog(f *testing.F) {
	for _, s := range []string{
		"5 <1>ab3 <2>",
		"<4>Dec  7 04:00:00 fw1 kernel: [1.2] IN=eth0 SRC=10.0.0.5 DST=45.83.0.21 PROTO=TCP DPT=22\n",
		"88 <189>date=2026-12-07 time=04:00:00 type=\"traffic\" srcip=10.0.0.5 dstip=45.83.0.21 dstport=22",
		"<4>1 2026-12-07T04:00:00Z fw1 kernel - - [x@1 a=\"b\"] IN=\n",
		"1\n", "0 ", "<", "\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := NewFramer(bytes.NewReader(stream))
		for range 1000 {
			msg, err := fr.Next()
			if errors.Is(err, ErrTooBig) {
				continue
			}
			if err != nil {
				return
			}
			if len(msg) > MaxMessage {
				t.Fatalf("frame of %d bytes", len(msg))
			}
			Body(msg)
		}
	})
}
