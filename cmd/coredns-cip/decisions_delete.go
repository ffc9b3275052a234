package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// liftTarget is what decisions delete lifts: one id, or the active
// decisions of an IP, within a CIDR, or all of them.
type liftTarget struct {
	id, ip string
	cidr   netip.Prefix
	all    bool
}

func decisionsDelete(fs *flag.FlagSet) func(context.Context, *apiSession, []string) error {
	ip := fs.String("ip", "", "lift every active decision of this `IP`")
	cidr := fs.String("range", "", "lift every active decision within this `CIDR` (its IPs and ranges)")
	all := fs.Bool("all", false, "lift every active decision (asks, or needs --yes)")
	yes := fs.Bool("yes", false, "with --all: do not ask")
	reason := fs.String("reason", "", "why, for the audit log and the decision (required)")
	return func(ctx context.Context, s *apiSession, args []string) error {
		t := liftTarget{ip: *ip, all: *all}
		if len(args) == 1 {
			t.id = args[0]
		}
		given := 0
		for _, set := range []bool{t.id != "", *ip != "", *cidr != "", *all} {
			if set {
				given++
			}
		}
		if given != 1 {
			return usagef("decisions delete takes one of ID, --ip IP, --range CIDR and --all")
		}
		if err := checkIP("ip", *ip); err != nil {
			return err
		}
		if *cidr != "" {
			p, err := checkCIDR("range", *cidr)
			if err != nil {
				return err
			}
			t.cidr = p
		}
		why := strings.TrimSpace(*reason)
		if why == "" {
			return usagef("--reason is required: why the decision is lifted (the audit log keeps it)")
		}
		if t.all && !*yes && !s.io.interactive {
			return usagef("--all lifts every active decision: add --yes (or run it on a terminal to be asked)")
		}
		if t.id != "" {
			return s.liftOne(ctx, t.id, why)
		}
		ids, err := s.resolveLift(ctx, t)
		if err != nil {
			return err
		}
		if t.all && !*yes && !confirm(s.io, fmt.Sprintf("Lift all %d active decision(s) everywhere?", len(ids))) {
			return usagef("not confirmed; nothing was lifted")
		}
		return s.liftEach(ctx, ids, why)
	}
}

// resolveLift lists the active decisions t names.
func (s *apiSession) resolveLift(ctx context.Context, t liftTarget) ([]decision, error) {
	q := url.Values{"state": {"active"}}
	if t.ip != "" {
		q.Set("ip", t.ip)
	}
	items, _, err := s.api.listAll(ctx, "/v1/decisions", q, "decisions", 0)
	if err != nil {
		return nil, err
	}
	var list []decision
	if err := decodeItems(items, &list); err != nil {
		return nil, err
	}
	if t.cidr.IsValid() {
		in := list[:0]
		for _, d := range list {
			if matchesRange(d, t.cidr) {
				in = append(in, d)
			}
		}
		list = in
	}
	if len(list) == 0 {
		what := t.ip
		if t.cidr.IsValid() {
			what = "within " + t.cidr.String()
		} else if t.all {
			what = "at all"
		}
		return nil, fmt.Errorf("%w %s", errNothingMatched, what)
	}
	return list, nil
}

func (s *apiSession) lift(ctx context.Context, id, why string) (json.RawMessage, decision, error) {
	q := url.Values{"reason": {why}, "on_behalf_of": {s.actor}}
	raw, err := s.api.call(ctx, http.MethodDelete, "/v1/decisions/"+pathID(id), q, nil)
	if err != nil {
		return nil, decision{}, err
	}
	var d decision
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, decision{}, fmt.Errorf("DELETE /v1/decisions/%s: the answer is not a decision: %v", id, err)
	}
	return raw, d, nil
}

// liftOne lifts the decision id: a 404 (unknown) or 409 (not active) is
// the command's error.
func (s *apiSession) liftOne(ctx context.Context, id, why string) error {
	raw, d, err := s.lift(ctx, id, why)
	if err != nil {
		return err
	}
	return s.showChanged(raw, d, "lifted")
}

// liftEach lifts the decisions one by one. One that ended meanwhile (404,
// 409) is skipped; a refused token stops the run, as it would refuse the
// rest; other failures are reported and counted.
func (s *apiSession) liftEach(ctx context.Context, list []decision, why string) error {
	var raws []json.RawMessage
	var lifted []decision
	failed := 0
	for _, want := range list {
		raw, d, err := s.lift(ctx, want.ID, why)
		var se *statusError
		switch {
		case errors.As(err, &se) && (se.status == http.StatusNotFound || se.status == http.StatusConflict):
			fmt.Fprintf(s.io.stderr, "skipped %s (%s): no longer active\n", cellText(want.ID), cellText(want.target()))
			continue
		case errors.As(err, &se) && (se.status == http.StatusUnauthorized || se.status == http.StatusForbidden):
			s.showLifted(raws, lifted)
			return err
		case err != nil:
			fmt.Fprintf(s.io.stderr, "[ERROR] %v\n", err)
			failed++
			continue
		}
		raws, lifted = append(raws, raw), append(lifted, d)
		if s.output == "human" {
			fmt.Fprintln(s.io.stdout, changedLine(d, "lifted", s.io.now()))
		}
	}
	if err := s.showLifted(raws, lifted); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d decision(s) not lifted", failed, len(list))
	}
	return nil
}

// showLifted writes the decisions liftEach lifted: for people, their
// count (each one's line was written as it was lifted); else the list, as
// -o asks.
func (s *apiSession) showLifted(raws []json.RawMessage, lifted []decision) error {
	switch s.output {
	case "json":
		return writeJSONList(s.io.stdout, raws)
	case "raw":
		return writeCSV(s.io.stdout, decisionRows(lifted, s.io.now(), true))
	}
	_, err := fmt.Fprintf(s.io.stdout, "lifted %d decision(s)\n", len(lifted))
	return err
}
