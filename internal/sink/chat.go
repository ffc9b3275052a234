package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// ChatKind is the chat service a Chat posts to.
type ChatKind string

// The chat kinds.
const (
	// Slack: an incoming webhook, a message of Block Kit blocks.
	Slack ChatKind = "slack"
	// Teams: a Teams workflow ("When a Teams webhook request is
	// received"), a message with one Adaptive Card.
	Teams ChatKind = "teams"
)

// Allow is the notice a Chat gives for an unblock caused by an allowlist
// entry (Change.Allowlisted); ChatConfig.On names it like Block and Unblock.
const Allow Action = "allow"

// DefaultDigest is ChatConfig.Digest when zero.
const DefaultDigest = time.Minute

// digestList bounds the decisions a digest lists one by one; the rest are
// counted.
const digestList = 20

// ChatConfig configures a Chat.
type ChatConfig struct {
	Kind ChatKind
	URL  string // the webhook URL, a secret: never logged
	// On is the changes wanted, of Block, Unblock and Allow; empty: all.
	// Notices may be listed too, and go whatever On says.
	On []Action
	// Scope, if set, keeps only the changes of that scope.
	Scope Scope
	// Digest is the shortest time between two messages: the first change
	// after a quiet Digest goes at once, the rest wait for the end of the
	// Digest and go as one summary; default DefaultDigest.
	Digest time.Duration
	// ConsoleURL, if set, is the console's base URL: messages link to the
	// decision's page, ConsoleURL + "/ui/decisions/" + id.
	ConsoleURL string
	Timeout    time.Duration // per POST; default DefaultWebhookTimeout
	Client     *http.Client  // default: a client of its own
	Logf       func(format string, args ...any)
	// Now and After are the digest's clock; nil: the time package's.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// LoadChatURL reads a chat webhook URL from the file at path (trimmed):
// Slack and Teams webhook URLs carry their credential.
func LoadChatURL(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("url_file: %w", err)
	}
	u := strings.TrimSpace(string(b))
	if u == "" {
		return "", fmt.Errorf("url_file: %s: file is empty", path)
	}
	return u, nil
}

// Chat is a Notifier that posts a readable message per decision to Slack
// or Microsoft Teams: what was blocked or lifted, why, for whom, the event
// and the decision id, with a link to the console. At most one message
// goes per Digest: a burst sends its first decision at once and the rest
// in one summary at the end of the Digest. A failed message is retried by
// the Dispatcher; a failed summary is kept (its list bounded) for the next
// one. Close sends what a summary still holds.
type Chat struct {
	cfg    ChatConfig
	host   string
	filter changeFilter
	post   *Webhook // the POST, its errors and its redaction

	mu         sync.Mutex
	quietUntil time.Time // the end of the Digest opened by the last message
	held       []Change  // waiting for the summary, at most digestList
	more       int       // waiting beyond held
	flushing   bool      // the summary goroutine runs
	closing    chan struct{}
	closeOnce  sync.Once
	wg         sync.WaitGroup
}

// NewChat checks cfg and returns its Chat. Nothing runs until a summary
// is due.
func NewChat(cfg ChatConfig) (*Chat, error) {
	if cfg.Kind != Slack && cfg.Kind != Teams {
		return nil, fmt.Errorf("chat kind %q: slack or teams", cfg.Kind)
	}
	post, err := NewWebhook(cfg.URL, nil, WebhookOptions{Timeout: cfg.Timeout, Client: cfg.Client})
	if err != nil {
		// Its message without Webhook's prefix; it never holds the URL.
		return nil, fmt.Errorf("%s: %s", cfg.Kind, strings.TrimPrefix(err.Error(), "sink webhook: "))
	}
	if cfg.ConsoleURL != "" {
		u, err := url.Parse(cfg.ConsoleURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("console_url %q: an http or https URL with a host", cfg.ConsoleURL)
		}
		cfg.ConsoleURL = strings.TrimRight(cfg.ConsoleURL, "/")
	}
	c := &Chat{cfg: cfg, host: post.Host(), post: post, closing: make(chan struct{})}
	if c.filter, err = newChangeFilter(cfg.On, cfg.Scope); err != nil {
		return nil, err
	}
	if c.cfg.Digest <= 0 {
		c.cfg.Digest = DefaultDigest
	}
	if c.cfg.Now == nil {
		c.cfg.Now = time.Now
	}
	if c.cfg.After == nil {
		c.cfg.After = time.After
	}
	if c.cfg.Logf == nil {
		c.cfg.Logf = func(string, ...any) {}
	}
	return c, nil
}

