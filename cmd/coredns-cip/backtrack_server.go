package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// serverFinding is one IP of GET /v1/events/{id}: what the server's window
// held for the client, the state of its validation and its verdict.
type serverFinding struct {
	IP      netip.Addr        `json:"ip"`
	Ports   []uint16          `json:"ports"`
	First   time.Time         `json:"first_seen"`
	Last    time.Time         `json:"last_seen"`
	Count   int               `json:"count"`
	State   string            `json:"state"`
	Verdict *verdicts.Verdict `json:"verdict"`
}

// finalStates are the validation states (adminapi, enforce) after which
// a finding no longer changes without a new event.
var finalStates = []string{"suspicious", "clean", "error: gave up", "error", "skipped"}

// pollEvery is how often backtrack --api asks for the event's state: often
// enough for a prompt answer, rarely enough to be no load on the server.
const pollEvery = 250 * time.Millisecond

// runBacktrackServer parses and selects as runBacktrack does, then has the
// server at opts.server decide: it posts the selected records and an
// event, and waits for the event's findings.
func runBacktrackServer(ctx context.Context, opts backtrackOpts, progress io.Writer) (backtrackResult, error) {
	sum, list, records, err := scanLog(opts, progress)
	if err != nil {
		return backtrackResult{}, err
	}
	api := opts.server
	if err := postConnections(ctx, api, records, progress); err != nil {
		return backtrackResult{}, err
	}
	id, err := postBacktrackEvent(ctx, api, opts, progress)
	if err != nil {
		return backtrackResult{}, err
	}
	found, err := awaitFindings(ctx, api, id, opts.deadline, progress)
	if err != nil {
		return backtrackResult{}, err
	}
	var blocks []blockEntry
	if raw, status, err := api.do(ctx, "GET", "/v1/blocks", nil, &blocks); err != nil {
		return backtrackResult{}, err
	} else if status != http.StatusOK {
		return backtrackResult{}, fmt.Errorf("GET /v1/blocks: %s", apiError(status, raw))
	}
	list, err = applyFindings(ctx, api, opts, list, found, eventBlocks(blocks, id))
	if err != nil {
		return backtrackResult{}, err
	}
	for _, d := range list {
		switch d.Verdict {
		case "suspicious":
			sum.Suspicious++
		case "clean":
			sum.Clean++
		case "skipped":
			sum.ServerSkipped++
		default:
			sum.Errors++
		}
	}
	sum.Destinations, sum.Pushed = len(list), len(eventBlocks(blocks, id))
	rank := map[string]int{"suspicious": 0, "error": 1, "clean": 2, "skipped": 3}
	slices.SortStableFunc(list, func(a, b *destination) int { return rank[a.Verdict] - rank[b.Verdict] })
	return backtrackResult{client: opts.client, at: opts.at, window: opts.window, list: list, sum: sum,
		criticalPorts: len(opts.rules.CriticalPorts) > 0, server: api.base,
		note: fmt.Sprintf("decided by the server at %s (event %s): %d block(s) in force there", api.base, id, sum.Pushed)}, nil
}

// postConnections posts the records in batches the API takes, and says on
// progress how many it refused and why (the first reason).
func postConnections(ctx context.Context, api *eventAPIClient, records []adminapi.Connection, progress io.Writer) error {
	var ans struct {
		Accepted int                    `json:"accepted"`
		Rejected int                    `json:"rejected"`
		Errors   []adminapi.RecordError `json:"errors"`
	}
	accepted, rejected, first := 0, 0, ""
	for batch := range slices.Chunk(records, adminapi.MaxConnections) {
		raw, status, err := api.do(ctx, "POST", "/v1/connections", batch, &ans)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("POST /v1/connections: %s", apiError(status, raw))
		}
		accepted, rejected = accepted+ans.Accepted, rejected+ans.Rejected
		if first == "" && len(ans.Errors) > 0 {
			first = ans.Errors[0].Error
		}
	}
	fmt.Fprintf(progress, "posted %d connection records to %s: %d accepted", len(records), api.base, accepted)
	if rejected > 0 {
		fmt.Fprintf(progress, ", %d refused (%s)", rejected, first)
	}
	fmt.Fprintln(progress)
	return nil
}

// postBacktrackEvent posts the event and returns its id; a coverage
// warning (the window reaches before what the server retains) goes to
// progress.
func postBacktrackEvent(ctx context.Context, api *eventAPIClient, opts backtrackOpts, progress io.Writer) (string, error) {
	body := map[string]string{"client": opts.client.String(), "type": "backtrack", "at": opts.at.Format(time.RFC3339Nano),
		"window": opts.window.String(), "watch": opts.watch.String()}
	var acc adminapi.Accepted
	raw, status, err := api.do(ctx, "POST", "/v1/events", body, &acc)
	if err != nil {
		return "", err
	}
	if status != http.StatusAccepted {
		return "", fmt.Errorf("POST /v1/events: %s", apiError(status, raw))
	}
	fmt.Fprintf(progress, "event %s: the server found %d destinations of %s (%d queued, %d cached)\n",
		acc.ID, acc.Backtracked, opts.client, acc.Queued, acc.Cached)
	if acc.Warning != "" {
		fmt.Fprintf(progress, "warning: %s\n", acc.Warning)
	}
	return acc.ID, nil
}

