// Package optval reads the values of configuration options and flags:
// durations that may count days, bounded whole and real numbers (NaN and
// Inf refused), CIDRs or bare IPs, and port lists. Its errors quote the
// value and say what would be valid; the caller names the option.
package optval

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Ports reads port numbers 1-65535.
func Ports(args []string) ([]uint16, error) {
	out := make([]uint16, 0, len(args))
	for _, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q is not a port number (1-65535)", a)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// Duration is time.ParseDuration plus a leading number of days, as
// in 7d or 1d12h, since block times are counted in days.
func Duration(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > 3650 {
		return 0, fmt.Errorf("bad day count in %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, fmt.Errorf("bad sign after the days in %q", s)
	}
	r, err := time.ParseDuration(rest)
	if err != nil {
		return 0, err
	}
	if r > math.MaxInt64-d {
		return 0, fmt.Errorf("%q is too long", s)
	}
	return d + r, nil
}

// DurationUpTo reads a duration from 1ns to max; zero, negative and
// overflowing durations are refused, as no option means anything by them.
func DurationUpTo(s string, max time.Duration) (time.Duration, error) {
	d, err := Duration(s)
	if err != nil || d <= 0 || d > max {
		return 0, fmt.Errorf("%q is not a positive duration up to %s, such as 30s, 5m, 24h or 7d", s, Short(max))
	}
	return d, nil
}

// Int reads a whole number from min to max.
func Int(s string, min, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%q is not a whole number from %d to %d", s, min, max)
	}
	return n, nil
}

// Number reads a number from min to max. ParseFloat accepts NaN and
// Inf; the range check refuses them (every comparison with NaN is false).
func Number(s string, min, max float64) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= min && f <= max) {
		return 0, fmt.Errorf("%q is not a number from %g to %g", s, min, max)
	}
	return f, nil
}

// Short writes d as people write it: 366d, 5m, 1h30m (no trailing zero
// units).
func Short(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return TrimZeroUnits(d)
}

// TrimZeroUnits drops Go's trailing zero units: "5m" rather than "5m0s",
// "2h" rather than "2h0m0s".
func TrimZeroUnits(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Prefix accepts a CIDR or a bare IP (a /32 or /128).
func Prefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}
