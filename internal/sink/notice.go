package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Notices is the word of a hook's on filter for notices (a Notice): a
// chat hook is told of them whatever its on says, a webhook only when its
// on lists them, since a webhook's receiver expects change batches.
const Notices Action = "notice"

// NoticeAPIBudget is the Kind of the API budget's notices.
const NoticeAPIBudget = "api_budget"

// Notice is news for a notification hook that is no decision: the API
// budget's 80% and exhaustion, once a period each. A hook gets it once,
// outside its digest and scope, never queued nor reconciled.
type Notice struct {
	Kind      string    // what it is about: NoticeAPIBudget
	Level     string    // "warning" (80% spent) or "exhausted"
	Title     string    // one line, as a chat hook titles it
	Spent     int64     // calls spent in the period
	Limit     int64     // calls the period allows
	Remaining int64     // calls left (0 once exhausted)
	Period    string    // "day" or "month"
	ResetsAt  time.Time // when the next period starts
	Quota     bool      // exhausted by a quota error from the API
}

// facts are the notice's details as a chat message lists them.
func (n Notice) facts() [][2]string {
	return [][2]string{{"Resets at", n.ResetsAt.UTC().Format(time.RFC3339)}, {"Remaining", fmt.Sprint(n.Remaining)}}
}

// webhookNotice is a Notice as a generic webhook's receiver sees it.
type webhookNotice struct {
	Kind      string `json:"kind"`
	Level     string `json:"level"`
	Title     string `json:"title"`
	Spent     int64  `json:"spent"`
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	Period    string `json:"period"`
	ResetsAt  string `json:"resets_at"`
	Quota     bool   `json:"quota"`
	Time      string `json:"time"`
}

// noticeBody is the generic webhook body of n sent at now:
// {"notice": {...}}, never {"changes": ...}, so that a receiver tells the
// two apart by the key.
func noticeBody(n Notice, now time.Time) ([]byte, error) {
	return json.Marshal(struct {
		Notice webhookNotice `json:"notice"`
	}{webhookNotice{
		Kind: n.Kind, Level: n.Level, Title: clean(n.Title), Spent: n.Spent, Limit: n.Limit,
		Remaining: n.Remaining, Period: n.Period, ResetsAt: n.ResetsAt.UTC().Format(time.RFC3339),
		Quota: n.Quota, Time: now.UTC().Format(time.RFC3339),
	}})
}

// WantsNotices reports whether the webhook's on lists notice.
func (n *NotifyingWebhook) WantsNotices() bool { return n.filter.on[Notices] }

// Notify POSTs notice once, signed as a batch is: the generic body
// ({"notice": {...}}), or what the template renders with .Notice set and
// no .Changes. A template that renders nothing for it sends nothing. A
// webhook whose on leaves notices out is not told.
func (n *NotifyingWebhook) Notify(ctx context.Context, notice Notice) error {
	if !n.WantsNotices() {
		return nil
	}
	now := time.Now()
	var body []byte
	var err error
	if n.template != nil {
		body, err = n.template.renderNotice(notice, now)
	} else {
		body, err = noticeBody(notice, now)
	}
	if err != nil {
		return fmt.Errorf("sink %s: notice: %w", n.Name(), err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return n.postBody(ctx, n.Name(), body, now)
}

// WantsNotices is true: people are told of notices whatever the chat
// hook's on says, as they were before on knew the word.
func (c *Chat) WantsNotices() bool { return true }

// sampleNotice is what a template of a webhook told of notices is tried
// on at setup.
func sampleNotice() Notice {
	return Notice{Kind: NoticeAPIBudget, Level: "exhausted", Title: "API budget exhausted: 20 of 20 per day spent",
		Spent: 20, Limit: 20, Period: "day", ResetsAt: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}
}
