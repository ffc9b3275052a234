package enforce

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/nftset"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// HookKind is the kind of a hook line.
type HookKind string

// The hook kinds.
const (
	HookNFTables HookKind = "nftables"
	HookExec     HookKind = "exec"
	HookWebhook  HookKind = "webhook"
	// HookSlack and HookTeams notify people (sink.Chat): they are told of
	// new decisions, never re-sent, reconciled or journaled.
	HookSlack HookKind = "slack"
	HookTeams HookKind = "teams"
)

// Notifies reports whether h tells people rather than enforcing: a chat
// hook, or a webhook with on/scope filters.
func (h HookSpec) Notifies() bool {
	return h.Kind == HookSlack || h.Kind == HookTeams || h.WebhookNotify != nil
}

// HookSpec is a parsed `hook` line; its sink is built when the engine
// starts (an nftables hook connects to the kernel then).
type HookSpec struct {
	Kind    HookKind
	NFT     nftset.Config   // nftables
	NetNS   string          // nftables: network namespace name, "" = ours
	Exec    *sink.Exec      // exec
	Webhook *sink.Webhook   // webhook
	Chat    sink.ChatConfig // slack, teams: a Chat is built per engine
	Line    string          // the line's arguments, for messages

	// WebhookNotify is Webhook with on/scope filters (a notification
	// hook), or nil.
	WebhookNotify *sink.NotifyingWebhook
}

// ParseNFTablesHook reads the arguments of a line
// `hook nftables FAMILY TABLE SET4 SET6 [create] [scoped] [netns NAME]`
// (args[0] is "nftables"); "-" names no set. logf is told what the sink
// skips (see nftset.Config.Logf).
func ParseNFTablesHook(args []string, logf func(format string, args ...any)) (HookSpec, error) {
	h := HookSpec{Kind: HookNFTables}
	if len(args) < 5 {
		return h, fmt.Errorf("syntax is hook nftables FAMILY TABLE SET4 SET6 [create] [scoped] [netns NAME] (use - for no set)")
	}
	noneIfDash := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	h.NFT = nftset.Config{Family: args[1], Table: args[2], Set4: noneIfDash(args[3]), Set6: noneIfDash(args[4]), Logf: logf}
	for i := 5; i < len(args); i++ {
		switch args[i] {
		case "create":
			h.NFT.Create = true
		case "scoped":
			h.NFT.Scoped = true
		case "netns":
			if i+1 >= len(args) || strings.ContainsAny(args[i+1], "/.") || args[i+1] == "" {
				return h, fmt.Errorf("nftables: netns needs a namespace NAME (as in /var/run/netns/NAME)")
			}
			h.NetNS = args[i+1]
			i++
		default:
			return h, fmt.Errorf("nftables: unknown flag %q (create, scoped or netns NAME)", args[i])
		}
	}
	return h, h.NFT.Validate()
}

// ChatHookSyntax is the syntax of a slack or teams hook line.
const ChatHookSyntax = "hook slack|teams URL|url_file PATH [on block|unblock|allow|notice...] [scope everyone|tagged] [digest DURATION] [console_url URL]"

// ParseChatHook reads the arguments of a `hook slack` or `hook teams` line
// (args[0] is the kind; see ChatHookSyntax). logf is told of summaries
// that could not be sent.
func ParseChatHook(args []string, logf func(format string, args ...any)) (HookSpec, error) {
	h := HookSpec{Kind: HookKind(args[0])}
	cfg := sink.ChatConfig{Kind: sink.ChatKind(args[0]), Logf: logf}
	rest := args[1:]
	switch {
	case len(rest) >= 2 && rest[0] == "url_file":
		u, err := sink.LoadChatURL(rest[1])
		if err != nil {
			return h, err
		}
		cfg.URL, rest = u, rest[2:]
	case len(rest) >= 1 && rest[0] != "url_file":
		cfg.URL, rest = rest[0], rest[1:]
	default:
		return h, fmt.Errorf("%s: no URL; syntax is %s", args[0], ChatHookSyntax)
	}
	given := map[string]bool{}
	for len(rest) > 0 {
		key := rest[0]
		if given[key] {
			return h, fmt.Errorf("%s: %s given twice", args[0], key)
		}
		given[key] = true
		n, err := chatOption(&cfg, key, rest[1:])
		if err != nil {
			return h, fmt.Errorf("%s: %w; syntax is %s", args[0], err, ChatHookSyntax)
		}
		rest = rest[1+n:]
	}
	if _, err := sink.NewChat(cfg); err != nil {
		return h, err
	}
	h.Chat = cfg
	return h, nil
}

