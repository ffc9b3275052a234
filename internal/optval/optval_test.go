package optval

import (
	"math"
	"testing"
	"time"
)

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true}, {"7d", 7 * 24 * time.Hour, true}, {"1d12h", 36 * time.Hour, true},
		{"1d-5h", 0, false}, {"3650d2562047h", 0, false}, {"-5m", 0, false}, {"soon", 0, false},
	} {
		got, err := DurationUpTo(tc.in, 3660*24*time.Hour)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("DurationUpTo(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, s := range []string{"NaN", "Inf", "-Inf", "1e309", "0", "abc"} {
		if _, err := Number(s, 0.001, 100); err == nil {
			t.Errorf("Number(%q) accepted", s)
		}
	}
	if f, err := Number("2.5", 0.001, 100); err != nil || f != 2.5 || math.IsNaN(f) {
		t.Errorf("Number(2.5) = %v, %v", f, err)
	}
	if _, err := Int("1000000", 1, 1024); err == nil {
		t.Error("Int accepted 1000000 over 1024")
	}
	if p, err := Prefix("::ffff:10.1.2.3"); err != nil || p.String() != "10.1.2.3/32" {
		t.Errorf("Prefix(mapped) = %v, %v", p, err)
	}
	if p, err := Prefix("10.1.2.3/8"); err != nil || p.String() != "10.0.0.0/8" {
		t.Errorf("Prefix(unmasked CIDR) = %v, %v", p, err)
	}
	if ps, err := Ports([]string{"22", "443"}); err != nil || len(ps) != 2 {
		t.Errorf("Ports = %v, %v", ps, err)
	}
	if _, err := Ports([]string{"0"}); err == nil {
		t.Error("port 0 accepted")
	}
	if got := Short(366 * 24 * time.Hour); got != "366d" {
		t.Errorf("Short(366d) = %s", got)
	}
	if got := Short(90 * time.Minute); got != "1h30m" {
		t.Errorf("Short(90m) = %s", got)
	}
}
