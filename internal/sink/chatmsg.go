package sink

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// Bounds that keep a message readable and within Slack's limits (a
// section's text at most 3000 characters, 50 blocks a message).
const (
	chatValueMax    = 300  // characters of one fact's value
	chatListMax     = 5    // names or clients listed before "and N more"
	slackSectionMax = 3000 // Slack's limit on a section's text
)

// chatMessage is a message before it is rendered for Slack or Teams. Its
// text is plain and already cleaned (textsafe) and bounded; each renderer
// escapes it for its own markup.
type chatMessage struct {
	Title string
	Facts []chatFact // one decision
	Lines []string   // a summary: one line per decision
	More  int        // a summary: decisions beyond Lines
	Link  string     // the console's page of the decision, or ""
	Note  string     // the decision id, or what the summary covers
}

type chatFact struct{ Name, Value string }

// message builds the message of changes: one decision, or a summary of
// several (more uncounted in changes).
func message(changes []Change, more int, digest time.Duration, console string) chatMessage {
	if len(changes) == 1 && more == 0 {
		return decisionMessage(changes[0], console)
	}
	n := len(changes) + more
	m := chatMessage{
		Title: fmt.Sprintf("%d more decision(s) since the last message", n),
		More:  more,
		Note:  "coredns-cip sends at most one message per " + optval.Short(digest) + " per hook",
	}
	for _, c := range changes {
		line := fmt.Sprintf("%s %s (%s)", headline(c), clean(strings.Join(c.Reasons, ", ")), clean(c.Decision))
		m.Lines = append(m.Lines, bounded(line))
	}
	return m
}

// headline says what happened, to what, for whom.
func headline(c Change) string {
	var verb string
	switch notice(c) {
	case Allow:
		verb = "Allowlisted, unblocked"
	case Unblock:
		verb = "Unblocked"
	default:
		verb = "Blocked"
	}
	if c.EffectiveScope() == ScopeTagged {
		to := c.Target()
		if c.Port != 0 {
			to = fmt.Sprintf("%s port %d", to, c.Port)
		}
		return fmt.Sprintf("%s %s for client %s", verb, to, c.Client)
	}
	return fmt.Sprintf("%s %s for everyone", verb, c.Target())
}

func decisionMessage(c Change, console string) chatMessage {
	m := chatMessage{Title: headline(c), Note: "decision " + clean(c.Decision)}
	add := func(name, value string) {
		if value != "" {
			m.Facts = append(m.Facts, chatFact{name, bounded(value)})
		}
	}
	add("Why", clean(strings.Join(c.Reasons, ", ")))
	add("Score", clean(c.Score))
	add("Scope", string(c.EffectiveScope()))
	if c.Client.IsValid() {
		add("Client", c.Client.String())
	}
	var clients []string
	for _, a := range c.Clients {
		clients = append(clients, a.String())
	}
	add("Clients", listed(clients))
	add("Names", listed(c.Qnames))
	event := clean(c.Event)
	if c.Ref != "" {
		event += " (ref " + clean(c.Ref) + ")"
	}
	add("Event", event)
	if c.Action == Block && c.TTL > 0 {
		add("For", optval.Short(c.TTL.Round(time.Second)))
	}
	if c.Action == Unblock {
		add("By", clean(c.Actor))
		add("Reason", clean(c.Why))
	}
	add("Narrowed", clean(c.Narrowed))
	add("Decision", clean(c.Decision))
	if console != "" && c.Decision != "" {
		m.Link = console + "/ui/decisions/" + url.PathEscape(c.Decision)
	}
	return m
}

// clean makes text from the network or an operator safe to show.
func clean(s string) string { return textsafe.Clean(s) }

// bounded cuts s to chatValueMax characters.
func bounded(s string) string {
	r := []rune(s)
	if len(r) <= chatValueMax {
		return s
	}
	return string(r[:chatValueMax-1]) + "…"
}

// listed joins the first chatListMax items, cleaned, and counts the rest.
func listed(items []string) string {
	var out []string
	for i, s := range items {
		if i == chatListMax {
			out = append(out, fmt.Sprintf("and %d more", len(items)-i))
			break
		}
		out = append(out, clean(s))
	}
	return strings.Join(out, ", ")
}

