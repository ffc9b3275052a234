package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// decisionsGroup is `coredns-cip decisions`: the block decisions of the
// history API (GET/DELETE /v1/decisions, POST /v1/blocks).
var decisionsGroup = apiGroup{
	name: "decisions",
	about: `Lists, shows, lifts and makes block decisions through the event API of a
running coredns-cip: active ones and, for the history's retention, expired
and lifted ones. Lists are newest first and follow the API's pages to the
end (or --limit); -o json prints one JSON array of the API's objects from
every page, -o raw CSV with a header row (lists joined by ";").
`,
	cmds: []apiCmd{
		{name: "list", args: "", nargs: 0, summary: "list decisions, filtered by --ip --client --factor --scope --state --since --until", setup: decisionsList},
		{name: "show", args: "ID", nargs: 1, summary: "one decision with its evidence, hook deliveries and timeline", setup: apiCmdFunc(decisionsShow)},
		{name: "delete", args: "[ID] [--ip IP | --range CIDR | --all --yes] --reason TEXT", nargs: -1,
			summary: "lift a decision by its id, or every active one of an IP, within a CIDR, or all, in every hook and node", setup: decisionsDelete},
		{name: "add", args: "--ip IP | --range CIDR --ttl D --reason TEXT", nargs: 0,
			summary: "block an IP or a range (at most a /8 or an IPv6 /32) by hand, through the engine (DNS, hooks, audit, fleet, EDL)", setup: decisionsAdd},
	},
}

// decisionsCmd runs the decisions sub-command with args (those after
// "decisions") and returns its exit status.
func decisionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return runAPIGroup(ctx, decisionsGroup, args, processIO(stdout, stderr, getenv))
}

// decision is a Decision of the API (api14), as far as the CLI shows it.
type decision struct {
	ID               string          `json:"id"`
	IP               string          `json:"ip"`
	Range            string          `json:"range"`
	State            string          `json:"state"`
	Origin           string          `json:"origin"`
	Scope            string          `json:"scope"`
	Port             int             `json:"port"`
	Narrowed         string          `json:"narrowed"`
	Monitor          bool            `json:"monitor"`
	Reasons          []string        `json:"reasons"`
	Factors          []string        `json:"factors"`
	Evidence         *evidence       `json:"evidence"`
	Clients          []string        `json:"clients"`
	Events           []string        `json:"events"`
	Qnames           []string        `json:"qnames"`
	Rewrites         int64           `json:"rewrites"`
	Created          apiTime         `json:"created"`
	Expires          apiTime         `json:"expires"`
	TTLSeconds       int64           `json:"ttl_seconds"`
	RemainingSeconds int64           `json:"remaining_seconds"`
	Repeat           int             `json:"repeat"`
	Actor            string          `json:"actor"`
	Reason           string          `json:"reason"`
	Hooks            []hookDelivery  `json:"hooks"`
	Lifted           *liftRecord     `json:"lifted"`
	Timeline         []timelineEntry `json:"timeline"` // show only
}

type evidence struct {
	ScoreInbound  string   `json:"score_inbound"`
	ScoreOutbound string   `json:"score_outbound"`
	Ports         []int    `json:"ports"`
	Tags          []string `json:"tags"`
}

type hookDelivery struct {
	Hook        string  `json:"hook"`
	State       string  `json:"state"`
	DeliveredAt apiTime `json:"delivered_at"`
	Attempts    int     `json:"attempts"`
	Error       string  `json:"error"`
}

type liftRecord struct {
	At     apiTime `json:"at"`
	Actor  string  `json:"actor"`
	Reason string  `json:"reason"`
}

type timelineEntry struct {
	At     apiTime `json:"at"`
	Kind   string  `json:"kind"`
	Detail string  `json:"detail"`
}

// apiTime is an RFC 3339 time of the API, zero for null or "".
type apiTime struct{ time.Time }

func (t *apiTime) UnmarshalJSON(b []byte) error {
	if s := string(b); s == "null" || s == `""` {
		t.Time = time.Time{}
		return nil
	}
	return t.Time.UnmarshalJSON(b)
}

// target is what a decision blocks: its IP (with the port a tagged block
// was narrowed to) or its range.
func (d decision) target() string {
	t := d.IP
	if t == "" {
		t = d.Range
	}
	if d.Port > 0 {
		t = net.JoinHostPort(t, strconv.Itoa(d.Port))
	}
	return t
}

// left is how long an active decision has left, or when it ended.
func (d decision) left(now time.Time) string {
	switch {
	case d.State == "lifted" && d.Lifted != nil:
		return "lifted " + ago(now, d.Lifted.At.Time)
	case d.State == "active":
		s := shortDuration(time.Duration(d.RemainingSeconds) * time.Second)
		if d.Monitor {
			s += " (monitor)"
		}
		return s
	}
	return d.State + " " + ago(now, d.Expires.Time)
}

