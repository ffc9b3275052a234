package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestEventsCommands(t *testing.T) {
	api, base := newContractAPI(t)
	api.pageMax = 1 // two events, two pages
	code, out, errOut := api.cli(t, base, "events", "list", "-o", "json")
	if list := parseJSONList(t, out); code != 0 || !slices.Equal(ids(list), []string{"ev-2", "ev-1"}) || list[0]["by"] != "siem" {
		t.Fatalf("events list -o json: exit %d, %s %s", code, out, errOut)
	}
	code, out, _ = api.cli(t, base, "events", "list", "--client", "10.1.2.4", "--type", "edr.malware", "--since", "7d", "-o", "raw")
	records := parseCSV(t, out)
	if code != 0 || len(records) != 2 || records[0][0] != "id" || records[1][0] != "ev-2" || records[1][3] != "SIEM-2 <script>" || records[1][8] != "cip-000000000002" {
		t.Errorf("events list --client -o raw: exit %d, %v", code, records)
	}
	if code, _, errOut := api.cli(t, base, "events", "list", "--type", "EDR"); code != exitAPIFailed || !strings.Contains(errOut, "400 Bad Request: must be lower case") {
		t.Errorf("events list with a type the API refuses: exit %d, %q; want 1 and the API's 400", code, errOut)
	}
	if code, _, errOut := api.cli(t, base, "events", "list", "--client", "laptop"); code != exitUsage || !strings.Contains(errOut, "--client") {
		t.Errorf("events list --client laptop: exit %d, %q; want 2", code, errOut)
	}

	code, out, errOut = api.cli(t, base, "events", "show", "ev-2")
	for _, want := range []string{"10.1.2.4", "edr.malware", "SIEM-2 <script>", "2 IP(s) found", "45.83.0.2", "suspicious", "cip-000000000002", "SCORE: inbound Critical", "93.184.216.34", "clean"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("events show: exit %d, lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	code, out, _ = api.cli(t, base, "events", "show", "ev-2", "-o", "json")
	var ev map[string]any
	if err := json.Unmarshal([]byte(out), &ev); code != 0 || err != nil || len(ev["found"].([]any)) != 2 {
		t.Errorf("events show -o json: exit %d, %v: %s", code, err, out)
	}
	code, out, _ = api.cli(t, base, "events", "show", "ev-2", "-o", "raw")
	if r := parseCSV(t, out); code != 0 || len(r) != 3 || r[1][0] != "45.83.0.2" || r[1][3] != "cip-000000000002" {
		t.Errorf("events show -o raw: exit %d, %v", code, r)
	}
	if code, _, _ := api.cli(t, base, "events", "show", "ev-9"); code != exitAPINotFound {
		t.Errorf("events show of an unknown id: exit %d, want 3", code)
	}
}

func TestAllowCommands(t *testing.T) {
	api, base := newContractAPI(t)
	code, out, errOut := api.cli(t, base, "allow", "add", "cdn.example.com", "--until", "30d", "--reason", "vendor CDN")
	if code != 0 || !strings.Contains(out, "allowlisted cdn.example.com (until 2027-01-06T12:00:00Z") {
		t.Fatalf("allow add --until 30d: exit %d, %q %q", code, out, errOut)
	}
	body := api.bodies[len(api.bodies)-1]
	if body["until"] != "720h" || body["reason"] != "vendor CDN" || body["on_behalf_of"] != "alice" {
		t.Errorf("allow add --until 30d sent %v; want until 720h, the reason and alice", body)
	}
	if code, _, errOut := api.cli(t, base, "allow", "add", "cdn.example.com", "--until", "2027-01-01T00:00:00Z", "--reason", "x"); code != 0 || api.bodies[len(api.bodies)-1]["until"] != "2027-01-01T00:00:00Z" {
		t.Errorf("allow add --until TIME: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{"add", "cdn.example.com", "--until", "a month", "--reason", "x"}, {"add", "cdn.example.com"}, {"add"}} {
		if code, _, errOut := api.cli(t, base, append([]string{"allow"}, args...)...); code != exitUsage {
			t.Errorf("allow %v: exit %d, %q; want 2", args, code, errOut)
		}
	}

	code, out, _ = api.cli(t, base, "allow", "list", "-o", "raw")
	records := parseCSV(t, out)
	if code != 0 || len(records) != 3 || !slices.Equal(records[0], []string{"value", "until", "reason", "actor", "created", "static"}) ||
		records[1][2] != "vendor, CDN" || records[2][5] != "true" {
		t.Errorf("allow list -o raw: exit %d, %v", code, records)
	}
	if code, out, _ := api.cli(t, base, "allow", "list", "-o", "json"); code != 0 || len(parseJSONList(t, out)) != 2 {
		t.Errorf("allow list -o json: exit %d, %s", code, out)
	}

	before := api.count()
	if code, out, _ := api.cli(t, base, "allow", "delete", "cdn.example.com"); code != 0 || out != "removed cdn.example.com from the allowlist\n" {
		t.Errorf("allow delete: exit %d, %q", code, out)
	}
	if sent := api.sent(before); sent[0] != "DELETE /v1/allow/cdn.example.com?on_behalf_of=alice" {
		t.Errorf("allow delete sent %q", sent)
	}
	if code, _, errOut := api.cli(t, base, "allow", "delete", "10.9.0.0/16"); code != exitAPINotFound || !strings.Contains(errOut, `"10.9.0.0/16" is not a dynamic allowlist entry`) {
		t.Errorf("allow delete of a static CIDR: exit %d, %q; want 3 and the CIDR whole", code, errOut)
	}
}

func TestClientsCommands(t *testing.T) {
	api, base := newContractAPI(t)
	code, out, _ := api.cli(t, base, "clients", "list", "-o", "json")
	if list := parseJSONList(t, out); code != 0 || len(list) != 1 || list[0]["client"] != "10.1.2.3" {
		t.Errorf("clients list -o json: exit %d, %s", code, out)
	}
	code, out, _ = api.cli(t, base, "clients", "list", "-o", "raw")
	if r := parseCSV(t, out); code != 0 || len(r) != 2 || r[1][3] != "ev-000000000003" || r[1][2] != "2026-12-07T13:00:00Z" {
		t.Errorf("clients list -o raw: exit %d, %v", code, r)
	}
	code, out, _ = api.cli(t, base, "clients", "list")
	if code != 0 || !strings.Contains(out, "1h ago") || !strings.Contains(out, "in 1h") || !strings.Contains(out, "1 tagged client(s)") {
		t.Errorf("clients list: exit %d:\n%s", code, out)
	}
	if code, out, _ := api.cli(t, base, "clients", "untag", "10.1.2.3"); code != 0 || out != "untagged 10.1.2.3\n" {
		t.Errorf("clients untag: exit %d, %q", code, out)
	}
	if code, _, _ := api.cli(t, base, "clients", "untag", "10.1.2.9"); code != exitAPINotFound {
		t.Errorf("clients untag of an untagged client: exit %d, want 3", code)
	}
	if code, _, _ := api.cli(t, base, "clients", "untag", "laptop"); code != exitUsage {
		t.Errorf("clients untag laptop: exit %d, want 2", code)
	}
}

// blocks allow, the older command, also takes --until 30d.
func TestBlocksAllowUntilDays(t *testing.T) {
	api, base := newContractAPI(t)
	var out, errb bytes.Buffer
	env := func(k string) string { return map[string]string{"CIP_TOKEN": operatorSecret}[k] }
	code := blocksCmd(context.Background(), []string{"allow", "cdn.example.com", "--until", "30d", "--reason", "vendor CDN", "--api", base}, &out, &errb, env)
	if code != 0 || api.bodies[len(api.bodies)-1]["until"] != "720h" || !strings.Contains(out.String(), "allowlisted cdn.example.com") {
		t.Errorf("blocks allow --until 30d: exit %d, sent %v, %q %q", code, api.bodies, &out, &errb)
	}
}

// help COMMAND prints a group's commands and the exit statuses.
func TestAPICommandsHelp(t *testing.T) {
	for _, name := range []string{"decisions", "events", "allow", "clients"} {
		var out, errb bytes.Buffer
		if code := help([]string{name}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Exit status: 0 done; 1 the API refused") {
			t.Errorf("help %s: exit %d:\n%s", name, code, &out)
		}
	}
	var errb bytes.Buffer
	cio := cliIO{stdout: &errb, stderr: &errb, getenv: func(string) string { return "" }}
	if code := runAPIGroup(context.Background(), decisionsGroup, []string{"list", "-h"}, cio); code != 0 || !strings.Contains(errb.String(), "-factor group or code") {
		t.Errorf("decisions list -h: exit %d:\n%s", code, &errb)
	}
}