// Slack incoming webhook: {"text": fallback, "blocks": [...]}, the blocks
// sections and a context of mrkdwn text objects.
type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"` // section or context
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"` // mrkdwn
	Text string `json:"text"`
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackMessage(m chatMessage) slackPayload {
	section := func(text string) slackBlock {
		return slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}}
	}
	p := slackPayload{Text: slackEscape.Replace(m.Title)}
	p.Blocks = append(p.Blocks, section("*"+slackEscape.Replace(m.Title)+"*"))
	var facts []string
	for _, f := range m.Facts {
		facts = append(facts, "*"+f.Name+":* "+slackEscape.Replace(f.Value))
	}
	if m.Link != "" {
		facts = append(facts, "<"+slackEscape.Replace(m.Link)+"|Open the decision in the console>")
	}
	lines := facts
	for _, l := range m.Lines {
		lines = append(lines, "• "+slackEscape.Replace(l))
	}
	if m.More > 0 {
		lines = append(lines, fmt.Sprintf("…and %d more", m.More))
	}
	// One section per 3000 characters of lines: each line is bounded, so
	// the blocks stay few.
	var cur strings.Builder
	for _, l := range lines {
		if cur.Len() > 0 && cur.Len()+1+len(l) > slackSectionMax {
			p.Blocks = append(p.Blocks, section(cur.String()))
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(l)
	}
	if cur.Len() > 0 {
		p.Blocks = append(p.Blocks, section(cur.String()))
	}
	p.Blocks = append(p.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: "coredns-cip: " + slackEscape.Replace(m.Note)}}})
	return p
}

// Teams workflow webhook: a message activity with one Adaptive Card
// attachment.
type teamsPayload struct {
	Type        string            `json:"type"` // message
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string       `json:"contentType"` // application/vnd.microsoft.card.adaptive
	ContentURL  *string      `json:"contentUrl"`  // null
	Content     adaptiveCard `json:"content"`
}

type adaptiveCard struct {
	Schema  string        `json:"$schema"`
	Type    string        `json:"type"` // AdaptiveCard
	Version string        `json:"version"`
	Body    []cardElement `json:"body"`
	Actions []cardAction  `json:"actions,omitempty"`
}

type cardElement struct {
	Type     string     `json:"type"` // TextBlock or FactSet
	Text     string     `json:"text,omitempty"`
	Weight   string     `json:"weight,omitempty"`
	Size     string     `json:"size,omitempty"`
	IsSubtle bool       `json:"isSubtle,omitempty"`
	Wrap     bool       `json:"wrap,omitempty"`
	Facts    []cardFact `json:"facts,omitempty"`
}

type cardFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type cardAction struct {
	Type  string `json:"type"` // Action.OpenUrl
	Title string `json:"title"`
	URL   string `json:"url"`
}

// teamsEscape keeps text from the network from making links or emphasis
// in the markdown subset a TextBlock and a fact's value render.
var teamsEscape = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "<", "&lt;", ">", "&gt;")

func teamsMessage(m chatMessage) teamsPayload {
	card := adaptiveCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		Body:    []cardElement{{Type: "TextBlock", Text: teamsEscape.Replace(m.Title), Weight: "Bolder", Size: "Medium", Wrap: true}},
	}
	if len(m.Facts) > 0 {
		set := cardElement{Type: "FactSet"}
		for _, f := range m.Facts {
			set.Facts = append(set.Facts, cardFact{Title: f.Name, Value: teamsEscape.Replace(f.Value)})
		}
		card.Body = append(card.Body, set)
	}
	for _, l := range m.Lines {
		card.Body = append(card.Body, cardElement{Type: "TextBlock", Text: "- " + teamsEscape.Replace(l), Wrap: true})
	}
	if m.More > 0 {
		card.Body = append(card.Body, cardElement{Type: "TextBlock", Text: fmt.Sprintf("…and %d more", m.More), Wrap: true})
	}
	card.Body = append(card.Body, cardElement{Type: "TextBlock", Text: "coredns-cip: " + teamsEscape.Replace(m.Note), IsSubtle: true, Size: "Small", Wrap: true})
	if m.Link != "" {
		card.Actions = []cardAction{{Type: "Action.OpenUrl", Title: "Open the decision in the console", URL: m.Link}}
	}
	return teamsPayload{Type: "message", Attachments: []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}
