package enforce

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/coredns-cip/coredns-cip/internal/nftset"
	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// HookKind is the kind of a hook line.
type HookKind string

// The hook kinds.
const (
	HookNFTables HookKind = "nftables"
	HookExec     HookKind = "exec"
	HookWebhook  HookKind = "webhook"
)

// HookSpec is a parsed `hook` line; its sink is built when the engine
// starts (an nftables hook connects to the kernel then).
type HookSpec struct {
	Kind    HookKind
	NFT     nftset.Config // nftables
	NetNS   string        // nftables: network namespace name, "" = ours
	Exec    *sink.Exec    // exec
	Webhook *sink.Webhook // webhook
	Line    string        // the line's arguments, for messages
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
		return h.Webhook, nil, nil
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
		if l.m[h.Line] == nil {
			l.m[h.Line] = &sink.Ledger{}
		}
		out[i] = l.m[h.Line]
	}
	return out
}
