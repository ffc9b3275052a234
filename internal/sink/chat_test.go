package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
)

// The documented schemas, mirrored so that decoding with unknown fields
// disallowed fails on anything they do not define.

// slackDoc is a Slack incoming webhook message (api.slack.com/messaging/webhooks,
// Block Kit): text is the notification fallback; section and context blocks.
type slackDoc struct {
	Text   *string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"elements"`
	} `json:"blocks"`
}

// teamsDoc is a Teams workflow webhook message with one Adaptive Card.
type teamsDoc struct {
	Type        string `json:"type"`
	Attachments []struct {
		ContentType string  `json:"contentType"`
		ContentURL  *string `json:"contentUrl"`
		Content     struct {
			Schema  string `json:"$schema"`
			Type    string `json:"type"`
			Version string `json:"version"`
			Body    []struct {
				Type     string `json:"type"`
				Text     string `json:"text"`
				Weight   string `json:"weight"`
				Size     string `json:"size"`
				IsSubtle bool   `json:"isSubtle"`
				Wrap     bool   `json:"wrap"`
				Facts    []struct {
					Title string `json:"title"`
					Value string `json:"value"`
				} `json:"facts"`
			} `json:"body"`
			Actions []struct {
				Type  string `json:"type"`
				Title string `json:"title"`
				URL   string `json:"url"`
			} `json:"actions"`
		} `json:"content"`
	} `json:"attachments"`
}

func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("payload does not match the schema: %v\n%s", err, body)
	}
}

// checkSlack asserts what Slack requires of a message and returns its
// text, blocks joined.
func checkSlack(t *testing.T, body []byte) string {
	t.Helper()
	var m slackDoc
	decodeStrict(t, body, &m)
	if m.Text == nil || *m.Text == "" {
		t.Error("no text: Slack needs it for notifications")
	}
	if n := len(m.Blocks); n == 0 || n > 50 {
		t.Errorf("%d blocks; Slack takes 1 to 50", n)
	}
	var all []string
	for i, b := range m.Blocks {
		switch b.Type {
		case "section":
			if b.Text == nil || b.Text.Type != "mrkdwn" || b.Text.Text == "" {
				t.Errorf("block %d: section without mrkdwn text", i)
				continue
			}
			if n := utf8.RuneCountInString(b.Text.Text); n > 3000 {
				t.Errorf("block %d: section text of %d characters; Slack takes 3000", i, n)
			}
			all = append(all, b.Text.Text)
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				t.Errorf("block %d: context of %d elements; 1 to 10", i, len(b.Elements))
			}
			for _, e := range b.Elements {
				if e.Type != "mrkdwn" || e.Text == "" {
					t.Errorf("block %d: context element %+v", i, e)
				}
				all = append(all, e.Text)
			}
		default:
			t.Errorf("block %d: unexpected type %q", i, b.Type)
		}
	}
	return strings.Join(all, "\n")
}

// checkTeams asserts what a Teams workflow and Adaptive Cards 1.4 require
// and returns the card's text and facts, and its action URLs.
func checkTeams(t *testing.T, body []byte) (text string, urls []string) {
	t.Helper()
	var m teamsDoc
	decodeStrict(t, body, &m)
	if m.Type != "message" || len(m.Attachments) != 1 {
		t.Fatalf("type %q with %d attachments, want a message with one", m.Type, len(m.Attachments))
	}
	a := m.Attachments[0]
	card := a.Content
	if a.ContentType != "application/vnd.microsoft.card.adaptive" || a.ContentURL != nil {
		t.Errorf("attachment contentType %q contentUrl %v", a.ContentType, a.ContentURL)
	}
	if card.Schema != "http://adaptivecards.io/schemas/adaptive-card.json" || card.Type != "AdaptiveCard" || card.Version < "1.4" {
		t.Errorf("card $schema %q type %q version %q", card.Schema, card.Type, card.Version)
	}
	var all []string
	for i, e := range card.Body {
		switch e.Type {
		case "TextBlock":
			if e.Text == "" {
				t.Errorf("body %d: TextBlock without text", i)
			}
			all = append(all, e.Text)
		case "FactSet":
			if len(e.Facts) == 0 {
				t.Errorf("body %d: FactSet without facts", i)
			}
			for _, f := range e.Facts {
				if f.Title == "" || f.Value == "" {
					t.Errorf("body %d: fact %+v", i, f)
				}
				all = append(all, f.Title+": "+f.Value)
			}
		default:
			t.Errorf("body %d: unexpected type %q", i, e.Type)
		}
	}
	for _, act := range card.Actions {
		if act.Type != "Action.OpenUrl" || act.URL == "" || act.Title == "" {
			t.Errorf("action %+v", act)
		}
		urls = append(urls, act.URL)
	}
	return strings.Join(all, "\n"), urls
}

// chatChange is a tagged block with text a hostile resolver or event
// source could choose.
func chatChange() Change {
	return Change{
		Action: Block, IP: netip.MustParseAddr("192.0.2.7"), Scope: ScopeTagged,
		Client: netip.MustParseAddr("10.1.2.3"), Port: 443, TTL: time.Hour,
		Clients:  []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("10.1.2.4")},
		Decision: "d-42", Reasons: []string{"c2", "score critical"}, Score: "critical",
		Event: "e-1", Ref: "INC-7", Qnames: []string{"evil.example.", "<http://x|click> & *bold*\n[l](http://y)"},
	}
}

func newTestChat(t *testing.T, cfg ChatConfig) *Chat {
	t.Helper()
	c, err := NewChat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestSlackMessageMatchesBlockKit(t *testing.T) {
	srv, reqs := hookServer(t, always(200))
	c := newTestChat(t, ChatConfig{Kind: Slack, URL: srv.URL + "/hook/T0K3N", ConsoleURL: "https://cip.example.org/"})
	if err := c.Apply(context.Background(), []Change{chatChange()}); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	text := checkSlack(t, r.body)
	for _, want := range []string{"Blocked 192.0.2.7 port 443 for client 10.1.2.3", "c2", "critical", "tagged",
		"10.1.2.4", "e-1 (ref INC-7)", "d-42", "<https://cip.example.org/ui/decisions/d-42|"} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
	// A name from the network neither links nor breaks a line.
	if strings.Contains(text, "<http://x") || strings.Contains(text, "click> &") || !strings.Contains(text, `&lt;http://x|click&gt; &amp;`) {
		t.Errorf("hostile name not escaped:\n%s", text)
	}
	if !strings.Contains(text, `*bold*\n[l]`) {
		t.Errorf("line break in a name not cleaned:\n%s", text)
	}
}

