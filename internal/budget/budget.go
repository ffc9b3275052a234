// Package budget is the API budget (`budget N per day|month [reset HH:MM
// TZ]`): Criminal IP plans sell a fixed number of report credits a day or a
// month, and one noisy night of after-hours tags could spend a month's. The
// budget counts the calls of the current period and refuses a call once its
// class's share of the period is spent, so that as credits run out the
// least valuable calls stop first and event backtracks keep the last ones.
//
// The shares (Shares) are cumulative thresholds on the period's spending:
//
//	event backtracks               up to 100% of the budget
//	critical-port connections      up to  95%
//	tagged clients' live answers   up to  80% (event tags, connections of tagged clients)
//	after-hours and static tags    up to  50%
//
// so the last half of the budget is kept for what an event or a critical
// port brings, and the last 5% for event backtracks alone. A quota error
// from the API exhausts the budget until the reset, whatever was counted.
package budget

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/tags"
)

// Class is what a call is for; it decides the share of the budget the call
// may reach. The zero Class is Event, the most valuable.
type Class int

// The classes, most valuable first.
const (
	Event      Class = iota // an event's backtrack (and its retries, the admin API's submissions)
	Critical                // a connection to a critical port
	Live                    // a live answer or connection of a client tagged by an event
	Background              // a live answer of a client tagged by after_hours or a static tag
)

// Classes lists every class, for metrics resolved ahead.
var Classes = [...]Class{Event, Critical, Live, Background}

// Shares are the percentages of the period's budget each class may spend up
// to (see the package comment).
var Shares = [...]int64{Event: 100, Critical: 95, Live: 80, Background: 50}

var classNames = [...]string{Event: "event", Critical: "critical_port", Live: "live", Background: "background"}

// String returns the class's metrics label.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// ClassOfTag is the class of a live answer of a client tagged for reason.
func ClassOfTag(reason tags.Reason) Class {
	if reason == tags.ReasonEvent {
		return Live
	}
	return Background
}

// Period is the length of a budget period.
type Period string

// The periods.
const (
	Day   Period = "day"
	Month Period = "month"
)

// Config is a parsed `budget` option.
type Config struct {
	Limit  int64
	Period Period
	// ResetMinute is the minute of the day (in Loc) the period starts at;
	// a monthly period starts on the first of the month.
	ResetMinute int
	Loc         *time.Location
}

