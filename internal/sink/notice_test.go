package sink

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func budgetNotice() Notice {
	return Notice{Kind: NoticeAPIBudget, Level: "exhausted", Title: "API budget exhausted: 20 of 20 per day spent\n<b>",
		Spent: 20, Limit: 20, Period: "day", ResetsAt: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}
}

// A webhook whose on lists notice gets the documented {"notice": ...}
// body, signed as a batch is; one whose on leaves it out gets nothing.
func TestWebhookNoticeBodySigned(t *testing.T) {
	srv, reqs := hookServer(t, always(200))
	secret := []byte("s3cret")
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", secret, WebhookOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blocksOnly, err := w.Notifying([]Action{Block}, "")
	if err != nil {
		t.Fatal(err)
	}
	if blocksOnly.WantsNotices() {
		t.Error("a webhook on block wants notices")
	}
	if err := blocksOnly.Notify(context.Background(), budgetNotice()); err != nil {
		t.Fatal(err)
	}
	notices, err := w.Notifying([]Action{Notices}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !notices.WantsNotices() || notices.Wants(chatChange()) {
		t.Error("a webhook on notice does not want notices, or wants a block")
	}
	if err := notices.Notify(context.Background(), budgetNotice()); err != nil {
		t.Fatal(err)
	}
	r := <-reqs // the first request: the on-block webhook sent none
	if !verify(secret, r.header, r.body) {
		t.Errorf("notice signature does not verify: %s", r.header.Get("X-CIP-Signature"))
	}
	var got struct {
		Notice map[string]any `json:"notice"`
	}
	decodeStrict(t, r.body, &got)
	want := map[string]any{"kind": "api_budget", "level": "exhausted", "title": `API budget exhausted: 20 of 20 per day spent\n<b>`,
		"spent": 20.0, "limit": 20.0, "remaining": 0.0, "period": "day", "resets_at": "2026-12-08T00:00:00Z", "quota": false}
	for k, v := range want {
		if got.Notice[k] != v {
			t.Errorf("notice %s = %#v, want %#v", k, got.Notice[k], v)
		}
	}
	if ts, _ := got.Notice["time"].(string); ts == "" || len(got.Notice) != len(want)+1 {
		t.Errorf("notice %v: want exactly the documented fields and a time", got.Notice)
	}
	select {
	case r := <-reqs:
		t.Errorf("a second request: %s", r.body)
	default:
	}
}

// The shipped Splunk template sends one notice event; the SOAR ticket
// template is for changes only, and a webhook on notice refuses it (and
// any template that renders nothing for a notice) at setup.
func TestShippedTemplatesAndNotices(t *testing.T) {
	srv, reqs := hookServer(t, always(200))
	hec, err := LoadWebhookTemplate("../../contrib/templates/splunk-hec.tmpl", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{Template: hec})
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.Notifying([]Action{Block, Notices}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), budgetNotice()); err != nil {
		t.Fatal(err)
	}
	docs := decodeAll(t, (<-reqs).body)
	if len(docs) != 1 || docs[0]["sourcetype"] != "coredns-cip:notice" || docs[0]["source"] != "coredns-cip" {
		t.Fatalf("HEC notice %v, want one coredns-cip:notice event", docs)
	}
	ev, _ := docs[0]["event"].(map[string]any)
	if ev["level"] != "exhausted" || ev["limit"] != 20.0 || ev["resets_at"] != "2026-12-08T00:00:00Z" || ev["kind"] != "api_budget" {
		t.Errorf("HEC notice event %v", ev)
	}

	soar, err := LoadWebhookTemplate("../../contrib/templates/soar-ticket.tmpl", "application/json")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{Template: soar})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Notifying([]Action{Block}, ""); err != nil {
		t.Errorf("SOAR template on block: %v", err)
	}
	if _, err := ws.Notifying([]Action{Block, Notices}, ""); err == nil || !strings.Contains(err.Error(), "renders nothing for a notice; leave notice out of on") {
		t.Errorf("SOAR template on notice: error %v, want renders nothing", err)
	}

	notJSON, err := LoadWebhookTemplate(writeFile(t, "n.tmpl", `{{with .Notice}}{"t": {{.Title}}}{{end}}{{range .Changes}}{"ip": {{json .IP}}}{{end}}`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	wn, _ := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{Template: notJSON})
	if _, err := wn.Notifying([]Action{Notices}, ""); err == nil || !strings.Contains(err.Error(), "sample notice is not JSON") || !strings.Contains(err.Error(), "n.tmpl") {
		t.Errorf("a template writing a notice's title bare: error %v, want not JSON naming the file", err)
	}
}

// A chat hook is told of notices whatever its on says; on notice alone
// keeps every change out.
func TestChatOnNotice(t *testing.T) {
	c := newTestChat(t, ChatConfig{Kind: Slack, URL: "https://hooks.example/T0K3N", On: []Action{Notices}})
	if !c.WantsNotices() || c.Wants(chatChange()) {
		t.Error("a chat hook on notice wants a block, or no notices")
	}
	if blocks := newTestChat(t, ChatConfig{Kind: Slack, URL: "https://hooks.example/T0K3N", On: []Action{Block}}); !blocks.WantsNotices() {
		t.Error("a chat hook on block no longer gets notices")
	}
	_, err := NewChat(ChatConfig{Kind: Slack, URL: "https://hooks.example/T0K3N", On: []Action{"notices"}})
	if err == nil || !strings.Contains(err.Error(), `on "notices": block, unblock, allow or notice`) {
		t.Errorf("on notices: error %v", err)
	}
}

// The generic notice body is JSON whatever the title, its control
// characters made visible.
func TestNoticeBodyIsJSON(t *testing.T) {
	b, err := noticeBody(Notice{Title: "a \"quoted\" </script>\x07"}, time.Unix(0, 0))
	if err != nil || !json.Valid(b) || strings.Contains(string(b), "</script>") || strings.Contains(string(b), "\x07") {
		t.Errorf("body %s (%v)", b, err)
	}
}