// decisionRows are decisions as a table or CSV: the table is for people
// (relative times, the first few clients), the CSV has every field.
func decisionRows(list []decision, now time.Time, raw bool) rows {
	if raw {
		r := rows{header: []string{"id", "ip", "range", "state", "origin", "scope", "port", "narrowed", "monitor",
			"factors", "reasons", "clients", "events", "qnames", "rewrites", "created", "expires", "ttl_seconds",
			"remaining_seconds", "repeat", "actor", "reason", "lifted_at", "lifted_actor", "lifted_reason"}}
		for _, d := range list {
			var l liftRecord
			if d.Lifted != nil {
				l = *d.Lifted
			}
			r.add(d.ID, d.IP, d.Range, d.State, d.Origin, d.Scope, strconv.Itoa(d.Port), d.Narrowed, strconv.FormatBool(d.Monitor),
				strings.Join(d.Factors, ";"), strings.Join(d.Reasons, ";"), strings.Join(d.Clients, ";"), strings.Join(d.Events, ";"),
				strings.Join(d.Qnames, ";"), strconv.FormatInt(d.Rewrites, 10), csvTime(d.Created.Time), csvTime(d.Expires.Time),
				strconv.FormatInt(d.TTLSeconds, 10), strconv.FormatInt(d.RemainingSeconds, 10), strconv.Itoa(d.Repeat),
				d.Actor, d.Reason, csvTime(l.At.Time), l.Actor, l.Reason)
		}
		return r
	}
	r := rows{header: []string{"ID", "TARGET", "STATE", "SCOPE", "ORIGIN", "CREATED", "LEFT", "CLIENTS", "NAMES", "REASONS"}}
	for _, d := range list {
		r.add(d.ID, d.target(), d.State, d.Scope, d.Origin, ago(now, d.Created.Time), d.left(now),
			firstFew(d.Clients, 3, ","), firstFew(d.Qnames, 2, ","), strings.Join(d.Reasons, "; "))
	}
	return r
}

func decisionsList(fs *flag.FlagSet) func(context.Context, *apiSession, []string) error {
	ip := fs.String("ip", "", "decisions of this `IP`")
	client := fs.String("client", "", "decisions that name this client `IP`")
	factor := fs.String("factor", "", "decisions for this factor `group or code` (score, ssl, vuln, mining, anonymity, ssh, or a code such as ANON_TOR)")
	scope := fs.String("scope", "", "everyone or tagged")
	state := fs.String("state", "", "active, expired or lifted")
	since := fs.String("since", "", "made since this RFC 3339 `time` or this long ago (24h, 7d)")
	until := fs.String("until", "", "made before this RFC 3339 `time` or this long ago")
	limit := fs.Int("limit", 0, "stop after `N` decisions (0: all)")
	return func(ctx context.Context, s *apiSession, _ []string) error {
		for _, err := range []error{checkIP("ip", *ip), checkIP("client", *client), checkFactor(*factor),
			checkOneOf("scope", *scope, "everyone", "tagged"), checkOneOf("state", *state, "active", "expired", "lifted"),
			checkSince("since", *since), checkSince("until", *until), checkLimit(*limit)} {
			if err != nil {
				return err
			}
		}
		q := url.Values{}
		for k, v := range map[string]string{"ip": *ip, "client": *client, "factor": *factor, "scope": *scope,
			"state": *state, "since": *since, "until": *until} {
			if v != "" {
				q.Set(k, v)
			}
		}
		items, more, err := s.api.listAll(ctx, "/v1/decisions", q, "decisions", *limit)
		if err != nil {
			return err
		}
		var list []decision
		if err := decodeItems(items, &list); err != nil {
			return err
		}
		return s.showList(items, decisionRows(list, s.io.now(), s.output == "raw"), "decision(s)", more)
	}
}

func checkLimit(n int) error {
	if n < 0 {
		return usagef("--limit: %d is negative (0: all)", n)
	}
	return nil
}

func decisionsShow(ctx context.Context, s *apiSession, args []string) error {
	var d decision
	raw, err := s.api.getJSON(ctx, "/v1/decisions/"+pathID(args[0]), nil, &d)
	if err != nil {
		return err
	}
	switch s.output {
	case "json":
		return writeJSONValue(s.io.stdout, raw)
	case "raw":
		return writeCSV(s.io.stdout, decisionRows([]decision{d}, s.io.now(), true))
	}
	return writeDecision(s.io.stdout, d, s.io.now())
}