// Parse reads the arguments of `budget N per day|month [reset HH:MM TZ]`.
// Without reset the period starts at 00:00 UTC.
func Parse(args []string) (*Config, error) {
	if len(args) != 3 && len(args) != 5 && len(args) != 6 {
		return nil, errors.New("want N per day|month [reset HH:MM [TZ]]")
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || n < 1 || n > 1e12 {
		return nil, fmt.Errorf("calls %q: want a whole number from 1 to 10^12", args[0])
	}
	c := &Config{Limit: n, Period: Period(args[2]), Loc: time.UTC}
	if args[1] != "per" || (c.Period != Day && c.Period != Month) {
		return nil, fmt.Errorf("period %q: want per day or per month", strings.Join(args[1:3], " "))
	}
	if len(args) == 3 {
		return c, nil
	}
	if args[3] != "reset" {
		return nil, fmt.Errorf("%q: want reset HH:MM [TZ]", args[3])
	}
	t, err := time.Parse("15:04", args[4])
	if err != nil {
		return nil, fmt.Errorf("reset %q: want HH:MM", args[4])
	}
	c.ResetMinute = t.Hour()*60 + t.Minute()
	if len(args) == 6 {
		if c.Loc, err = time.LoadLocation(args[5]); err != nil || args[5] == "" || args[5] == "Local" {
			return nil, fmt.Errorf("reset time zone %q: want an IANA name such as Europe/Paris", args[5])
		}
	}
	return c, nil
}

// String is the option as written, for logs and GET /v1/status.
func (c Config) String() string {
	return fmt.Sprintf("%d per %s reset %02d:%02d %s", c.Limit, c.Period, c.ResetMinute/60, c.ResetMinute%60, c.Loc)
}

// PeriodStart returns the start of the period holding t.
func (c Config) PeriodStart(t time.Time) time.Time {
	l := t.In(c.Loc)
	h, m := c.ResetMinute/60, c.ResetMinute%60
	if c.Period == Month {
		s := time.Date(l.Year(), l.Month(), 1, h, m, 0, 0, c.Loc)
		if s.After(t) {
			s = time.Date(l.Year(), l.Month()-1, 1, h, m, 0, 0, c.Loc)
		}
		return s
	}
	s := time.Date(l.Year(), l.Month(), l.Day(), h, m, 0, 0, c.Loc)
	if s.After(t) {
		s = time.Date(l.Year(), l.Month(), l.Day()-1, h, m, 0, 0, c.Loc)
	}
	return s
}

// next returns the start of the period after the one starting at start.
func (c Config) next(start time.Time) time.Time {
	l := start.In(c.Loc)
	h, m := c.ResetMinute/60, c.ResetMinute%60
	if c.Period == Month {
		return time.Date(l.Year(), l.Month()+1, 1, h, m, 0, 0, c.Loc)
	}
	return time.Date(l.Year(), l.Month(), l.Day()+1, h, m, 0, 0, c.Loc)
}

// Saved is what survives a restart: the period and what was spent in it.
type Saved struct {
	Start     time.Time `json:"start"`
	Spent     int64     `json:"spent"`
	Exhausted bool      `json:"exhausted,omitempty"` // by a quota error
	Warned    bool      `json:"warned,omitempty"`    // the 80% alert fired
	Announced bool      `json:"announced,omitempty"` // the exhaustion alert fired
	// Pending are calls made (and counted in Spent) while the fleet's
	// count was unreachable, not added to it yet (fleet.go).
	Pending int64 `json:"pending,omitempty"`
}

// Alert levels.
const (
	AlertWarn      = "warning"   // 80% of the budget spent
	AlertExhausted = "exhausted" // the whole budget spent, or a quota error
)

// Alert is a threshold crossed, once per period each.
type Alert struct {
	Level  string
	Status Status
	Quota  bool // exhausted by a quota error from the API
}

// Status is the budget as GET /v1/status shows it.
type Status struct {
	Limit     int64     `json:"limit"`
	Period    string    `json:"period"`
	Spent     int64     `json:"spent"`
	Remaining int64     `json:"remaining"`
	Exhausted bool      `json:"exhausted"`
	ResetsAt  time.Time `json:"resets_at"`
}

// Budget counts the calls of the current period. It is safe for concurrent
// use.
type Budget struct {
	cfg Config
	// OnChange, if set, is called with what to save after every change
	// (under the budget's lock: it must not block); OnAlert, outside it,
	// with every alert. Set them before the first Take.
	OnChange func(s Saved, expires time.Time)
	OnAlert  func(a Alert)
	// Shared, if set, is the fleet's count (fleet.go); set it before the
	// first Take.
	Shared Shared

	mu       sync.Mutex
	saved    Saved
	seen     int64 // the fleet's spent count when Shared last answered
	inFlight int64 // Pending calls being added to the fleet's count
}

// New returns the budget of cfg resuming from saved, which is ignored
// unless it is of the period holding now (a restart within the period
// keeps what was spent; no fresh budget is granted).
func New(cfg Config, saved Saved, now time.Time) *Budget {
	b := &Budget{cfg: cfg}
	if start := cfg.PeriodStart(now); saved.Start.Equal(start) {
		b.saved = saved
		b.seen = saved.Spent - saved.Pending
	} else {
		b.saved = Saved{Start: start}
	}
	publish(b.statusLocked())
	return b
}

// Config returns the budget's configuration.
func (b *Budget) Config() Config { return b.cfg }

// Saved returns what to carry over to a reloaded budget.
func (b *Budget) Saved() Saved {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.saved
}

// Take spends one call of class c at now and reports whether it may be
// made: false once the class's share of the period is spent, or while a
// quota error holds the budget exhausted.
func (b *Budget) Take(c Class, now time.Time) bool {
	if b.Shared != nil {
		return b.takeShared(c, now)
	}
	b.mu.Lock()
	b.rollLocked(now)
	if b.saved.Exhausted || b.saved.Spent*100 >= b.cfg.Limit*Shares[c] {
		b.mu.Unlock()
		refused[c].Inc()
		return false
	}
	b.saved.Spent++
	alert := b.alertLocked(false)
	b.changedLocked()
	return b.unlockAlerting(alert)
}

// Exhaust holds the budget exhausted until the reset: the API answered
// that the plan's quota is spent. With Shared, the whole fleet's is.
func (b *Budget) Exhaust(now time.Time) { b.exhaust(now, true) }

// FleetExhausted holds the budget exhausted until the reset: another node
// of the fleet had a quota error (and told Shared already).
func (b *Budget) FleetExhausted(now time.Time) { b.exhaust(now, false) }

func (b *Budget) exhaust(now time.Time, fleet bool) {
	b.mu.Lock()
	b.rollLocked(now)
	if b.saved.Exhausted {
		b.mu.Unlock()
		return
	}
	b.saved.Exhausted = true
	alert := b.alertLocked(true)
	b.changedLocked()
	start := b.saved.Start
	b.unlockAlerting(alert)
	if b.Shared != nil && fleet {
		b.Shared.Exhaust(start, b.cfg.next(start))
	}
}

// Status returns the budget at now.
func (b *Budget) Status(now time.Time) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rollLocked(now)
	return b.statusLocked()
}

