package adminapi

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	testNow      = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	testDefaults = Defaults{Window: 5 * time.Minute, Watch: 30 * time.Minute, MaxWindow: time.Hour}
)

func TestDecodeEventValid(t *testing.T) {
	client := netip.MustParseAddr("10.1.2.3")
	tests := []struct {
		name string
		body string
		want Event
	}{
		{
			name: "defaults applied",
			body: `{"client":"10.1.2.3","type":"edr.malware"}`,
			want: Event{Client: client, Type: "edr.malware", At: testNow, Window: 5 * time.Minute, Watch: 30 * time.Minute},
		},
		{
			name: "null is absent",
			body: `{"client":"10.1.2.3","type":"edr.malware","at":null,"window":null,"watch":null,"ref":null}`,
			want: Event{Client: client, Type: "edr.malware", At: testNow, Window: 5 * time.Minute, Watch: 30 * time.Minute},
		},
		{
			name: "every field given",
			body: `{"client":"10.1.2.3","type":"phishing.click","at":"2026-03-14T11:50:00Z","window":"10m","watch":"1h","ref":"SIEM-123"}`,
			want: Event{Client: client, Type: "phishing.click", At: testNow.Add(-10 * time.Minute), Window: 10 * time.Minute, Watch: time.Hour, Ref: "SIEM-123"},
		},
		{
			name: "integer seconds, zero watch",
			body: `{"client":"10.1.2.3","type":"login.privileged","window":120,"watch":0}`,
			want: Event{Client: client, Type: "login.privileged", At: testNow, Window: 2 * time.Minute, Watch: 0},
		},
		{
			name: "type lower-cased, IPv4-mapped client unmapped",
			body: `{"client":"::ffff:10.1.2.3","type":"EDR.Malware_x-1"}`,
			want: Event{Client: client, Type: "edr.malware_x-1", At: testNow, Window: 5 * time.Minute, Watch: 30 * time.Minute},
		},
		{
			name: "IPv6 client, other time zone, window at the maximum",
			body: `{"client":"fd00::53","type":"x","at":"2026-03-14T13:00:00+01:00","window":"1h"}`,
			want: Event{Client: netip.MustParseAddr("fd00::53"), Type: "x", At: testNow, Window: time.Hour, Watch: 30 * time.Minute},
		},
		{
			name: "oldest and newest times accepted",
			body: `{"client":"10.1.2.3","type":"x","at":"2026-03-13T12:00:00Z","watch":"168h"}`,
			want: Event{Client: client, Type: "x", At: testNow.Add(-MaxEventAge), Window: 5 * time.Minute, Watch: MaxWatch},
		},
		{
			name: "watch in days",
			body: `{"client":"10.1.2.3","type":"x","watch":"7d"}`,
			want: Event{Client: client, Type: "x", At: testNow, Window: 5 * time.Minute, Watch: MaxWatch},
		},
		{
			name: "clock skew within bounds",
			body: `{"client":"10.1.2.3","type":"x","at":"2026-03-14T12:05:00Z"}`,
			want: Event{Client: client, Type: "x", At: testNow.Add(MaxClockSkew), Window: 5 * time.Minute, Watch: 30 * time.Minute},
		},
		{
			name: "unicode ref",
			body: `{"client":"10.1.2.3","type":"x","ref":"Vorfall – Büro 3"}`,
			want: Event{Client: client, Type: "x", At: testNow, Window: 5 * time.Minute, Watch: 30 * time.Minute, Ref: "Vorfall – Büro 3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEvent([]byte(tt.body), testDefaults, testNow)
			if err != nil {
				t.Fatalf("decodeEvent: %v", err)
			}
			if !got.At.Equal(tt.want.At) {
				t.Errorf("At = %v, want %v", got.At, tt.want.At)
			}
			got.At, tt.want.At = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeEvent = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeEventNoMaxWindow(t *testing.T) {
	d := testDefaults
	d.MaxWindow = 0
	ev, err := decodeEvent([]byte(`{"client":"10.1.2.3","type":"x","window":"48h"}`), d, testNow)
	if err != nil || ev.Window != 48*time.Hour {
		t.Fatalf("decodeEvent = %v, %v; want a 48h window when MaxWindow is 0", ev.Window, err)
	}
}

func TestDecodeEventErrorsAreFieldErrors(t *testing.T) {
	_, err := decodeEvent([]byte(`{"client":"10.1.2","type":"x"}`), testDefaults, testNow)
	var fe *fieldError
	if !errors.As(err, &fe) || fe.Field != "client" {
		t.Fatalf("err = %v, want a fieldError for client", err)
	}
	if want := `client: "10.1.2" is not an IP address`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
}

func TestEventMarshalJSON(t *testing.T) {
	ev := Event{Client: netip.MustParseAddr("10.1.2.3"), Type: "edr.malware", At: testNow, Window: 5 * time.Minute, Watch: 0}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"client":"10.1.2.3","type":"edr.malware","at":"2026-03-14T12:00:00Z","window":"5m0s","watch":"0s"}`
	if string(data) != want {
		t.Errorf("json = %s\nwant   %s", data, want)
	}
	// What the API writes, it accepts back.
	back, err := decodeEvent(data, testDefaults, testNow)
	if err != nil || !reflect.DeepEqual(back, ev) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, ev)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Minute:            "5m",
		24 * time.Hour:             "24h",
		90 * time.Minute:           "1h30m",
		90 * time.Second:           "1m30s",
		-time.Minute:               "-1m",
		0:                          "0s",
		1500 * time.Millisecond:    "1.5s",
		time.Hour + 30*time.Second: "1h0m30s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	got, err := LoadToken(write("token", "  s3cret-token\n"))
	if err != nil || got != "s3cret-token" {
		t.Errorf("LoadToken = %q, %v; want the trimmed token", got, err)
	}

	empty := write("empty", " \n\t\n")
	if _, err := LoadToken(empty); err == nil || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), empty) {
		t.Errorf("LoadToken(empty file) error = %v, want one naming the file and saying it is empty", err)
	}

	if _, err := LoadToken(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadToken(missing file) error = %v, want os.ErrNotExist", err)
	}

	// Readable by others is allowed (documented): mounted secrets often are.
	open := write("open", "tok")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadToken(open); err != nil || got != "tok" {
		t.Errorf("LoadToken(0644 file) = %q, %v; want the token", got, err)
	}
}
