package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
)

// clientsGroup is `coredns-cip clients`: the clients tagged by an event
// (/v1/clients).
var clientsGroup = apiGroup{
	name: "clients",
	about: `Lists and untags the clients that security events tagged, through the event
API of a running coredns-cip. A tagged client's answers are checked, and
"tagged"-scope blocks apply to it, until its tag ends. -o json prints the
API's JSON (for list, the array of clients).
`,
	cmds: []apiCmd{
		{name: "list", args: "", nargs: 0, summary: "the tagged clients, with the event that tagged each and the tag's end", setup: apiCmdFunc(clientsList)},
		{name: "untag", args: "IP", nargs: 1, summary: "end a client's event tag now", setup: apiCmdFunc(clientsUntag)},
	},
}

// clientsCmd runs the clients sub-command with args (those after "clients").
func clientsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runAPIGroup(ctx, clientsGroup, args, processIO(stdout, stderr, getenv))
}

// taggedClient is a client of GET /v1/clients.
type taggedClient struct {
	Client string  `json:"client"`
	Since  apiTime `json:"since"`
	Until  apiTime `json:"until"`
	Event  string  `json:"event"`
	Ref    string  `json:"ref"`
}

func clientsList(ctx context.Context, s *apiSession, _ []string) error {
	var ans struct {
		Clients []json.RawMessage `json:"clients"`
	}
	if _, err := s.api.getJSON(ctx, "/v1/clients", nil, &ans); err != nil {
		return err
	}
	items := ans.Clients
	if items == nil {
		items = []json.RawMessage{}
	}
	var list []taggedClient
	if err := decodeItems(items, &list); err != nil {
		return err
	}
	now := s.io.now()
	r := rows{header: []string{"CLIENT", "SINCE", "UNTIL", "EVENT", "REF"}}
	if s.output == "raw" {
		r.header = []string{"client", "since", "until", "event", "ref"}
	}
	for _, c := range list {
		since, until := ago(now, c.Since.Time), ago(now, c.Until.Time)
		if s.output == "raw" {
			since, until = csvTime(c.Since.Time), csvTime(c.Until.Time)
		}
		r.add(c.Client, since, until, c.Event, c.Ref)
	}
	return s.showList(items, r, "tagged client(s)", false)
}

func clientsUntag(ctx context.Context, s *apiSession, args []string) error {
	if _, err := netip.ParseAddr(args[0]); err != nil {
		return usagef("clients untag: %q is not an IP address", args[0])
	}
	raw, err := s.api.call(ctx, http.MethodDelete, "/v1/clients/"+url.PathEscape(args[0]), url.Values{"on_behalf_of": {s.actor}}, nil)
	if err != nil {
		return err
	}
	if s.output == "json" {
		return writeJSONValue(s.io.stdout, raw)
	}
	_, err = fmt.Fprintf(s.io.stdout, "untagged %s\n", cellText(args[0]))
	return err
}