func (b *Budget) statusLocked() Status {
	s := Status{Limit: b.cfg.Limit, Period: string(b.cfg.Period), Spent: b.saved.Spent,
		ResetsAt: b.cfg.next(b.saved.Start).UTC()}
	s.Exhausted = b.saved.Exhausted || s.Spent >= s.Limit
	if !s.Exhausted {
		s.Remaining = s.Limit - s.Spent
	}
	return s
}

// rollLocked starts a new period when now is past the current one's end.
func (b *Budget) rollLocked(now time.Time) {
	if now.Before(b.cfg.next(b.saved.Start)) {
		return
	}
	b.saved = Saved{Start: b.cfg.PeriodStart(now)}
	b.seen = 0 // calls made while Redis was down are lost with their period
	b.changedLocked()
}

// alertLocked returns the alert the last change calls for, if any, and
// marks it fired for the period.
func (b *Budget) alertLocked(quota bool) *Alert {
	s := b.statusLocked()
	switch {
	case s.Exhausted && !b.saved.Announced:
		b.saved.Announced, b.saved.Warned = true, true
		return &Alert{Level: AlertExhausted, Status: s, Quota: quota}
	case !b.saved.Warned && s.Spent*100 >= s.Limit*80:
		b.saved.Warned = true
		return &Alert{Level: AlertWarn, Status: s}
	}
	return nil
}

// changedLocked publishes the figures and saves them; under the lock, so
// that saves land in order (OnChange must not block).
func (b *Budget) changedLocked() {
	publish(b.statusLocked())
	if b.OnChange != nil {
		b.OnChange(b.saved, b.cfg.next(b.saved.Start))
	}
}

// unlockAlerting unlocks, then calls OnAlert: it logs and audits, which
// must not hold up other workers' Takes.
func (b *Budget) unlockAlerting(a *Alert) bool {
	start := b.saved.Start
	b.mu.Unlock()
	// In a fleet, the node that claims a threshold first announces it.
	if a != nil && b.OnAlert != nil && (b.Shared == nil || b.Shared.First(start, b.cfg.next(start), a.Level)) {
		b.OnAlert(*a)
	}
	return true
}