// Name returns the kind, ":" and the URL's host.
func (c *Chat) Name() string { return string(c.cfg.Kind) + ":" + c.host }

// String returns Name, so that printing a Chat cannot show its URL.
func (c *Chat) String() string { return c.Name() }

// GoString returns Name, as String does, for %#v.
func (c *Chat) GoString() string { return c.Name() }

// Host returns the URL's host, for the control plane that is never blocked.
func (c *Chat) Host() string { return c.host }

// notice is what a change tells: block, unblock, or allow.
func notice(ch Change) Action {
	if ch.Allowlisted() {
		return Allow
	}
	return ch.Action
}

// Wants reports whether ch passes the on and scope filters.
func (c *Chat) Wants(ch Change) bool {
	return c.filter.wants(ch)
}

// Apply posts the first wanted change at once if no message went in the
// last Digest, and holds the others for the summary.
func (c *Chat) Apply(ctx context.Context, batch []Change) error {
	var wanted []Change
	for _, ch := range batch {
		if !ch.Replay && c.Wants(ch) {
			wanted = append(wanted, ch)
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	now := c.cfg.Now()
	c.mu.Lock()
	quiet := !now.Before(c.quietUntil) && len(c.held) == 0 && c.more == 0
	c.mu.Unlock()
	if quiet {
		if err := c.send(ctx, c.render(wanted[:1], 0)); err != nil {
			return err // the Dispatcher retries the batch: nothing is held yet
		}
		wanted = wanted[1:]
		c.mu.Lock()
		c.quietUntil = now.Add(c.cfg.Digest)
		c.mu.Unlock()
	}
	if len(wanted) > 0 {
		c.hold(wanted)
	}
	return nil
}

// hold keeps changes for the summary and starts its goroutine.
func (c *Chat) hold(changes []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		if len(c.held) < digestList {
			c.held = append(c.held, ch)
		} else {
			c.more++
		}
	}
	if c.flushing {
		return
	}
	select {
	case <-c.closing:
		return // Close flushes what is held
	default:
	}
	c.flushing = true
	c.wg.Add(1)
	go c.summaries()
}

// summaries sends a summary at the end of each Digest while changes are
// held.
func (c *Chat) summaries() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		wait := c.quietUntil.Sub(c.cfg.Now())
		c.mu.Unlock()
		closing := false
		select {
		case <-c.cfg.After(max(wait, 0)):
		case <-c.closing:
			closing = true
		}
		c.mu.Lock()
		held, more := c.held, c.more
		c.held, c.more = nil, 0
		if len(held) == 0 {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		err := c.sendSummary(held, more)
		c.mu.Lock()
		c.quietUntil = c.cfg.Now().Add(c.cfg.Digest)
		if err != nil {
			c.cfg.Logf("%s: summary of %d decision(s) not sent, kept for the next one: %v", c.Name(), len(held)+more, err)
			c.held, c.more = append(held, c.held...), more+c.more
			if n := len(c.held); n > digestList {
				c.held, c.more = c.held[:digestList], c.more+n-digestList
			}
		}
		if closing {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

func (c *Chat) sendSummary(held []Change, more int) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.post.timeout)
	defer cancel()
	return c.send(ctx, c.render(held, more))
}

// Close stops the summaries, sending what they still hold once.
func (c *Chat) Close() {
	c.closeOnce.Do(func() { close(c.closing) })
	c.wg.Wait()
}

func (c *Chat) render(changes []Change, more int) any {
	m := message(changes, more, c.cfg.Digest, c.cfg.ConsoleURL)
	if c.cfg.Kind == Teams {
		return teamsMessage(m)
	}
	return slackMessage(m)
}

// send POSTs msg as JSON; errors as Webhook's.
func (c *Chat) send(ctx context.Context, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("sink %s: %w", c.Name(), err)
	}
	return c.post.postBody(ctx, c.Name(), body, c.cfg.Now())
}

// Notify posts a notice that is no decision (the API budget's thresholds,
// twice a period at most) at once, outside the digest and the on and
// scope filters: its title, the reset time and what is left.
func (c *Chat) Notify(ctx context.Context, n Notice) error {
	m := chatMessage{Title: bounded(clean(n.Title)), Note: "notice"}
	for _, f := range n.facts() {
		m.Facts = append(m.Facts, chatFact{Name: f[0], Value: bounded(clean(f[1]))})
	}
	if c.cfg.Kind == Teams {
		return c.send(ctx, teamsMessage(m))
	}
	return c.send(ctx, slackMessage(m))
}
