package enforce

import (
	"fmt"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// WebhookHookSyntax is the syntax of a webhook hook line.
const WebhookHookSyntax = "hook webhook URL [header NAME VALUE]... [header_file NAME PATH]... [template FILE] [secret_file PATH]"

// ParseWebhookHook reads the arguments of a `hook webhook` line (args[0]
// is "webhook"; see WebhookHookSyntax). The spec's Line shows header
// names and never their values, so that a token given inline stays out
// of messages, the status and the journal's key.
func ParseWebhookHook(args []string) (HookSpec, error) {
	h := HookSpec{Kind: HookWebhook}
	if len(args) < 2 {
		return h, fmt.Errorf("webhook: no URL; syntax is %s", WebhookHookSyntax)
	}
	var (
		opts      sink.WebhookOptions
		secret    []byte
		tmplPath  string
		line      = []string{args[0], args[1]}
		given     = map[string]bool{}
		headerSet = map[string]bool{}
	)
	rest := args[2:]
	for len(rest) > 0 {
		key, n := rest[0], 0
		switch key {
		case "header", "header_file":
			n = 2
		case "template", "secret_file":
			n = 1
			if given[key] {
				return h, fmt.Errorf("webhook: %s given twice", key)
			}
			given[key] = true
		default:
			return h, fmt.Errorf("webhook: unknown argument %q; syntax is %s", key, WebhookHookSyntax)
		}
		if len(rest) < 1+n {
			return h, fmt.Errorf("webhook: %s needs %d value(s); syntax is %s", key, n, WebhookHookSyntax)
		}
		vals := rest[1 : 1+n]
		rest = rest[1+n:]
		var err error
		switch key {
		case "header", "header_file":
			hd := sink.WebhookHeader{Name: vals[0], Value: vals[1]}
			if key == "header_file" {
				hd, err = sink.LoadHeaderValue(vals[0], vals[1])
			} else {
				err = sink.CheckWebhookHeader(hd)
			}
			if err == nil && headerSet[strings.ToLower(hd.Name)] {
				err = fmt.Errorf("header %s given twice", hd.Name)
			}
			headerSet[strings.ToLower(hd.Name)] = true
			opts.Headers = append(opts.Headers, hd)
			if key == "header" {
				vals = []string{vals[0], "[redacted]"}
			}
		case "template":
			tmplPath = vals[0]
		case "secret_file":
			secret, err = sink.LoadSecret(vals[0])
		}
		if err != nil {
			return h, fmt.Errorf("webhook: %w", err)
		}
		line = append(line, key)
		line = append(line, vals...)
	}
	if tmplPath != "" {
		t, err := sink.LoadWebhookTemplate(tmplPath, contentType(opts.Headers))
		if err != nil {
			return h, err
		}
		opts.Template = t
	}
	wh, err := sink.NewWebhook(args[1], secret, opts)
	if err != nil {
		return h, err
	}
	h.Webhook, h.Line = wh, strings.Join(line, " ")
	return h, nil
}

// contentType is the Content-Type a webhook sends with headers.
func contentType(headers []sink.WebhookHeader) string {
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Content-Type") {
			return h.Value
		}
	}
	return "application/json"
}
