package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// eventsGroup is `coredns-cip events`: the security events the API
// received (GET /v1/events).
var eventsGroup = apiGroup{
	name: "events",
	about: `Lists and shows the security events a running coredns-cip received through
its event API: the client each tagged, the IPs backtracked from its answers,
their verdicts and the decisions they led to. -o json prints the API's JSON
(for list, one array of the events of every page), -o raw CSV with a header.
`,
	cmds: []apiCmd{
		{name: "list", args: "", nargs: 0, summary: "list events, filtered by --client --type --since --until", setup: eventsList},
		{name: "show", args: "ID", nargs: 1, summary: "one event: the IPs its client resolved in the window, each one's state, verdict and decision", setup: apiCmdFunc(eventsShow)},
	},
}

// eventsCmd runs the events sub-command with args (those after "events").
func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runAPIGroup(ctx, eventsGroup, args, processIO(stdout, stderr, getenv))
}

// eventSummary is an EventSummary of GET /v1/events.
type eventSummary struct {
	ID          string   `json:"id"`
	Client      string   `json:"client"`
	Type        string   `json:"type"`
	Ref         string   `json:"ref"`
	At          apiTime  `json:"at"`
	Received    apiTime  `json:"received"`
	By          string   `json:"by"`
	Backtracked int      `json:"backtracked"`
	Decisions   []string `json:"decisions"`
}

func eventRows(list []eventSummary, now time.Time, raw bool) rows {
	if raw {
		r := rows{header: []string{"id", "client", "type", "ref", "at", "received", "by", "backtracked", "decisions"}}
		for _, e := range list {
			r.add(e.ID, e.Client, e.Type, e.Ref, csvTime(e.At.Time), csvTime(e.Received.Time), e.By,
				strconv.Itoa(e.Backtracked), strings.Join(e.Decisions, ";"))
		}
		return r
	}
	r := rows{header: []string{"ID", "CLIENT", "TYPE", "AT", "BY", "FOUND", "DECISIONS", "REF"}}
	for _, e := range list {
		r.add(e.ID, e.Client, e.Type, ago(now, e.At.Time), e.By, strconv.Itoa(e.Backtracked), firstFew(e.Decisions, 2, ","), e.Ref)
	}
	return r
}

func eventsList(fs *flag.FlagSet) func(context.Context, *apiSession, []string) error {
	client := fs.String("client", "", "events that tagged this client `IP`")
	typ := fs.String("type", "", "events of this `type`, such as edr.malware")
	since := fs.String("since", "", "events since this RFC 3339 `time` or this long ago (24h, 7d)")
	until := fs.String("until", "", "events before this RFC 3339 `time` or this long ago")
	limit := fs.Int("limit", 0, "stop after `N` events (0: all)")
	return func(ctx context.Context, s *apiSession, _ []string) error {
		for _, err := range []error{checkIP("client", *client), checkSince("since", *since), checkSince("until", *until), checkLimit(*limit)} {
			if err != nil {
				return err
			}
		}
		q := url.Values{}
		for k, v := range map[string]string{"client": *client, "type": *typ, "since": *since, "until": *until} {
			if v != "" {
				q.Set(k, v)
			}
		}
		items, more, err := s.api.listAll(ctx, "/v1/events", q, "events", *limit)
		if err != nil {
			return err
		}
		var list []eventSummary
		if err := decodeItems(items, &list); err != nil {
			return err
		}
		return s.showList(items, eventRows(list, s.io.now(), s.output == "raw"), "event(s)", more)
	}
}

// eventDetail is GET /v1/events/{id}.
type eventDetail struct {
	ID    string `json:"id"`
	Event struct {
		Client string  `json:"client"`
		Type   string  `json:"type"`
		At     apiTime `json:"at"`
		Window string  `json:"window"`
		Watch  string  `json:"watch"`
		Ref    string  `json:"ref"`
	} `json:"event"`
	Received  apiTime        `json:"received"`
	By        string         `json:"by"`
	Found     []foundIP      `json:"found"`
	Decisions []string       `json:"decisions"`
	Fleet     map[string]any `json:"fleet"`
}

// foundIP is one IP an event's client resolved in the window.
type foundIP struct {
	IP      string   `json:"ip"`
	Names   []string `json:"names"`
	Ports   []int    `json:"ports"`
	Count   int      `json:"count"`
	State   string   `json:"state"`
	Verdict *struct {
		Outcome  string     `json:"outcome"`
		Reasons  reasonList `json:"reasons"`
		Decision string     `json:"decision"`
	} `json:"verdict"`
}

// reasonList reads a verdict's reasons as the API writes them: strings,
// or objects of a factor and a detail.
type reasonList []string

func (r *reasonList) UnmarshalJSON(b []byte) error {
	var texts []string
	if err := json.Unmarshal(b, &texts); err == nil {
		*r = texts
		return nil
	}
	var objs []struct{ Factor, Detail string }
	if err := json.Unmarshal(b, &objs); err != nil {
		return err
	}
	*r = make(reasonList, len(objs))
	for i, o := range objs {
		(*r)[i] = o.Factor + ": " + o.Detail
	}
	return nil
}

func foundRows(found []foundIP, raw bool) rows {
	r := rows{header: []string{"IP", "STATE", "OUTCOME", "DECISION", "NAMES", "PORTS", "ANSWERS", "REASONS"}}
	if raw {
		r.header = []string{"ip", "state", "outcome", "decision", "names", "ports", "count", "reasons"}
	}
	for _, f := range found {
		var outcome, dec string
		var reasons []string
		if v := f.Verdict; v != nil {
			outcome, dec, reasons = v.Outcome, v.Decision, v.Reasons
		}
		ports := joinInts(f.Ports, ",")
		names, why := firstFew(f.Names, 2, ","), strings.Join(reasons, "; ")
		if raw {
			names, why, ports = strings.Join(f.Names, ";"), strings.Join(reasons, ";"), joinInts(f.Ports, ";")
		}
		r.add(f.IP, f.State, outcome, dec, names, ports, strconv.Itoa(f.Count), why)
	}
	return r
}

func eventsShow(ctx context.Context, s *apiSession, args []string) error {
	var ev eventDetail
	raw, err := s.api.getJSON(ctx, "/v1/events/"+pathID(args[0]), nil, &ev)
	if err != nil {
		return err
	}
	switch s.output {
	case "json":
		return writeJSONValue(s.io.stdout, raw)
	case "raw":
		return writeCSV(s.io.stdout, foundRows(ev.Found, true))
	}
	now := s.io.now()
	tw := tabwriter.NewWriter(s.io.stdout, 0, 4, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, cellText(value)) }
	field("ID", ev.ID)
	if len(ev.Fleet) > 0 && ev.Event.Client == "" {
		field("Fleet", fmt.Sprintf("posted to another node; %d node(s) reported (-o json shows them)", len(ev.Fleet)))
	}
	field("Client", ev.Event.Client)
	field("Type", ev.Event.Type)
	field("Ref", ev.Event.Ref)
	field("At", fmt.Sprintf("%s (%s), window %s, watch %s", csvTime(ev.Event.At.Time), ago(now, ev.Event.At.Time), ev.Event.Window, ev.Event.Watch))
	field("Received", fmt.Sprintf("%s by %s", csvTime(ev.Received.Time), ev.By))
	field("Decisions", strings.Join(ev.Decisions, ", "))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(s.io.stdout, "\n%d IP(s) found in the window:\n", len(ev.Found))
	return writeTable(s.io.stdout, foundRows(ev.Found, false))
}
