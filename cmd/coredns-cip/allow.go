package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// allowGroup is `coredns-cip allow`: the dynamic allowlist (/v1/allow).
var allowGroup = apiGroup{
	name: "allow",
	about: `Lists, adds and removes allowlist entries through the event API of a running
coredns-cip. An entry (an IP, a CIDR or a domain) wins over any verdict and
lifts the blocks it covers, on every node; one broader than a /8 (IPv4) or
/32 (IPv6), or a bare public suffix, needs --force. Entries of the Corefile
("static") are listed but not removed here. -o json prints the API's JSON.
`,
	cmds: []apiCmd{
		{name: "list", args: "", nargs: 0, summary: "the allowlist entries, with their expiry, reason and actor", setup: apiCmdFunc(allowList)},
		{name: "add", args: "VALUE --reason TEXT [--until D|TIME] [--force]", nargs: 1, summary: "allowlist an IP, CIDR or domain, for good or --until 30d or an RFC 3339 time", setup: allowAdd},
		{name: "delete", args: "VALUE", nargs: 1, summary: "remove an entry added through the API (its blocks do not come back)", setup: apiCmdFunc(allowDelete)},
	},
}

// allowCmd runs the allow sub-command with args (those after "allow").
func allowCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runAPIGroup(ctx, allowGroup, args, processIO(stdout, stderr, getenv))
}

// allowEntry is an entry of GET /v1/allow.
type allowEntry struct {
	Value   string   `json:"value"`
	Until   apiTime  `json:"until"`
	Reason  string   `json:"reason"`
	Actor   string   `json:"actor"`
	Created apiTime  `json:"created"`
	Static  bool     `json:"static"`
	Lifted  []string `json:"lifted"` // POST's answer: the blocks it lifted
}

func allowList(ctx context.Context, s *apiSession, _ []string) error {
	var items []json.RawMessage
	if _, err := s.api.getJSON(ctx, "/v1/allow", nil, &items); err != nil {
		return err
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	var list []allowEntry
	if err := decodeItems(items, &list); err != nil {
		return err
	}
	now := s.io.now()
	r := rows{header: []string{"VALUE", "UNTIL", "REASON", "ACTOR", "CREATED", "STATIC"}}
	if s.output == "raw" {
		r.header = []string{"value", "until", "reason", "actor", "created", "static"}
	}
	for _, a := range list {
		until, created := ago(now, a.Until.Time), ago(now, a.Created.Time)
		if s.output == "raw" {
			until, created = csvTime(a.Until.Time), csvTime(a.Created.Time)
		}
		r.add(a.Value, until, a.Reason, a.Actor, created, strconv.FormatBool(a.Static))
	}
	return s.showList(items, r, "allowlist entry(ies)", false)
}

func allowAdd(fs *flag.FlagSet) func(context.Context, *apiSession, []string) error {
	until := fs.String("until", "", "expiry: a `duration` such as 24h or 30d, or an RFC 3339 time (default: none)")
	reason := fs.String("reason", "", "why, for the audit log (required)")
	force := fs.Bool("force", false, "accept an entry broader than a /8 (IPv4) or /32 (IPv6), or a bare public suffix")
	return func(ctx context.Context, s *apiSession, args []string) error {
		u, err := allowUntil(*until)
		if err != nil {
			return err
		}
		why := strings.TrimSpace(*reason)
		if why == "" {
			return usagef("--reason is required: why the value is allowlisted (the audit log keeps it)")
		}
		body := map[string]any{"value": args[0], "reason": why, "on_behalf_of": s.actor}
		if u != "" {
			body["until"] = u
		}
		if *force {
			body["force"] = true
		}
		raw, err := s.api.call(ctx, http.MethodPost, "/v1/allow", nil, body)
		if err != nil {
			return err
		}
		if s.output == "json" {
			return writeJSONValue(s.io.stdout, raw)
		}
		var a allowEntry
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("POST /v1/allow: the answer is not an allowlist entry: %v", err)
		}
		_, err = fmt.Fprintln(s.io.stdout, allowedLine(a, s.io.now()))
		return err
	}
}

func allowedLine(a allowEntry, now time.Time) string {
	exp := "no expiry"
	if !a.Until.IsZero() {
		exp = "until " + csvTime(a.Until.Time) + ", " + ago(now, a.Until.Time)
	}
	line := fmt.Sprintf("allowlisted %s (%s)", cellText(a.Value), exp)
	if len(a.Lifted) > 0 {
		line += "; lifted the blocks of " + cellText(strings.Join(a.Lifted, ", "))
	}
	return line
}

func allowDelete(ctx context.Context, s *apiSession, args []string) error {
	raw, err := s.api.call(ctx, http.MethodDelete, "/v1/allow/"+url.PathEscape(args[0]), url.Values{"on_behalf_of": {s.actor}}, nil)
	if err != nil {
		return err
	}
	if s.output == "json" {
		return writeJSONValue(s.io.stdout, raw)
	}
	_, err = fmt.Fprintf(s.io.stdout, "removed %s from the allowlist\n", cellText(args[0]))
	return err
}
