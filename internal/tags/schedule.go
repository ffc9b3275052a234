package tags

import (
	"fmt"
	"strings"
	"time"

	// Embedded zone data (≈ 450 KB) so that "after_hours ... Europe/Paris"
	// works on minimal hosts and containers without /usr/share/zoneinfo.
	// The system's zoneinfo, when present, still takes precedence.
	_ "time/tzdata"
)

// Schedule is a daily span of wall-clock time in a time zone, such as
// 20:00-07:00 in Europe/Paris. The span includes its start minute and
// excludes its end minute, and wraps midnight when it ends before it starts.
// The zero Schedule is never active.
type Schedule struct {
	start, end int // minute of the day, 0..1439
	loc        *time.Location
}

// ParseSchedule parses span ("HH:MM-HH:MM") in the zone tz, an IANA name
// such as "Europe/Paris"; "" means the local zone. Errors name the part that
// is wrong, for the Corefile's after_hours option.
func ParseSchedule(span, tz string) (Schedule, error) {
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return Schedule{}, fmt.Errorf("after_hours: span %q is not HH:MM-HH:MM", span)
	}
	start, err := minuteOfDay("start", from)
	if err != nil {
		return Schedule{}, err
	}
	end, err := minuteOfDay("end", to)
	if err != nil {
		return Schedule{}, err
	}
	if start == end {
		return Schedule{}, fmt.Errorf("after_hours: start and end are both %q, the span would be empty", from)
	}
	loc := time.Local
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return Schedule{}, fmt.Errorf("after_hours: time zone %q: %v", tz, err)
		}
	}
	return Schedule{start: start, end: end, loc: loc}, nil
}

// minuteOfDay parses "HH:MM" (or "H:MM"), 00:00 to 23:59.
func minuteOfDay(which, s string) (int, error) {
	bad := fmt.Errorf("after_hours: %s %q is not HH:MM", which, s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, bad
	}
	hour, ok1 := digits(h)
	minute, ok2 := digits(m)
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return 0, bad
	}
	return hour*60 + minute, nil
}

// digits parses a short run of ASCII digits; strconv.Atoi would also take
// signs.
func digits(s string) (int, bool) {
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Active reports whether t falls in the span, read on the wall clock of the
// schedule's zone. Across a DST change the span follows the wall clock: it
// is shorter or longer that day, never shifted.
func (s Schedule) Active(t time.Time) bool {
	if s.loc == nil {
		return false
	}
	return s.activeAt(t.In(s.loc))
}

// activeAt is Active for a time already in the schedule's zone.
func (s Schedule) activeAt(local time.Time) bool {
	m := local.Hour()*60 + local.Minute()
	if s.start < s.end {
		return s.start <= m && m < s.end
	}
	return m >= s.start || m < s.end
}

// String returns the schedule as ParseSchedule reads it, with the zone's
// name: "20:00-07:00 Europe/Paris".
func (s Schedule) String() string {
	if s.loc == nil {
		return ""
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d %s", s.start/60, s.start%60, s.end/60, s.end%60, s.loc)
}