// writeDecision writes one decision for people: its fields, then its
// timeline, oldest first.
func writeDecision(w io.Writer, d decision, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, cellText(value)) }
	field("ID", d.ID)
	field("Target", d.target())
	if d.State == "active" {
		field("State", "active, "+d.left(now)+" left")
	} else {
		field("State", d.left(now))
	}
	field("Scope", strings.TrimSpace(d.Scope+" "+d.Narrowed))
	field("Origin", fmt.Sprintf("%s, by %s, repeat %d", d.Origin, d.Actor, d.Repeat))
	field("Created", fmt.Sprintf("%s (%s)", csvTime(d.Created.Time), ago(now, d.Created.Time)))
	field("Expires", fmt.Sprintf("%s (%s)", csvTime(d.Expires.Time), ago(now, d.Expires.Time)))
	field("Reason", d.Reason)
	field("Reasons", strings.Join(d.Reasons, "; "))
	field("Factors", strings.Join(d.Factors, ", "))
	if e := d.Evidence; e != nil {
		field("Evidence", fmt.Sprintf("score inbound %s, outbound %s; ports %s; tags %s",
			e.ScoreInbound, e.ScoreOutbound, joinInts(e.Ports, ","), strings.Join(e.Tags, ", ")))
	}
	field("Clients", strings.Join(d.Clients, ", "))
	field("Events", strings.Join(d.Events, ", "))
	field("Names", fmt.Sprintf("%s (%d answers rewritten)", strings.Join(d.Qnames, ", "), d.Rewrites))
	for _, h := range d.Hooks {
		text := fmt.Sprintf("%s, %d attempt(s)", h.State, h.Attempts)
		if !h.DeliveredAt.IsZero() {
			text += ", delivered " + ago(now, h.DeliveredAt.Time)
		}
		if h.Error != "" {
			text += ": " + h.Error
		}
		field("Hook "+h.Hook, text)
	}
	if l := d.Lifted; l != nil {
		field("Lifted", fmt.Sprintf("%s by %s: %s", ago(now, l.At.Time), l.Actor, l.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Timeline) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nTimeline:")
	r := rows{header: []string{"AT", "KIND", "DETAIL"}}
	for _, e := range d.Timeline {
		r.add(csvTime(e.At.Time), e.Kind, e.Detail)
	}
	return writeTable(w, r)
}

func decisionsAdd(fs *flag.FlagSet) func(context.Context, *apiSession, []string) error {
	ip := fs.String("ip", "", "block this `IP`")
	cidr := fs.String("range", "", "block this `CIDR`: every address in it, for everyone")
	ttl := fs.String("ttl", "", "for this long: a `duration` such as 24h or 7d (required)")
	reason := fs.String("reason", "", "why, for the audit log and the decision (required)")
	scope := fs.String("scope", "", "everyone (the API's default) or tagged")
	force := fs.Bool("force", false, "block even an allowlisted target")
	return func(ctx context.Context, s *apiSession, _ []string) error {
		body := map[string]any{}
		switch {
		case (*ip == "") == (*cidr == ""):
			return usagef("decisions add takes one of --ip IP and --range CIDR")
		case *ip != "":
			if err := checkIP("ip", *ip); err != nil {
				return err
			}
			body["ip"] = *ip
		default:
			p, err := checkCIDR("range", *cidr)
			if err != nil {
				return err
			}
			body["range"] = p.String()
		}
		if *ttl == "" {
			return usagef("--ttl is required: how long the block lasts, such as 24h or 7d")
		}
		d, err := apiDuration("ttl", *ttl, maxBlockTTL)
		if err != nil {
			return err
		}
		body["ttl"] = d
		if body["reason"] = strings.TrimSpace(*reason); body["reason"] == "" {
			return usagef("--reason is required: why the block is made (the audit log keeps it)")
		}
		if err := checkOneOf("scope", *scope, "everyone", "tagged"); err != nil {
			return err
		}
		if *scope != "" {
			body["scope"] = *scope
		}
		if *force {
			body["force"] = true
		}
		raw, err := s.api.call(ctx, http.MethodPost, "/v1/blocks", url.Values{"on_behalf_of": {s.actor}}, body)
		if err != nil {
			return err
		}
		var made decision
		if err := json.Unmarshal(raw, &made); err != nil {
			return fmt.Errorf("POST /v1/blocks: the answer is not a decision: %v", err)
		}
		return s.showChanged(raw, made, "blocked")
	}
}

// maxBlockTTL is the bound of the block_ttl option, which a manual
// block's ttl shares; the API checks it again.
const maxBlockTTL = 366 * 24 * time.Hour

// showChanged writes a decision that a change answered with: the API's
// JSON, a CSV row, or a line for people.
func (s *apiSession) showChanged(raw json.RawMessage, d decision, verb string) error {
	switch s.output {
	case "json":
		return writeJSONValue(s.io.stdout, raw)
	case "raw":
		return writeCSV(s.io.stdout, decisionRows([]decision{d}, s.io.now(), true))
	}
	_, err := fmt.Fprintln(s.io.stdout, changedLine(d, verb, s.io.now()))
	return err
}

func changedLine(d decision, verb string, now time.Time) string {
	line := fmt.Sprintf("%s %s: %s, scope %s", verb, cellText(d.target()), cellText(d.ID), cellText(d.Scope))
	if d.State == "active" {
		line += ", " + d.left(now) + " left"
	}
	switch {
	case d.Lifted != nil:
		line += " (actor: " + cellText(d.Lifted.Actor) + ")"
	case d.Actor != "":
		line += " (actor: " + cellText(d.Actor) + ")"
	}
	return line
}

// matchesRange reports whether d's IP is in p, or d's range within it.
func matchesRange(d decision, p netip.Prefix) bool {
	if ip, err := netip.ParseAddr(d.IP); err == nil {
		return p.Contains(ip.Unmap())
	}
	r, err := netip.ParsePrefix(d.Range)
	return err == nil && r.Bits() >= p.Bits() && p.Contains(r.Addr())
}
