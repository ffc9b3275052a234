package budget

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		args string
		want Config
	}{
		{"20 per day", Config{Limit: 20, Period: Day, Loc: time.UTC}},
		{"5000 per month reset 06:30", Config{Limit: 5000, Period: Month, ResetMinute: 390, Loc: time.UTC}},
		{"100 per day reset 23:15 Europe/Paris", Config{Limit: 100, Period: Day, ResetMinute: 23*60 + 15, Loc: paris}},
	} {
		got, err := Parse(strings.Fields(tc.args))
		if err != nil || got.Limit != tc.want.Limit || got.Period != tc.want.Period ||
			got.ResetMinute != tc.want.ResetMinute || got.Loc.String() != tc.want.Loc.String() {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, bad := range []string{"20", "0 per day", "-1 per day", "x per day", "20 per week", "20 each day",
		"20 per day reset", "20 per day reset 25:00", "20 per day at 00:00", "20 per day reset 00:00 Mars/Olympus"} {
		if _, err := Parse(strings.Fields(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestPeriodStart(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	day := Config{Period: Day, ResetMinute: 6 * 60, Loc: ny}
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) // 05:00 in New York: before the reset
	if got, want := day.PeriodStart(at), time.Date(2026, 3, 9, 6, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("day start = %v, want %v", got, want)
	}
	month := Config{Period: Month, Loc: time.UTC}
	at = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	if got, want := month.PeriodStart(at), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("month start = %v, want %v", got, want)
	}
	if got, want := month.next(month.PeriodStart(at)), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("month end = %v, want %v", got, want)
	}
}

// TestSharesStopLowerClassesFirst: as a budget of 20 drains, background
// calls stop at 10, live answers at 16, critical ports at 19, and event
// backtracks spend the rest; the next period grants a fresh budget.
func TestSharesStopLowerClassesFirst(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := New(Config{Limit: 20, Period: Day, Loc: time.UTC}, Saved{}, now)
	var alerts []Alert
	b.OnAlert = func(a Alert) { alerts = append(alerts, a) }
	spend := func(c Class) int {
		n := 0
		for b.Take(c, now) {
			n++
		}
		return n
	}
	for _, step := range []struct {
		c    Class
		want int
	}{{Background, 10}, {Live, 6}, {Critical, 3}, {Event, 1}} {
		if got := spend(step.c); got != step.want {
			t.Errorf("%s calls granted = %d, want %d", step.c, got, step.want)
		}
	}
	st := b.Status(now)
	if st.Spent != 20 || st.Remaining != 0 || !st.Exhausted || !st.ResetsAt.Equal(time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("status = %+v", st)
	}
	if len(alerts) != 2 || alerts[0].Level != AlertWarn || alerts[0].Status.Spent != 16 || alerts[1].Level != AlertExhausted {
		t.Errorf("alerts = %+v, want a warning at 16 then exhausted", alerts)
	}
	next := now.Add(12 * time.Hour)
	if !b.Take(Background, next) || b.Status(next).Spent != 1 {
		t.Errorf("no fresh budget after the reset: %+v", b.Status(next))
	}
}

func TestQuotaExhaustsUntilReset(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := New(Config{Limit: 1000, Period: Month, Loc: time.UTC}, Saved{}, now)
	var alerts []Alert
	b.OnAlert = func(a Alert) { alerts = append(alerts, a) }
	b.Take(Event, now)
	b.Exhaust(now)
	b.Exhaust(now)
	if b.Take(Event, now) {
		t.Error("a call was granted after a quota error")
	}
	if len(alerts) != 1 || !alerts[0].Quota || alerts[0].Level != AlertExhausted {
		t.Errorf("alerts = %+v, want one exhaustion by quota", alerts)
	}
	if !b.Take(Event, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("the quota error outlived the reset")
	}
}

// TestRestartKeepsSpending: what a restart restores within the period is
// still spent; a save from a past period is not.
func TestRestartKeepsSpending(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{Limit: 20, Period: Day, Loc: time.UTC}
	var saved Saved
	b := New(cfg, Saved{}, now)
	b.OnChange = func(s Saved, _ time.Time) { saved = s }
	for range 15 {
		b.Take(Event, now)
	}
	if got := New(cfg, saved, now.Add(time.Hour)).Status(now.Add(time.Hour)); got.Spent != 15 || got.Remaining != 5 {
		t.Errorf("after a restart: %+v, want 15 spent", got)
	}
	if got := New(cfg, saved, now.Add(24*time.Hour)).Status(now.Add(24 * time.Hour)); got.Spent != 0 {
		t.Errorf("the next day: %+v, want a fresh budget", got)
	}
}