// awaitFindings polls the event until every finding is final or the
// deadline passes, with a progress line, and returns the last findings.
func awaitFindings(ctx context.Context, api *eventAPIClient, id string, deadline time.Duration, progress io.Writer) ([]serverFinding, error) {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var ev struct {
		Found []serverFinding `json:"found"`
	}
	path := "/v1/events/" + url.PathEscape(id)
	for {
		raw, status, err := api.do(ctx, "GET", path, nil, &ev)
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			fmt.Fprintf(progress, "\nthe server had not decided every destination after %s (--deadline)\n", deadline)
			return ev.Found, nil
		case err != nil:
			return nil, err
		case status != http.StatusOK:
			return nil, fmt.Errorf("GET %s: %s", path, apiError(status, raw))
		}
		final, susp := 0, 0
		for _, f := range ev.Found {
			if slices.Contains(finalStates, f.State) {
				final++
			}
			if f.State == "suspicious" {
				susp++
			}
		}
		fmt.Fprintf(progress, "\rserver: %d/%d decided (%d suspicious)", final, len(ev.Found), susp)
		if final == len(ev.Found) {
			fmt.Fprintln(progress)
			return ev.Found, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// eventBlocks returns the blocks that the event led to, by IP.
func eventBlocks(blocks []blockEntry, id string) map[netip.Addr]blockEntry {
	out := map[netip.Addr]blockEntry{}
	for _, b := range blocks {
		if ip, err := netip.ParseAddr(b.IP); err == nil && slices.Contains(b.Events, id) {
			out[ip] = b
		}
	}
	return out
}

// applyFindings turns the server's findings into destinations: the log's
// own, with the server's verdicts, then those the server also found in
// the window (its DNS answers of the client). A destination of the log
// that the server did not find is marked skipped.
func applyFindings(ctx context.Context, api *eventAPIClient, opts backtrackOpts, list []*destination, found []serverFinding, blocks map[netip.Addr]blockEntry) ([]*destination, error) {
	byIP := make(map[netip.Addr]*destination, len(list))
	for _, d := range list {
		byIP[d.IP] = d
		d.Verdict, d.Error = "skipped", "not in the server's window (excluded or allowlisted there)"
	}
	for _, f := range found {
		d := byIP[f.IP]
		if d == nil {
			d = &destination{IP: f.IP, Ports: f.Ports, First: f.First, Last: f.Last, Count: f.Count}
			d.Critical = slices.ContainsFunc(d.Ports, func(p uint16) bool { return slices.Contains(opts.rules.CriticalPorts, p) })
			byIP[f.IP] = d
			list = append(list, d)
		}
		if err := applyFinding(ctx, api, d, f, opts.deadline); err != nil {
			return nil, err
		}
		if b, ok := blocks[f.IP]; ok {
			// A block of this event: suspicious for this client even when
			// the verdict alone is not (a destination-port finding).
			d.Verdict, d.Decision, d.Scope, d.Error = "suspicious", b.Decision, b.Scope, ""
			for _, r := range b.Reasons {
				if !slices.ContainsFunc(d.Reasons, func(have risk.Reason) bool { return have.String() == r }) {
					factor, detail, _ := strings.Cut(r, ": ")
					d.Reasons = append(d.Reasons, risk.Reason{Factor: risk.Factor(factor), Detail: detail, Hint: true})
				}
			}
		}
	}
	return list, nil
}

// applyFinding sets d's verdict from one finding; a final finding whose
// verdict the event did not carry is read from GET /v1/verdicts/{ip}.
func applyFinding(ctx context.Context, api *eventAPIClient, d *destination, f serverFinding, deadline time.Duration) error {
	d.Error = ""
	v := f.Verdict
	if v == nil && (f.State == "suspicious" || f.State == "clean") {
		var got verdicts.Verdict
		raw, status, err := api.do(ctx, "GET", "/v1/verdicts/"+f.IP.String(), nil, &got)
		switch {
		case err != nil:
			return err
		case status == http.StatusOK:
			v = &got
		case status != http.StatusNotFound:
			return fmt.Errorf("GET /v1/verdicts/%s: %s", f.IP, apiError(status, raw))
		}
	}
	if v != nil {
		d.Reasons, d.Score = v.Reasons, v.Score
	}
	switch f.State {
	case "suspicious", "clean":
		d.Verdict = f.State
		if v != nil && v.Suspicious() {
			d.Decision, d.Scope = v.Decision, string(v.Scope)
		}
	case "skipped":
		d.Verdict, d.Error = "skipped", "excluded or allowlisted by the server"
	case "error", "error: gave up":
		d.Verdict, d.Error = "error", "server: "+f.State
		if v != nil && v.Error != "" {
			d.Error += " (" + string(v.Error) + ")"
		}
	default:
		d.Verdict, d.Error = "error", fmt.Sprintf("server: still %s after %s (--deadline)", f.State, deadline)
	}
	return nil
}
