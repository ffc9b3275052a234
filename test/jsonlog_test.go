package test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// With -log-format json every line the server writes is a JSON object, and
// a decision line, the one a SIEM alerts on, has its fields as members: a
// tagged client's answer for a suspicious IP is rewritten and logged so.
func TestJSONLogDecisionLine(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, flags: []string{"-log-format", "json"}})
	block := srv.blockBoth()[badIP]
	if got := answerA(t, queryA(t, srv.dnsAddr, taggedClient, badName)); slices.Contains(got, badIP) {
		t.Fatalf("%s after the block: A %v, want it rewritten", badName, got)
	}
	var verdict struct{ Scope string }
	srv.call("GET", "/v1/verdicts/"+badIP, nil, http.StatusOK, &verdict)

	var line map[string]any
	waitFor(t, "a JSON decision line for "+badIP, func() (bool, string) {
		for _, l := range strings.Split(srv.out.String(), "\n") {
			var o map[string]any
			if json.Unmarshal([]byte(l), &o) == nil && o["msg"] == "decision" && o["ip"] == badIP {
				line = o
				return true, ""
			}
		}
		return false, srv.out.String()
	})
	want := map[string]any{"level": "INFO", "plugin": "cipvalidate", "msg": "decision", "decision": block.Decision,
		"client": taggedClient, "qname": badName, "qtype": "A", "ip": badIP, "action": "sinkhole", "scope": verdict.Scope}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("decision line: %s = %v, want %v; line %v", k, line[k], v, line)
		}
	}
	if via := line["via"]; via != "answer" && via != "name" {
		t.Errorf("decision line: via = %v, want answer or name", via)
	}
	var reasons []string
	for _, r := range line["reasons"].([]any) {
		reasons = append(reasons, r.(string))
	}
	if !slices.Equal(reasons, block.Reasons) || len(reasons) == 0 {
		t.Errorf("decision line: reasons %q, want the block's %q", reasons, block.Reasons)
	}
	if _, err := time.Parse(time.RFC3339Nano, line["time"].(string)); err != nil {
		t.Errorf("decision line: time %v: %v", line["time"], err)
	}

	// Not only the decision lines: startup, the other plugins, everything.
	for _, l := range strings.Split(strings.TrimSpace(srv.out.String()), "\n") {
		var o struct{ Time, Level, Msg *string }
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Time == nil || o.Level == nil || o.Msg == nil {
			t.Errorf("a line of the server is not a JSON log object (%v): %q", err, l)
		}
	}
}

// A -log-format the server does not know stops it at once with an error
// naming the value and the choices.
func TestJSONLogBadFormat(t *testing.T) {
	_, errOut, code := run(t, "-log-format", "yaml", "-conf", "/nonexistent/Corefile")
	if code == 0 || !strings.Contains(errOut, `unknown log format "yaml": expected text or json`) {
		t.Errorf("-log-format yaml: exit %d, stderr %q; want a failure naming the format and the choices", code, errOut)
	}
}
