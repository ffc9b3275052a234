package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseCSV parses a command's -o raw output, header first.
func parseCSV(t *testing.T, out string) [][]string {
	t.Helper()
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("-o raw is not CSV: %v\n%s", err, out)
	}
	if len(records) == 0 {
		t.Fatalf("-o raw wrote no header")
	}
	return records
}

// parseJSONList parses a list command's -o json output.
func parseJSONList(t *testing.T, out string) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("-o json is not a JSON array: %v\n%s", err, out)
	}
	return list
}

// ids are the "id" of each object of a list.
func ids(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, d := range list {
		out[i], _ = d["id"].(string)
	}
	return out
}

// The acceptance: with 100 decisions, over pages of 30, decisions list
// prints all of them newest first, -o json as one array of the API's
// objects, -o raw as CSV with a header, and every filter gives what the
// API selects.
func TestDecisionsListAll(t *testing.T) {
	api, base := newContractAPI(t)
	var want []string
	for _, d := range api.decisions {
		want = append(want, d["id"].(string))
	}

	before := api.count()
	code, out, errOut := api.cli(t, base, "decisions", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("decisions list -o json: exit %d: %s", code, errOut)
	}
	list := parseJSONList(t, out)
	if !slices.Equal(ids(list), want) {
		t.Errorf("decisions list -o json: ids %v, want the 100 newest first", ids(list))
	}
	if got := api.sent(before); len(got) != 4 {
		t.Errorf("100 decisions in pages of 30 took %d requests, want 4: %q", len(got), got)
	}
	// The API's objects as they came, every field.
	if list[3]["evidence"].(map[string]any)["score_inbound"] != "Critical" || list[0]["lifted"].(map[string]any)["reason"] != "fp" {
		t.Errorf("decisions list -o json changed the API's objects: %v", list[0])
	}

	code, out, errOut = api.cli(t, base, "decisions", "list", "-o", "raw")
	if code != 0 {
		t.Fatalf("decisions list -o raw: exit %d: %s", code, errOut)
	}
	records := parseCSV(t, out)
	header := records[0]
	if len(records) != 101 || header[0] != "id" || header[1] != "ip" || header[3] != "state" {
		t.Fatalf("decisions list -o raw: %d records, header %v; want 100 and a header id,ip,…", len(records)-1, header)
	}
	col := func(name string) int { return slices.Index(header, name) }
	row7, row9 := records[8], records[10]
	if row7[col("range")] != "45.83.0.0/28" || row7[col("ip")] != "" || row9[col("port")] != "443" ||
		records[1][col("lifted_reason")] != "fp" || row7[col("reasons")] != "ANON_TOR: a Tor exit node" {
		t.Errorf("decisions list -o raw: rows %v and %v do not hold the API's fields", row7, row9)
	}
	if got := records[3][col("reasons")]; got != `line one\nforged line` {
		t.Errorf("a reason with a line break is %q in the CSV, want it escaped on one line", got)
	}

	code, out, _ = api.cli(t, base, "decisions", "list")
	if code != 0 || !strings.Contains(out, "100 decision(s)") || !strings.Contains(out, "cip-000000000063") {
		t.Errorf("decisions list: exit %d:\n%s", code, out)
	}
	if strings.ContainsAny(out, "\x1b\t") || strings.Contains(out, "\nforged line") || !strings.Contains(out, `evil\x1b[2J\t.example.`) {
		t.Errorf("decisions list passed control characters of a name or a reason to the terminal:\n%q", out)
	}
}

