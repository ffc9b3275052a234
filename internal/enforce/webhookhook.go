package enforce

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// WebhookHookSyntax is the syntax of a webhook hook line.
const WebhookHookSyntax = "hook webhook URL [header NAME VALUE]... [header_file NAME PATH]... [template FILE] [secret_file PATH] [on block|unblock|allow|notice...] [scope everyone|tagged]"

// webhookLine is a webhook line being read.
type webhookLine struct {
	opts     sink.WebhookOptions
	secret   []byte
	tmplPath string
	on       []sink.Action
	scope    sink.Scope
	filtered bool
	headers  map[string]bool // lower-case names given
	line     []string        // the line, header values redacted
}

// ParseWebhookHook reads the arguments of a `hook webhook` line (args[0]
// is "webhook"; see WebhookHookSyntax). The spec's Line shows header
// names and never their values, so that a token given inline stays out
// of messages, the status and the journal's key. With on or scope the
// webhook notifies, as a chat hook does: it is told of each decision it
// wants once, never re-sent at a start nor reconciled; with notice in on,
// of the API budget's notices too.
func ParseWebhookHook(args []string) (HookSpec, error) {
	h := HookSpec{Kind: HookWebhook}
	if len(args) < 2 {
		return h, fmt.Errorf("webhook: no URL; syntax is %s", WebhookHookSyntax)
	}
	p := webhookLine{headers: map[string]bool{}, line: []string{args[0], args[1]}}
	given := map[string]bool{}
	rest := args[2:]
	for len(rest) > 0 {
		key := rest[0]
		if given[key] && key != "header" && key != "header_file" {
			return h, fmt.Errorf("webhook: %s given twice", key)
		}
		given[key] = true
		n, err := p.option(key, rest[1:])
		if err != nil {
			return h, fmt.Errorf("webhook: %w", err)
		}
		rest = rest[1+n:]
	}
	if p.tmplPath != "" {
		t, err := sink.LoadWebhookTemplate(p.tmplPath, sink.ContentType(p.opts.Headers))
		if err != nil {
			return h, err
		}
		p.opts.Template = t
	}
	wh, err := sink.NewWebhook(args[1], p.secret, p.opts)
	if err != nil {
		return h, err
	}
	if p.filtered {
		if h.WebhookNotify, err = wh.Notifying(p.on, p.scope); err != nil {
			return h, err
		}
	}
	h.Webhook, h.Line = wh, strings.Join(p.line, " ")
	return h, nil
}

// option reads option key from the values that follow it and returns how
// many it took.
func (p *webhookLine) option(key string, vals []string) (int, error) {
	n := map[string]int{"header": 2, "header_file": 2, "template": 1, "secret_file": 1, "scope": 1}[key]
	switch {
	case key == "on":
		for n < len(vals) && slices.Contains([]sink.Action{sink.Block, sink.Unblock, sink.Allow, sink.Notices}, sink.Action(vals[n])) {
			p.on = append(p.on, sink.Action(vals[n]))
			n++
		}
		if n == 0 {
			return 0, fmt.Errorf("on needs block, unblock, allow or notice; syntax is %s", WebhookHookSyntax)
		}
	case n == 0:
		return 0, fmt.Errorf("unknown argument %q; syntax is %s", key, WebhookHookSyntax)
	case len(vals) < n:
		return 0, fmt.Errorf("%s needs %d value(s); syntax is %s", key, n, WebhookHookSyntax)
	}
	shown := vals[:n]
	var err error
	switch key {
	case "on", "scope":
		p.filtered = true
		if key == "scope" {
			p.scope = sink.Scope(vals[0])
		}
	case "header", "header_file":
		hd := sink.WebhookHeader{Name: vals[0], Value: vals[1]}
		if key == "header_file" {
			hd, err = sink.LoadHeaderValue(vals[0], vals[1])
		} else {
			err, shown = sink.CheckWebhookHeader(hd), []string{vals[0], "[redacted]"}
		}
		if err == nil && p.headers[strings.ToLower(hd.Name)] {
			err = fmt.Errorf("header %s given twice", hd.Name)
		}
		p.headers[strings.ToLower(hd.Name)] = true
		p.opts.Headers = append(p.opts.Headers, hd)
	case "template":
		p.tmplPath = vals[0]
	case "secret_file":
		p.secret, err = sink.LoadSecret(vals[0])
	}
	p.line = append(append(p.line, key), shown...)
	return n, err
}
