package tags

import (
	"strings"
	"testing"
	"time"
)

func mustSchedule(t testing.TB, span, tz string) Schedule {
	t.Helper()
	s, err := ParseSchedule(span, tz)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		span, tz string
		want     string // String(), or the error's text
		wantErr  bool
	}{
		{span: "20:00-07:00", tz: "Europe/Paris", want: "20:00-07:00 Europe/Paris"},
		{span: "7:05-9:30", tz: "UTC", want: "07:05-09:30 UTC"},
		{span: "00:00-23:59", tz: "Asia/Tokyo", want: "00:00-23:59 Asia/Tokyo"},
		{span: "22:00-06:00", tz: "", want: "22:00-06:00 Local"},
		{span: "22:00-06:00", tz: "Local", want: "22:00-06:00 Local"},
		{span: "20:00", tz: "UTC", wantErr: true, want: `after_hours: span "20:00" is not HH:MM-HH:MM`},
		{span: "25:00-07:00", tz: "UTC", wantErr: true, want: `after_hours: start "25:00" is not HH:MM`},
		{span: "20:00-25:00", tz: "UTC", wantErr: true, want: `after_hours: end "25:00" is not HH:MM`},
		{span: "20:00-24:00", tz: "UTC", wantErr: true, want: `after_hours: end "24:00" is not HH:MM`},
		{span: "20:00-07:60", tz: "UTC", wantErr: true, want: `after_hours: end "07:60" is not HH:MM`},
		{span: "20:00-7", tz: "UTC", wantErr: true, want: `after_hours: end "7" is not HH:MM`},
		{span: "20:0-07:00", tz: "UTC", wantErr: true, want: `after_hours: start "20:0" is not HH:MM`},
		{span: "+1:00-07:00", tz: "UTC", wantErr: true, want: `after_hours: start "+1:00" is not HH:MM`},
		{span: " 20:00-07:00", tz: "UTC", wantErr: true, want: `after_hours: start " 20:00" is not HH:MM`},
		{span: "20:00-07:00-08:00", tz: "UTC", wantErr: true, want: `after_hours: end "07:00-08:00" is not HH:MM`},
		{span: "20:00-20:00", tz: "UTC", wantErr: true, want: `after_hours: start and end are both "20:00"`},
		{span: "20:00-07:00", tz: "Mars/Olympus_Mons", wantErr: true, want: `after_hours: time zone "Mars/Olympus_Mons"`},
	}
	for _, tt := range tests {
		t.Run(tt.span+" "+tt.tz, func(t *testing.T) {
			s, err := ParseSchedule(tt.span, tt.tz)
			switch {
			case tt.wantErr && err == nil:
				t.Fatalf("got %v, want an error", s)
			case tt.wantErr && !strings.HasPrefix(err.Error(), tt.want):
				t.Fatalf("error %q, want it to start %q", err, tt.want)
			case !tt.wantErr && err != nil:
				t.Fatal(err)
			case !tt.wantErr && s.String() != tt.want:
				t.Fatalf("String() = %q, want %q", s, tt.want)
			}
		})
	}
}