func TestDecisionsListFilters(t *testing.T) {
	api, base := newContractAPI(t)
	byState := func(state string) func(map[string]any) bool {
		return func(d map[string]any) bool { return d["state"] == state }
	}
	for _, tc := range []struct {
		flags []string
		query url.Values // what the API must be sent, beside limit and cursor
		want  func(map[string]any) bool
	}{
		{[]string{"--state", "active"}, url.Values{"state": {"active"}}, byState("active")},
		{[]string{"--state", "lifted"}, url.Values{"state": {"lifted"}}, byState("lifted")},
		{[]string{"--ip", "45.83.0.8"}, url.Values{"ip": {"45.83.0.8"}}, func(d map[string]any) bool { return d["ip"] == "45.83.0.8" }},
		{[]string{"--client", "10.1.2.3"}, url.Values{"client": {"10.1.2.3"}}, func(d map[string]any) bool { return d["clients"].([]string)[0] == "10.1.2.3" }},
		{[]string{"--factor", "score"}, url.Values{"factor": {"score"}}, func(d map[string]any) bool { return d["factors"].([]string)[0] == "score" }},
		{[]string{"--scope", "tagged", "--state", "active"}, url.Values{"scope": {"tagged"}, "state": {"active"}},
			func(d map[string]any) bool { return d["scope"] == "tagged" && d["state"] == "active" }},
		{[]string{"--since", "1d"}, url.Values{"since": {"1d"}}, func(d map[string]any) bool {
			created, _ := time.Parse(time.RFC3339, d["created"].(string))
			return !created.Before(contractNow.Add(-24 * time.Hour))
		}},
		{[]string{"--since", "2026-12-05T12:00:00Z", "--until", "1d"}, url.Values{"since": {"2026-12-05T12:00:00Z"}, "until": {"1d"}}, func(d map[string]any) bool {
			created, _ := time.Parse(time.RFC3339, d["created"].(string))
			return !created.Before(contractNow.Add(-48*time.Hour)) && created.Before(contractNow.Add(-24*time.Hour))
		}},
	} {
		var want []string
		for _, d := range api.decisions {
			if tc.want(d) {
				want = append(want, d["id"].(string))
			}
		}
		if len(want) == 0 || len(want) == len(api.decisions) {
			t.Fatalf("%v: the canned data does not test this filter (%d of %d)", tc.flags, len(want), len(api.decisions))
		}
		for _, format := range []string{"json", "raw"} {
			before := api.count()
			code, out, errOut := api.cli(t, base, append([]string{"decisions", "list", "-o", format}, tc.flags...)...)
			if code != 0 {
				t.Fatalf("decisions list %v -o %s: exit %d: %s", tc.flags, format, code, errOut)
			}
			var got []string
			if format == "json" {
				got = ids(parseJSONList(t, out))
			} else {
				for _, r := range parseCSV(t, out)[1:] {
					got = append(got, r[0])
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("decisions list %v -o %s: %v, want %v", tc.flags, format, got, want)
			}
			q, _ := url.ParseQuery(strings.SplitN(api.sent(before)[0], "?", 2)[1])
			q.Del("limit")
			if q.Encode() != tc.query.Encode() {
				t.Errorf("decisions list %v sent %q, want %q", tc.flags, q.Encode(), tc.query.Encode())
			}
		}
	}
}

// --limit stops early, asking the API for no more than it needs.
func TestDecisionsListLimit(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	code, out, errOut := api.cli(t, base, "decisions", "list", "--limit", "45", "-o", "json")
	if list := parseJSONList(t, out); code != 0 || len(list) != 45 || list[44]["id"] != "cip-00000000002c" {
		t.Fatalf("decisions list --limit 45: exit %d, %d decisions: %s", code, len(list), errOut)
	}
	sent := api.sent(before)
	if len(sent) != 2 || !strings.Contains(sent[0], "limit=45") || !strings.Contains(sent[1], "limit=15") {
		t.Errorf("decisions list --limit 45 sent %q; want 2 pages, asking for 45 then 15", sent)
	}
	if code, out, _ := api.cli(t, base, "decisions", "list", "--limit", "10"); code != 0 || !strings.Contains(out, "10 decision(s)\n(more on the server") {
		t.Errorf("decisions list --limit 10: exit %d, does not say there are more:\n%s", code, out)
	}
}

// Bad flags are refused before anything is sent, naming the flag.
func TestDecisionsUsageErrors(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--ip", "45.83.0"}, "--ip"},
		{[]string{"list", "--client", "host"}, "--client"},
		{[]string{"list", "--state", "gone"}, "--state"},
		{[]string{"list", "--scope", "some"}, "--scope"},
		{[]string{"list", "--factor", "evil"}, "--factor"},
		{[]string{"list", "--since", "yesterday"}, "--since"},
		{[]string{"list", "--limit", "-1"}, "--limit"},
		{[]string{"list", "-o", "yaml"}, "-o"},
		{[]string{"list", "extra"}, "takes no arguments"},
		{[]string{"show"}, "takes ID"},
		{[]string{"delete", "cip-000000000002"}, "--reason is required"},
		{[]string{"delete", "--reason", "fp"}, "one of ID, --ip IP, --range CIDR and --all"},
		{[]string{"delete", "cip-1", "--ip", "45.83.0.8", "--reason", "fp"}, "one of ID"},
		{[]string{"delete", "--range", "45.83.0.0", "--reason", "fp"}, "--range"},
		{[]string{"delete", "--all", "--reason", "fp"}, "--yes"},
		{[]string{"add", "--ip", "45.83.9.9", "--reason", "x"}, "--ttl is required"},
		{[]string{"add", "--ip", "45.83.9.9", "--range", "45.83.9.0/24", "--ttl", "1h", "--reason", "x"}, "one of --ip IP and --range CIDR"},
		{[]string{"add", "--ip", "45.83.9.9", "--ttl", "soon", "--reason", "x"}, "--ttl"},
		{[]string{"add", "--ip", "45.83.9.9", "--ttl", "1h"}, "--reason is required"},
		{[]string{"nonsense"}, `no command "nonsense"`},
	} {
		code, _, errOut := api.cli(t, base, append([]string{"decisions"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("decisions %v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if sent := api.sent(before); len(sent) != 0 {
		t.Errorf("bad usage sent requests: %q", sent)
	}
}

func TestDecisionsShow(t *testing.T) {
	api, base := newContractAPI(t)
	code, out, errOut := api.cli(t, base, "decisions", "show", "cip-000000000000")
	if code != 0 {
		t.Fatalf("decisions show: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"cip-000000000000", "45.83.0.0", "lifted", "1m ago by bob: fp", "Hook nftables", "delivered", "Timeline:", "blocked for everyone", "score inbound Critical, outbound Critical; ports 22,443; tags tor"} {
		if !strings.Contains(out, want) {
			t.Errorf("decisions show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = api.cli(t, base, "decisions", "show", "cip-000000000000", "-o", "json")
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d["id"] != "cip-000000000000" || len(d["timeline"].([]any)) != 2 {
		t.Errorf("decisions show -o json: exit %d, %v: %s", code, err, out)
	}
	code, out, _ = api.cli(t, base, "decisions", "show", "cip-000000000000", "-o", "raw")
	if r := parseCSV(t, out); code != 0 || len(r) != 2 || r[1][0] != "cip-000000000000" {
		t.Errorf("decisions show -o raw: exit %d: %v", code, r)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "show", "cip-ffffffffffff"); code != exitAPINotFound || !strings.Contains(errOut, "404 Not Found: no decision cip-ffffffffffff") {
		t.Errorf("decisions show of an unknown id: exit %d, %q; want 3 and the API's 404", code, errOut)
	}
}

// Lifting by decision id: DELETE /v1/decisions/{id} with the reason and
// whom the token acts for; an unknown id is 3, a decision no longer
// active is the API's 409 (1).
func TestDecisionsDeleteByID(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	code, out, errOut := api.cli(t, base, "decisions", "delete", "cip-000000000002", "--reason", "false positive")
	if code != 0 || !strings.Contains(out, "lifted 45.83.0.2: cip-000000000002") || !strings.Contains(out, "ops (on behalf of alice)") {
		t.Fatalf("decisions delete ID: exit %d, %q %q", code, out, errOut)
	}
	if sent := api.sent(before); len(sent) != 1 || sent[0] != "DELETE /v1/decisions/cip-000000000002?on_behalf_of=alice&reason=false+positive" {
		t.Errorf("decisions delete ID sent %q", sent)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "delete", "cip-000000000002", "--reason", "again"); code != exitAPIFailed || !strings.Contains(errOut, "409 Conflict: decision cip-000000000002 is lifted, not active") {
		t.Errorf("decisions delete of a lifted decision: exit %d, %q; want 1 and the 409", code, errOut)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "delete", "cip-ffffffffffff", "--reason", "x"); code != exitAPINotFound {
		t.Errorf("decisions delete of an unknown id: exit %d, %q; want 3", code, errOut)
	}
	code, out, _ = api.cli(t, base, "decisions", "delete", "cip-000000000003", "--reason", "fp", "--actor", "carol", "-o", "json")
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d["state"] != "lifted" || d["lifted"].(map[string]any)["actor"] != "ops (on behalf of carol)" {
		t.Errorf("decisions delete -o json: exit %d, %v: %s", code, err, out)
	}
}

// delete --ip and --range find the active decisions (GET
// /v1/decisions?state=active) and lift each by its id.
func TestDecisionsDeleteResolves(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	code, out, errOut := api.cli(t, base, "decisions", "delete", "--ip", "45.83.0.8", "--reason", "fp")
	if code != 0 || !strings.Contains(out, "cip-000000000008") || !strings.Contains(out, "cip-000000000009") || !strings.Contains(out, "lifted 2 decision(s)") {
		t.Fatalf("decisions delete --ip: exit %d, %q %q", code, out, errOut)
	}
	want := []string{"GET /v1/decisions?ip=45.83.0.8&limit=1000&state=active",
		"DELETE /v1/decisions/cip-000000000008?on_behalf_of=alice&reason=fp",
		"DELETE /v1/decisions/cip-000000000009?on_behalf_of=alice&reason=fp"}
	if sent := api.sent(before); !slices.Equal(sent, want) {
		t.Errorf("decisions delete --ip sent %q, want %q", sent, want)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "delete", "--ip", "45.83.0.8", "--reason", "fp"); code != exitAPINotFound || !strings.Contains(errOut, "no active decision matches 45.83.0.8") {
		t.Errorf("decisions delete --ip with nothing active: exit %d, %q; want 3", code, errOut)
	}

	// 45.83.0.0/28: the active decisions of 45.83.0.2-15, and the range
	// 45.83.0.0/28 itself; not 0, 1, 10, 11 (ended), nor 8 and 9 (lifted
	// above), nor 45.83.0.16 and up.
	code, out, errOut = api.cli(t, base, "decisions", "delete", "--range", "45.83.0.0/28", "--reason", "fp", "-o", "raw")
	if code != 0 {
		t.Fatalf("decisions delete --range: exit %d: %s", code, errOut)
	}
	var got []string
	for _, r := range parseCSV(t, out)[1:] {
		got = append(got, r[0])
	}
	var wantIDs []string
	for _, i := range []int{2, 3, 4, 5, 6, 7, 12, 13, 14, 15} {
		wantIDs = append(wantIDs, fmt.Sprintf("cip-%012x", i))
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("decisions delete --range 45.83.0.0/28 lifted %v, want %v", got, wantIDs)
	}
}

// --all lifts every active decision, with --yes or a yes on a terminal;
// without either nothing is sent.
func TestDecisionsDeleteAll(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	if code, _, errOut := api.cli(t, base, "decisions", "delete", "--all", "--reason", "incident over"); code != exitUsage || !strings.Contains(errOut, "--all lifts every active decision: add --yes") {
		t.Errorf("decisions delete --all without --yes: exit %d, %q; want 2", code, errOut)
	}
	if sent := api.sent(before); len(sent) != 0 {
		t.Errorf("decisions delete --all without --yes sent %q", sent)
	}
	terminal := func(answer string) cliIO { return cliIO{stdin: strings.NewReader(answer), interactive: true} }
	code, _, errOut := api.cliWith(t, base, terminal("n\n"), "decisions", "delete", "--all", "--reason", "incident over")
	if code != exitUsage || !strings.Contains(errOut, "Lift all 81 active decision(s) everywhere? [y/N]") || !strings.Contains(errOut, "nothing was lifted") {
		t.Errorf("decisions delete --all answered no: exit %d, %q", code, errOut)
	}
	code, out, errOut := api.cliWith(t, base, terminal("y\n"), "decisions", "delete", "--all", "--reason", "incident over", "-o", "json")
	if list := parseJSONList(t, out); code != 0 || len(list) != 81 {
		t.Fatalf("decisions delete --all answered yes: exit %d, %d lifted: %s", code, len(list), errOut)
	}
	for _, d := range api.decisions {
		if d["state"] == "active" {
			t.Errorf("decision %s is still active after delete --all", d["id"])
		}
	}
	if code, _, _ := api.cli(t, base, "decisions", "delete", "--all", "--yes", "--reason", "again"); code != exitAPINotFound {
		t.Errorf("decisions delete --all --yes with nothing active: exit %d, want 3", code)
	}
}

func TestDecisionsAdd(t *testing.T) {
	api, base := newContractAPI(t)
	before := api.count()
	code, out, errOut := api.cli(t, base, "decisions", "add", "--ip", "45.83.9.8", "--ttl", "7d", "--reason", "phishing kit", "-o", "json")
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); code != 0 || err != nil || d["origin"] != "manual" || d["ip"] != "45.83.9.8" {
		t.Fatalf("decisions add: exit %d, %v: %s %s", code, err, out, errOut)
	}
	body := api.bodies[len(api.bodies)-1]
	if body["ip"] != "45.83.9.8" || body["ttl"] != "168h" || body["reason"] != "phishing kit" || body["range"] != nil || body["force"] != nil {
		t.Errorf("decisions add sent %v; want ip, ttl 168h, reason", body)
	}
	if sent := api.sent(before); sent[0] != "POST /v1/blocks?on_behalf_of=alice" {
		t.Errorf("decisions add sent %q", sent)
	}
	code, out, _ = api.cli(t, base, "decisions", "add", "--range", "45.83.10.7/24", "--ttl", "24h", "--reason", "campaign", "--scope", "everyone")
	if body := api.bodies[len(api.bodies)-1]; code != 0 || body["range"] != "45.83.10.0/24" || body["scope"] != "everyone" || !strings.Contains(out, "blocked 45.83.10.0/24: cip-00000000beef") {
		t.Errorf("decisions add --range: exit %d, sent %v, printed %q", code, body, out)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "add", "--ip", "45.83.9.9", "--ttl", "1h", "--reason", "x"); code != exitAPIFailed || !strings.Contains(errOut, "409 Conflict: 45.83.9.9 is allowlisted") {
		t.Errorf("decisions add of an allowlisted IP: exit %d, %q; want 1 and the 409", code, errOut)
	}
	if code, _, errOut := api.cli(t, base, "decisions", "add", "--ip", "45.83.9.9", "--ttl", "1h", "--reason", "x", "--force"); code != 0 || api.bodies[len(api.bodies)-1]["force"] != true {
		t.Errorf("decisions add --force: exit %d, %q", code, errOut)
	}
}

// The API's refusals: 401 and 403 are 4, a 429 is retried after its
// Retry-After, 3 times.
func TestDecisionsAPIRefusals(t *testing.T) {
	api, base := newContractAPI(t)
	noToken := cliIO{getenv: func(k string) string { return map[string]string{"CIP_API": base}[k] }}
	if code, _, errOut := api.cliWith(t, base, noToken, "decisions", "list"); code != exitAPIForbidden || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("decisions list without a token: exit %d, %q; want 4", code, errOut)
	}
	reader := cliIO{getenv: func(k string) string { return map[string]string{"CIP_API": base, "CIP_TOKEN": readSecret}[k] }}
	if code, _, errOut := api.cliWith(t, base, reader, "decisions", "list", "--limit", "1"); code != 0 {
		t.Errorf("decisions list with a read token: exit %d, %q", code, errOut)
	}
	if code, _, errOut := api.cliWith(t, base, reader, "decisions", "delete", "cip-000000000002", "--reason", "fp"); code != exitAPIForbidden || !strings.Contains(errOut, "403 Forbidden") {
		t.Errorf("decisions delete with a read token: exit %d, %q; want 4", code, errOut)
	}
	if code, _, errOut := api.cliWith(t, base, reader, "decisions", "delete", "--ip", "45.83.0.2", "--reason", "fp"); code != exitAPIForbidden || !strings.Contains(errOut, "403 Forbidden") {
		t.Errorf("decisions delete --ip with a read token: exit %d, %q; want 4", code, errOut)
	}
	api.mu.Lock()
	api.throttle = 3
	api.mu.Unlock()
	if code, out, errOut := api.cli(t, base, "decisions", "list", "-o", "json"); code != 0 || len(parseJSONList(t, out)) != 100 {
		t.Errorf("decisions list after three 429s: exit %d, %q", code, errOut)
	}
	api.mu.Lock()
	api.throttle = 4
	api.mu.Unlock()
	if code, _, errOut := api.cli(t, base, "decisions", "list"); code != exitAPIFailed || !strings.Contains(errOut, "429 Too Many Requests") {
		t.Errorf("decisions list after four 429s: exit %d, %q; want 1 and the 429", code, errOut)
	}
	unreachable := cliIO{getenv: func(k string) string { return map[string]string{"CIP_API": "http://127.0.0.1:1"}[k] }}
	if code, _, _ := api.cliWith(t, base, unreachable, "decisions", "list"); code != exitAPIFailed {
		t.Errorf("decisions list of an unreachable API: exit %d, want 1", code)
	}
}
