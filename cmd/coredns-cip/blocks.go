package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const blocksUsage = `Usage: coredns-cip blocks [--api URL] [--token-file PATH] [--ca PATH] [--cert PATH --key PATH] COMMAND [ARGS]

Operates the block decisions of a running coredns-cip through its event API
(the cipvalidate "events" option). These are the first commands, kept for
the scripts that use them, with their output and exit status; "decisions",
"allow" and "clients" do the same and more (history, filters, -o json|raw).

Commands:
  list                         active blocks: IP, decision, time left, repeat, reasons, events
                               (decisions list --state active)
  unblock IP [--reason TEXT]   lift IP's block in every firewall and SOAR hook (false positive)
                               (decisions delete --ip IP --reason TEXT)
  allow VALUE [--until D|TIME] [--reason TEXT] [--force]
                               allowlist an IP, CIDR or domain (wins over any verdict;
                               lifts existing blocks); --until 24h, 30d or an RFC 3339 time
                               (allow add VALUE)
  allowlist                    the allowlist entries (allow list)

The API address comes from --api, else $CIP_API (default http://127.0.0.1:8053);
the token from --token-file, else $CIP_TOKEN_FILE or $CIP_TOKEN. An
https:// API (events ... tls) is verified against --ca, else $CIP_CA, else
the system's CAs; one that requires mutual TLS (client_ca) gets the client
certificate --cert and its key --key. list and allowlist take a read or an
operator token, unblock and allow an operator token. The audit log names the
token, and whom it acts for: --actor, else $USER ("ops (on behalf of alice)");
without tokens (a loopback API) it names --actor alone. A 429 (the token's
rate limit) is retried after its Retry-After, up to 3 times.

Exit status: 0 done, 1 not found (unblock of an IP that is not blocked), 2 error.

Flags:
`

// exitNotFound is blocks' exit status when the IP to unblock is not blocked.
const exitNotFound = 1

// blocksOpts is what blocks' flags and arguments ask for.
type blocksOpts struct {
	cmd    string // list, allowlist, unblock, allow
	arg    string // the IP to unblock, the value to allow
	reason string
	until  string
	actor  string
	force  bool // allow: an entry broader than /8 or /32, or a public suffix
	asJSON bool
	api    *eventAPIClient
}

// blockEntry is one active block as GET /v1/blocks gives it.
type blockEntry struct {
	IP               string   `json:"ip"`
	Decision         string   `json:"decision"`
	Reasons          []string `json:"reasons"`
	Repeat           int      `json:"repeat"`
	Events           []string `json:"events"`
	Clients          []string `json:"clients"`
	Monitor          bool     `json:"monitor"`
	Scope            string   `json:"scope"`
	RemainingSeconds int64    `json:"remaining_seconds"`
}

// allowAnswer is POST /v1/allow's answer.
type allowAnswer struct {
	Value  string   `json:"value"`
	Until  string   `json:"until"`
	Lifted []string `json:"lifted"`
}

// blocksResult is what the event API answered to one command.
type blocksResult struct {
	raw     []byte       // the answer as received
	blocks  []blockEntry // list
	allowed allowAnswer  // allow
	// unblocked is unblock's answer: the actor the audit log names.
	unblocked struct {
		Actor string `json:"actor"`
	}
	notFound bool // unblock of an IP that is not blocked
}

// blocksCmd runs the blocks sub-command with args (those after "blocks")
// and returns its exit status.
func blocksCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := parseBlocksFlags(args, stderr, getenv)
	if err != nil {
		return fail(stderr, err)
	}
	res, err := runBlocks(ctx, opts)
	if err != nil {
		return fail(stderr, err)
	}
	if res.notFound {
		fmt.Fprintf(stderr, "%s is not blocked\n", opts.arg)
		return exitNotFound
	}
	renderBlocks(stdout, opts, res)
	return exitClean
}

