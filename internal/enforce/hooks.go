package enforce

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
