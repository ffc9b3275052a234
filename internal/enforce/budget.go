package enforce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/state"
)

// kindBudget holds the API budget's current period (one record, expiring
// at the reset), so that a restart does not grant a fresh budget.
const (
	kindBudget state.Kind = "budget"
	budgetKey  string     = "period"
)

// startBudget returns the API budget of `budget`, or nil. It resumes from
// the budget of the engine this one replaces (a reload), else from the
// state directory: what was spent in the current period stays spent.
func (e *Engine) startBudget() *budget.Budget {
	if e.cfg.Budget == nil {
		e.st.budget.Store(nil)
		return nil
	}
	var saved budget.Saved
	if prev := e.st.budget.Load(); prev != nil {
		saved = prev.Saved()
	} else if e.st.store != nil {
		if s := loadAll[budget.Saved](e.st, kindBudget, e.log); len(s) > 0 {
			saved = s[0]
		}
	}
	b := budget.New(*e.cfg.Budget, saved, e.Now())
	b.OnChange = func(s budget.Saved, expires time.Time) { e.persist(kindBudget, budgetKey, expires, s) }
	b.OnAlert = e.budgetAlert
	if f := e.st.fleet; f != nil {
		b.Shared = &fleetBudget{e: e, f: f}
	}
	e.st.budget.Store(b)
	e.budget = b
	return b
}

// budgetAlert logs and audits a budget threshold, once per period each.
func (e *Engine) budgetAlert(a budget.Alert) {
	s := a.Status
	detail := fmt.Sprintf("%d%% spent: %d of %d calls per %s; resets at %s", s.Spent*100/s.Limit, s.Spent, s.Limit,
		s.Period, s.ResetsAt.Format(time.RFC3339))
	if a.Level == budget.AlertExhausted {
		detail = fmt.Sprintf("exhausted: %d of %d calls per %s spent; no API call until %s", s.Spent, s.Limit,
			s.Period, s.ResetsAt.Format(time.RFC3339))
		if a.Quota {
			detail = "exhausted by a quota error from the API; no API call until " + s.ResetsAt.Format(time.RFC3339)
		}
		e.log.Errorf("api budget %s", detail)
	} else {
		e.log.Warningf("api budget %s", detail)
	}
	e.Audit(audit.Entry{Kind: audit.KindBudget, Actor: actorEngine, Detail: a.Level + ": " + detail})
	e.notifyBudget(a)
}

// notifier is a hook told of notices: a chat hook (sink.Chat), or a
// webhook with on/scope filters (sink.NotifyingWebhook) whose on lists
// notice.
type notifier interface {
	Name() string
	WantsNotices() bool
	Notify(ctx context.Context, n sink.Notice) error
}

// noticeTimeout bounds a notice to one hook from the alert on, the wait
// for the hook's previous notice and the tries included: a notice is never
// retried beyond it nor queued behind decisions, and Stop waits no longer.
const noticeTimeout = 30 * time.Second

// noticeHook is a notifier and the end of its chain of notices: each
// waits for the one before it to the same hook, so that a receiver gets
// the 80% notice before the exhaustion.
type noticeHook struct {
	notifier
	mu   sync.Mutex
	last chan struct{} // closed when the last notice queued is done
}

// next returns the chain's end to wait for, and the new end to close.
func (h *noticeHook) next() (prev <-chan struct{}, done chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev, done = h.last, make(chan struct{})
	h.last = done
	return prev, done
}

// notifyBudget tells every hook that wants notices of a budget alert, in
// the background: the worker that crossed the threshold has calls to
// make. The budget calls it once per fleet (budget.Shared.First).
func (e *Engine) notifyBudget(a budget.Alert) {
	ns := e.notifiers.Load()
	if ns == nil || len(*ns) == 0 {
		return
	}
	n := budgetNotice(a)
	for _, h := range *ns {
		prev, done := h.next()
		e.bg.Go(func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), noticeTimeout) // the wait included
			defer cancel()
			if prev != nil {
				select {
				case <-prev:
				case <-ctx.Done():
					e.log.Warningf("api budget: hook %s: notice not sent: the one before it took %s", h.Name(), noticeTimeout)
					return
				}
			}
			if err := notify(ctx, h, n); err != nil {
				e.log.Warningf("api budget: hook %s: notice not sent: %v", h.Name(), err)
			}
		})
	}
}

// noticeRetries are the waits before the second and third try of a
// notice that failed in a way a retry may mend (not ErrRejected).
var noticeRetries = []time.Duration{time.Second, 4 * time.Second}

// notify tells h of n, trying again after a transient failure while ctx
// lasts, at most len(noticeRetries) times.
func notify(ctx context.Context, h notifier, n sink.Notice) error {
	for i := 0; ; i++ {
		err := h.Notify(ctx, n)
		if err == nil || errors.Is(err, sink.ErrRejected) || i == len(noticeRetries) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(noticeRetries[i]):
		}
	}
}

// budgetNotice is the notice of a budget alert.
func budgetNotice(a budget.Alert) sink.Notice {
	s := a.Status
	title := fmt.Sprintf("API budget %d%% spent: %d of %d per %s", s.Spent*100/s.Limit, s.Spent, s.Limit, s.Period)
	if a.Level == budget.AlertExhausted {
		title = fmt.Sprintf("API budget exhausted: %d of %d per %s spent", s.Spent, s.Limit, s.Period)
		if a.Quota {
			title = "API budget exhausted by a quota error from the API"
		}
	}
	return sink.Notice{Kind: sink.NoticeAPIBudget, Level: a.Level, Title: title, Spent: s.Spent, Limit: s.Limit,
		Remaining: s.Remaining, Period: s.Period, ResetsAt: s.ResetsAt, Quota: a.Quota}
}

// budgetClass is what a call for client's IP is worth to the budget:
// critical is a connection to a critical port; otherwise the client's tag
// decides (an untagged client's connection counts as live).
func (e *Engine) budgetClass(client netip.Addr, critical bool, now time.Time) budget.Class {
	if critical {
		return budget.Critical
	}
	if t, ok := e.st.tags.Lookup(client, now); ok {
		return budget.ClassOfTag(t.Reason)
	}
	return budget.Live
}

// budgetStatus is the budget for GET /v1/status; nil without one.
func (e *Engine) budgetStatus(now time.Time) *adminapi.BudgetStatus {
	if e.budget == nil {
		return nil
	}
	e.budget.Refresh(now) // the fleet's count, in a fleet
	s := e.budget.Status(now)
	return &adminapi.BudgetStatus{Limit: s.Limit, Period: s.Period, Spent: s.Spent, Remaining: s.Remaining,
		Exhausted: s.Exhausted, ResetsAt: s.ResetsAt}
}

// budgetExhausted reports whether the budget lets no call through now.
func (e *Engine) budgetExhausted() bool {
	return e.budget != nil && e.budget.Status(e.Now()).Exhausted
}