// parseBlocksFlags reads the flags, which may come before or after the
// command and its argument, and the API address and token.
func parseBlocksFlags(args []string, stderr io.Writer, getenv func(string) string) (blocksOpts, error) {
	fs := newFlagSet("blocks", blocksUsage, stderr)
	apiFlag := fs.String("api", "", "event API base `URL`")
	files := addAPIFlags(fs, "")
	actor := fs.String("actor", "", "whom the token acts for, for the audit log (default $USER)")
	reason := fs.String("reason", "", "why (unblock, allow)")
	until := fs.String("until", "", "allow: expiry, a duration such as 24h or 30d, or an RFC 3339 time")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	force := fs.Bool("force", false, "allow: accept an entry broader than a /8 (IPv4) or /32 (IPv6), or a bare public suffix")
	var positional []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return blocksOpts{}, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) == 0 {
		fs.Usage()
		return blocksOpts{}, errReported
	}
	api, err := newEventAPIClient(firstNonEmpty(*apiFlag, getenv("CIP_API"), "http://127.0.0.1:8053"), files.files(), getenv)
	if err != nil {
		return blocksOpts{}, err
	}
	// The API reads a Go duration; --until counts days too (30d).
	apiUntil, err := allowUntil(*until)
	if err != nil {
		return blocksOpts{}, err
	}
	opts := blocksOpts{cmd: positional[0], reason: *reason, until: apiUntil, asJSON: *asJSON, force: *force,
		actor: firstNonEmpty(*actor, getenv("USER"), "cli"), api: api}
	params := positional[1:]
	want := map[string]int{"list": 0, "allowlist": 0, "unblock": 1, "allow": 1}
	n, known := want[opts.cmd]
	if !known {
		return blocksOpts{}, fmt.Errorf("unknown command %q (list, unblock, allow, allowlist)", opts.cmd)
	}
	if len(params) != n {
		return blocksOpts{}, fmt.Errorf("%s takes %d argument(s), got %d", opts.cmd, n, len(params))
	}
	if n == 1 {
		opts.arg = params[0]
	}
	return opts, nil
}

// runBlocks sends the command to the event API.
func runBlocks(ctx context.Context, opts blocksOpts) (blocksResult, error) {
	var res blocksResult
	switch opts.cmd {
	case "list":
		raw, status, err := opts.api.do(ctx, "GET", "/v1/blocks", nil, &res.blocks)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET /v1/blocks: %s", apiError(status, raw))
		}
		res.raw = raw
		return res, err
	case "allowlist":
		raw, status, err := opts.api.do(ctx, "GET", "/v1/allow", nil, nil)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET /v1/allow: %s", apiError(status, raw))
		}
		res.raw = raw
		return res, err
	case "unblock":
		q := url.Values{"on_behalf_of": {opts.actor}, "reason": {opts.reason}}
		raw, status, err := opts.api.do(ctx, "DELETE", "/v1/blocks/"+url.PathEscape(opts.arg)+"?"+q.Encode(), nil, &res.unblocked)
		switch {
		case err != nil:
			return res, err
		case status == http.StatusNotFound:
			res.notFound = true
		case status != http.StatusOK:
			return res, fmt.Errorf("unblock %s: %s", opts.arg, apiError(status, raw))
		}
		return res, nil
	default: // allow
		body := map[string]any{"value": opts.arg, "on_behalf_of": opts.actor}
		if opts.reason != "" {
			body["reason"] = opts.reason
		}
		if opts.until != "" {
			body["until"] = opts.until
		}
		if opts.force {
			body["force"] = true
		}
		raw, status, err := opts.api.do(ctx, "POST", "/v1/allow", body, &res.allowed)
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("allow %s: %s", opts.arg, apiError(status, raw))
		}
		return res, err
	}
}

// renderBlocks prints what a command did: the API's JSON for allowlist and
// list --json, a table for list, a sentence for unblock and allow.
func renderBlocks(w io.Writer, opts blocksOpts, res blocksResult) {
	switch {
	case opts.cmd == "allowlist" || (opts.cmd == "list" && opts.asJSON):
		w.Write(res.raw)
	case opts.cmd == "list":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IP\tDECISION\tLEFT\tREPEAT\tCLIENTS\tEVENTS\tREASONS")
		for _, b := range res.blocks {
			left := (time.Duration(b.RemainingSeconds) * time.Second).String()
			if b.Monitor {
				left += " (monitor)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.IP, b.Decision, left, b.Repeat,
				strings.Join(b.Clients, ","), strings.Join(b.Events, ","), strings.Join(b.Reasons, "; "))
		}
		tw.Flush()
		fmt.Fprintf(w, "%d active block(s)\n", len(res.blocks))
	case opts.cmd == "unblock":
		fmt.Fprintf(w, "unblocked %s everywhere (actor: %s)\n", opts.arg, res.unblocked.Actor)
	default: // allow
		exp := "no expiry"
		if res.allowed.Until != "" {
			exp = "until " + res.allowed.Until
		}
		fmt.Fprintf(w, "allowlisted %s (%s)", res.allowed.Value, exp)
		if len(res.allowed.Lifted) > 0 {
			fmt.Fprintf(w, "; lifted the blocks of %s", strings.Join(res.allowed.Lifted, ", "))
		}
		fmt.Fprintln(w)
	}
}