func TestSlackSummaryStaysWithinLimits(t *testing.T) {
	long := strings.Repeat("x", 5000)
	var batch []Change
	for i := range 100 {
		ch := block(i, "d-"+long)
		ch.Reasons = []string{long}
		batch = append(batch, ch)
	}
	body, err := json.Marshal(slackMessage(message(batch[:digestList], 80, time.Minute, "")))
	if err != nil {
		t.Fatal(err)
	}
	text := checkSlack(t, body)
	if !strings.Contains(text, "100 more decision(s)") || !strings.Contains(text, "…and 80 more") {
		t.Errorf("summary does not count:\n%.500s", text)
	}
}

func TestTeamsMessageMatchesAdaptiveCard(t *testing.T) {
	srv, reqs := hookServer(t, always(202))
	c := newTestChat(t, ChatConfig{Kind: Teams, URL: srv.URL + "/hook/T0K3N", ConsoleURL: "https://cip.example.org"})
	if err := c.Apply(context.Background(), []Change{chatChange()}); err != nil {
		t.Fatal(err)
	}
	text, urls := checkTeams(t, (<-reqs).body)
	for _, want := range []string{"Blocked 192.0.2.7 port 443 for client 10.1.2.3", "Why: c2, score critical",
		"Score: critical", "Scope: tagged", "Event: e-1 (ref INC-7)", "Decision: d-42"} {
		if !strings.Contains(text, want) {
			t.Errorf("card lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "[l](") || !strings.Contains(text, `\[l\]`) {
		t.Errorf("hostile name can make a link:\n%s", text)
	}
	if len(urls) != 1 || urls[0] != "https://cip.example.org/ui/decisions/d-42" {
		t.Errorf("actions open %q", urls)
	}

	// Without console_url, no action.
	srv2, reqs2 := hookServer(t, always(200))
	c2 := newTestChat(t, ChatConfig{Kind: Teams, URL: srv2.URL + "/hook/T0K3N"})
	u := chatChange()
	u.Action, u.TTL, u.Actor, u.Why = Unblock, 0, "alice", WhyAllowlisted+"false positive"
	if err := c2.Apply(context.Background(), []Change{u}); err != nil {
		t.Fatal(err)
	}
	text, urls = checkTeams(t, (<-reqs2).body)
	if len(urls) != 0 || !strings.Contains(text, "Allowlisted, unblocked 192.0.2.7") || !strings.Contains(text, "By: alice") {
		t.Errorf("allow card %q, actions %q", text, urls)
	}
}

func TestChatFilters(t *testing.T) {
	everyone := Change{Action: Block, IP: ip(1), TTL: time.Hour, Decision: "d-1", Scope: ScopeEveryone}
	tagged := Change{Action: Block, IP: ip(2), TTL: time.Hour, Decision: "d-2", Scope: ScopeTagged, Client: netip.MustParseAddr("10.0.0.1")}
	unblock := Change{Action: Unblock, IP: ip(3), Decision: "d-3", Scope: ScopeEveryone, Why: "operator"}
	allow := Change{Action: Unblock, IP: ip(4), Decision: "d-4", Scope: ScopeEveryone, Why: WhyAllowlisted + "fp"}
	replay := everyone
	replay.IP, replay.Decision, replay.Replay = ip(5), "d-5", true

	for _, tc := range []struct {
		name  string
		on    []Action
		scope Scope
		want  []string
	}{
		{"everything", nil, "", []string{"d-1", "d-2", "d-3", "d-4"}},
		{"on unblock", []Action{Unblock}, "", []string{"d-3"}},
		{"on block allow", []Action{Block, Allow}, "", []string{"d-1", "d-2", "d-4"}},
		{"scope everyone", nil, ScopeEveryone, []string{"d-1", "d-3", "d-4"}},
		{"scope tagged on block", []Action{Block}, ScopeTagged, []string{"d-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reqs := hookServer(t, always(200))
			c := newTestChat(t, ChatConfig{Kind: Slack, URL: srv.URL + "/hook/T0K3N", On: tc.on, Scope: tc.scope, Digest: time.Nanosecond})
			rec := &recorder{name: "enforcer"}
			d := NewDispatcher(Config{Sinks: []Sink{c, rec}, Ledgers: []*Ledger{nil, {}}})
			d.Start()
			var got []string
			for _, ch := range []Change{everyone, tagged, unblock, allow, replay} {
				if !d.Submit(ch) {
					t.Fatalf("Submit %s refused", ch.Decision)
				}
				// One at a time, so that each is a message of its own.
				waitFor(t, "the enforcer to apply "+ch.Decision, func() bool { return len(rec.changes()) == len(got)+1 })
				waitFor(t, "the chat hook to be idle", func() bool { return d.Stats()[c.Name()].Queued == 0 })
				got = append(got, ch.Decision)
			}
			stop(t, d)
			c.Close()
			var posted []string
			for len(reqs) > 0 {
				text := checkSlack(t, (<-reqs).body)
				for _, id := range []string{"d-1", "d-2", "d-3", "d-4", "d-5"} {
					if strings.Contains(text, "decision "+id) {
						posted = append(posted, id)
					}
				}
			}
			if strings.Join(posted, " ") != strings.Join(tc.want, " ") {
				t.Errorf("posted %q, want %q", posted, tc.want)
			}
			// The enforcement sink got every change, the replay too.
			if n := len(rec.changes()); n != 5 {
				t.Errorf("enforcer got %d changes, want 5", n)
			}
		})
	}
}

func TestChatDigestSummarisesABurst(t *testing.T) {
	clock := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	srv, reqs := hookServer(t, always(200))
	c := newTestChat(t, ChatConfig{Kind: Slack, URL: srv.URL + "/hook/T0K3N", Digest: time.Minute, Now: clock.Now, After: clock.After})
	d := NewDispatcher(Config{Sinks: []Sink{c}, Now: clock.Now, After: clock.After})
	d.Start()
	t.Cleanup(func() { stop(t, d) })

	for i := range 100 {
		if !d.Submit(block(i, "d-"+string(rune('A'+i/26))+string(rune('a'+i%26)))) {
			t.Fatal("Submit refused")
		}
	}
	held := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.held) + c.more
	}
	waitFor(t, "the burst to be applied", func() bool { return d.Stats()[c.Name()].Applied == 100 })
	waitFor(t, "the summary to wait for the digest", func() bool { return held() == 99 && clock.Timers() == 1 })
	if n := len(reqs); n != 1 {
		t.Fatalf("%d messages within the digest, want 1", n)
	}
	first := checkSlack(t, (<-reqs).body)
	if !strings.Contains(first, "Blocked 192.0.2.0 for everyone") {
		t.Errorf("first message:\n%s", first)
	}

	clock.Advance(time.Minute)
	waitFor(t, "the summary", func() bool { return len(reqs) == 1 })
	summary := checkSlack(t, (<-reqs).body)
	for _, want := range []string{"99 more decision(s) since the last message", "192.0.2.1 ", "…and 79 more", "one message per 1m"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	// Nothing held: the next digest ends without a message, and the next
	// decision goes at once.
	waitFor(t, "the next digest", func() bool { return clock.Timers() == 1 })
	clock.Advance(time.Minute)
	waitFor(t, "the summaries to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.flushing
	})
	if len(reqs) != 0 {
		t.Fatal("a message without decisions")
	}
	d.Submit(block(200, "d-late"))
	waitFor(t, "the next decision", func() bool { return len(reqs) == 1 })
	if text := checkSlack(t, (<-reqs).body); !strings.Contains(text, "d-late") {
		t.Errorf("next message:\n%s", text)
	}
}

func TestChatCloseSendsWhatIsHeld(t *testing.T) {
	clock := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	srv, reqs := hookServer(t, always(200))
	c := newTestChat(t, ChatConfig{Kind: Teams, URL: srv.URL + "/hook/T0K3N", Now: clock.Now, After: clock.After})
	if err := c.Apply(context.Background(), []Change{block(1, "d-1"), block(2, "d-2"), block(3, "d-3")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := len(reqs); n != 2 {
		t.Fatalf("%d messages, want the first and a summary", n)
	}
	<-reqs
	if text, _ := checkTeams(t, (<-reqs).body); !strings.Contains(text, "2 more decision(s)") {
		t.Errorf("summary:\n%s", text)
	}
}

func TestNewChatRejects(t *testing.T) {
	for _, tc := range []struct {
		cfg  ChatConfig
		want string
	}{
		{ChatConfig{Kind: "irc", URL: "https://x.example"}, `chat kind "irc"`},
		{ChatConfig{Kind: Slack, URL: "ftp://hooks.example/T0K3N"}, "scheme must be http or https"},
		{ChatConfig{Kind: Slack, URL: "https://hooks.example/T0K3N", On: []Action{"expire"}}, `on "expire"`},
		{ChatConfig{Kind: Slack, URL: "https://hooks.example/T0K3N", Scope: "monitor"}, `scope "monitor"`},
		{ChatConfig{Kind: Teams, URL: "https://hooks.example/T0K3N", ConsoleURL: "cip.example.org"}, "console_url"},
	} {
		_, err := NewChat(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "T0K3N") {
			t.Errorf("%+v: error %v, want %q without the URL's path", tc.cfg.Kind, err, tc.want)
		}
	}
}

// A notice (the API budget's) is posted at once, whatever the hook's
// filters and digest, as a valid Slack or Teams message.
func TestChatNotify(t *testing.T) {
	n := Notice{Kind: NoticeAPIBudget, Level: "warning", Title: "API budget 80% spent: 16 of 20 per day",
		Spent: 16, Limit: 20, Remaining: 4, Period: "day", ResetsAt: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}
	srv, reqs := hookServer(t, always(200))
	c := newTestChat(t, ChatConfig{Kind: Slack, URL: srv.URL + "/hook/T0K3N", On: []Action{Allow}, Digest: time.Hour})
	for range 2 {
		if err := c.Notify(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		text := checkSlack(t, (<-reqs).body)
		if !strings.Contains(text, "API budget 80% spent: 16 of 20 per day") || !strings.Contains(text, "*Resets at:* 2026-12-08T00:00:00Z") {
			t.Errorf("Slack notice:\n%s", text)
		}
	}
	srv2, reqs2 := hookServer(t, always(202))
	c2 := newTestChat(t, ChatConfig{Kind: Teams, URL: srv2.URL + "/hook/T0K3N"})
	n.Level, n.Title = "exhausted", "API budget exhausted"
	if err := c2.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if text, _ := checkTeams(t, (<-reqs2).body); !strings.Contains(text, "API budget exhausted") || !strings.Contains(text, "Remaining: 4") {
		t.Errorf("Teams notice:\n%s", text)
	}
}