// chatOption sets option key of a chat hook from the values that follow
// it and returns how many it took.
func chatOption(cfg *sink.ChatConfig, key string, vals []string) (int, error) {
	chatKeys := []string{"on", "scope", "digest", "console_url"}
	switch key {
	case "on":
		n := 0
		for n < len(vals) && !slices.Contains(chatKeys, vals[n]) {
			cfg.On = append(cfg.On, sink.Action(vals[n]))
			n++
		}
		if n == 0 {
			return 0, fmt.Errorf("on needs block, unblock, allow or notice")
		}
		return n, nil
	case "scope", "digest", "console_url":
		if len(vals) == 0 {
			return 0, fmt.Errorf("%s needs a value", key)
		}
	default:
		return 0, fmt.Errorf("unknown option %q (%s)", key, strings.Join(chatKeys, ", "))
	}
	switch key {
	case "scope":
		cfg.Scope = sink.Scope(vals[0])
	case "digest":
		d, err := optval.DurationUpTo(vals[0], 24*time.Hour)
		if err != nil {
			return 0, fmt.Errorf("digest %w", err)
		}
		cfg.Digest = d
	case "console_url":
		cfg.ConsoleURL = vals[0]
	}
	return 1, nil
}

// BuildSinks makes the sinks of specs; nftables ones connect now. close
// releases them.
func BuildSinks(specs []HookSpec) (sinks []sink.Sink, close func(), err error) {
	var closers []func()
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	for _, h := range specs {
		s, closer, err := h.build()
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("hook %s: %w", h.Line, err)
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		sinks = append(sinks, s)
	}
	return sinks, closeAll, nil
}

func (h HookSpec) build() (sink.Sink, func(), error) {
	switch h.Kind {
	case HookExec:
		return h.Exec, nil, nil
	case HookWebhook:
		if h.WebhookNotify != nil {
			return h.WebhookNotify, nil, nil
		}
		return h.Webhook, nil, nil
	case HookSlack, HookTeams:
		c, err := sink.NewChat(h.Chat)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	case HookNFTables:
	default:
		return nil, nil, fmt.Errorf("unknown kind %q", h.Kind)
	}
	cfg := h.NFT
	var ns *os.File
	if h.NetNS != "" {
		f, err := os.Open(filepath.Join("/var/run/netns", h.NetNS))
		if err != nil {
			return nil, nil, fmt.Errorf("network namespace: %w", err)
		}
		ns, cfg.NetNS = f, int(f.Fd())
	}
	s, err := nftset.New(cfg)
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, nil, err
	}
	return s, func() {
		s.Close()
		if ns != nil {
			ns.Close()
		}
	}, nil
}

// hookSetOf identifies a set of hooks by their lines, whatever their order.
func hookSetOf(specs []HookSpec) string {
	lines := make([]string, len(specs))
	for i, h := range specs {
		lines[i] = h.Line
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// hookLedgers keeps what each hook line acknowledged, in the State: a
// reload hands the next engine's hooks their ledgers, so that reconciling
// after a reload re-sends nothing they already have.
type hookLedgers struct {
	mu sync.Mutex
	m  map[string]*sink.Ledger
}

// of returns the ledgers of specs' lines, in order, creating the missing
// ones. A line dropped by a reload keeps its ledger (a handful of lines
// at most): should it come back, the ledger still says what its hook got.
func (l *hookLedgers) of(specs []HookSpec) []*sink.Ledger {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*sink.Ledger)
	}
	out := make([]*sink.Ledger, len(specs))
	for i, h := range specs {
		if h.Notifies() {
			continue // a Notifier is never reconciled
		}
		if l.m[h.Line] == nil {
			l.m[h.Line] = &sink.Ledger{}
		}
		out[i] = l.m[h.Line]
	}
	return out
}