func TestScheduleActive(t *testing.T) {
	// Europe/Paris changes to CEST on 2026-03-29 01:00 UTC (02:00 -> 03:00)
	// and back to CET on 2026-10-25 01:00 UTC (03:00 -> 02:00).
	tests := []struct {
		span string
		tz   string
		at   string
		want bool
	}{
		// A span across midnight, winter (UTC+1).
		{"20:00-07:00", "Europe/Paris", "2026-01-15T18:59:00Z", false},
		{"20:00-07:00", "Europe/Paris", "2026-01-15T19:00:00Z", true}, // start is in
		{"20:00-07:00", "Europe/Paris", "2026-01-15T23:30:00Z", true}, // after midnight
		{"20:00-07:00", "Europe/Paris", "2026-01-16T05:59:59Z", true},
		{"20:00-07:00", "Europe/Paris", "2026-01-16T06:00:00Z", false}, // end is out
		{"20:00-07:00", "Europe/Paris", "2026-01-16T12:00:00Z", false},
		// The same span in summer (UTC+2): the UTC edges move by an hour.
		{"20:00-07:00", "Europe/Paris", "2026-07-15T17:59:00Z", false},
		{"20:00-07:00", "Europe/Paris", "2026-07-15T18:00:00Z", true},
		{"20:00-07:00", "Europe/Paris", "2026-07-16T04:59:00Z", true},
		{"20:00-07:00", "Europe/Paris", "2026-07-16T05:00:00Z", false},
		// The night of the spring change ends at 07:00 CEST, 05:00 UTC.
		{"20:00-07:00", "Europe/Paris", "2026-03-28T19:00:00Z", true},
		{"20:00-07:00", "Europe/Paris", "2026-03-29T01:00:00Z", true}, // 03:00 CEST
		{"20:00-07:00", "Europe/Paris", "2026-03-29T04:59:00Z", true},
		{"20:00-07:00", "Europe/Paris", "2026-03-29T05:00:00Z", false},
		// A span over the skipped hour lasts 30 minutes that day.
		{"01:30-02:30", "Europe/Paris", "2026-03-29T00:29:00Z", false},
		{"01:30-02:30", "Europe/Paris", "2026-03-29T00:30:00Z", true},  // 01:30 CET
		{"01:30-02:30", "Europe/Paris", "2026-03-29T00:59:59Z", true},  // 01:59:59 CET
		{"01:30-02:30", "Europe/Paris", "2026-03-29T01:00:00Z", false}, // 03:00 CEST
		// A span in the repeated hour is active twice in autumn.
		{"02:00-02:30", "Europe/Paris", "2026-10-24T23:59:00Z", false}, // 01:59 CEST
		{"02:00-02:30", "Europe/Paris", "2026-10-25T00:00:00Z", true},  // 02:00 CEST
		{"02:00-02:30", "Europe/Paris", "2026-10-25T00:30:00Z", false}, // 02:30 CEST
		{"02:00-02:30", "Europe/Paris", "2026-10-25T01:00:00Z", true},  // 02:00 CET
		{"02:00-02:30", "Europe/Paris", "2026-10-25T01:29:00Z", true},  // 02:29 CET
		{"02:00-02:30", "Europe/Paris", "2026-10-25T01:30:00Z", false}, // 02:30 CET
		// A span within one day, and the whole day but a minute.
		{"09:00-17:00", "UTC", "2026-01-15T08:59:59Z", false},
		{"09:00-17:00", "UTC", "2026-01-15T09:00:00Z", true},
		{"09:00-17:00", "UTC", "2026-01-15T17:00:00Z", false},
		{"00:00-23:59", "UTC", "2026-01-15T23:58:59Z", true},
		{"00:00-23:59", "UTC", "2026-01-15T23:59:00Z", false},
		// A zone east of UTC: Tokyo's night is UTC's afternoon.
		{"22:00-06:00", "Asia/Tokyo", "2026-01-15T13:00:00Z", true},
		{"22:00-06:00", "Asia/Tokyo", "2026-01-15T21:00:00Z", false},
	}
	for _, tt := range tests {
		s := mustSchedule(t, tt.span, tt.tz)
		if got := s.Active(utc(tt.at)); got != tt.want {
			t.Errorf("%s: Active(%s = %s) = %v, want %v", s, tt.at, utc(tt.at).In(s.loc).Format("15:04 MST"), got, tt.want)
		}
	}
}

func TestZeroScheduleIsNeverActive(t *testing.T) {
	var s Schedule
	if s.Active(utc("2026-01-15T12:00:00Z")) || s.String() != "" {
		t.Errorf("zero Schedule: Active true or String %q", s.String())
	}
}
