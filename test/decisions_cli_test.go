package test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// decisionView is what the tests read of the API's decisions.
type decisionView struct {
	ID     string `json:"id"`
	IP     string `json:"ip"`
	State  string `json:"state"`
	Origin string `json:"origin"`
	Lifted *struct {
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
	} `json:"lifted"`
}

// TestDecisionsCLI drives `coredns-cip decisions` against the real server:
// the list in JSON and CSV with a filter, a lift by decision id (DNS, the
// EDL and the history follow), and a manual block.
func TestDecisionsCLI(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "2h"})
	blocks := srv.blockBoth()
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return runEnv(t, cliEnv(), append(args, "--api", srv.api)...)
	}
	list := func(args ...string) map[string]decisionView {
		t.Helper()
		out, errOut, code := cli(append([]string{"decisions", "list", "-o", "json"}, args...)...)
		var got []decisionView
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("decisions list %v -o json: exit %d (stderr %q), not a JSON array (%v): %q", args, code, errOut, err, out)
		}
		byIP := map[string]decisionView{}
		for _, d := range got {
			byIP[d.IP] = d
		}
		return byIP
	}

	all := list()
	for _, ip := range []string{badIP, torIP} {
		if d := all[ip]; d.ID != blocks[ip].Decision || d.State != "active" {
			t.Errorf("decisions list: %s is %+v, want the active decision %s", ip, d, blocks[ip].Decision)
		}
	}
	if got := list("--ip", torIP); len(got) != 1 || got[torIP].ID == "" {
		t.Errorf("decisions list --ip %s: %v, want its decision alone", torIP, got)
	}

	out, errOut, code := cli("decisions", "list", "-o", "raw")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || !slices.Contains(rows[0], "id") {
		t.Fatalf("decisions list -o raw: exit %d (stderr %q), %v: want a header with id and 2 rows, got %q", code, errOut, err, out)
	}

	out, errOut, code = cli("decisions", "delete", blocks[badIP].Decision, "--reason", "false positive", "--actor", "alice")
	if code != 0 || !strings.Contains(out, blocks[badIP].Decision) {
		t.Fatalf("decisions delete %s: exit %d, stdout %q, stderr %q", blocks[badIP].Decision, code, out, errOut)
	}
	if got := answerA(t, queryA(t, srv.dnsAddr, taggedClient, badName)); !slices.Equal(got, []string{badIP}) {
		t.Errorf("%s after its decision was lifted: A %v, want the real %s", badName, got, badIP)
	}
	if slices.Contains(srv.blocklist(), badIP) {
		t.Errorf("the EDL still lists %s after its decision was lifted", badIP)
	}
	if d := list("--state", "lifted")[badIP]; d.Lifted == nil || d.Lifted.Reason != "false positive" || !strings.Contains(d.Lifted.Actor, "alice") {
		t.Errorf("decisions list --state lifted: %s is %+v, want lifted for a false positive on behalf of alice", badIP, d)
	}

	const manual = "45.83.0.99"
	out, errOut, code = cli("decisions", "add", "--ip", manual, "--ttl", "1h", "--reason", "phishing kit")
	if code != 0 {
		t.Fatalf("decisions add --ip %s: exit %d, stdout %q, stderr %q", manual, code, out, errOut)
	}
	if d := list("--ip", manual)[manual]; d.State != "active" || d.Origin != "manual" {
		t.Errorf("the manual block of %s is %+v, want an active decision of origin manual", manual, d)
	}
	if !slices.Contains(srv.blocklist(), manual) {
		t.Errorf("the EDL does not list the manual block of %s", manual)
	}

	// A hundred decisions and more: every page is listed, as JSON and CSV.
	for i := range 97 {
		ip := fmt.Sprintf("45.84.0.%d", i+1)
		if status, body := srv.do("POST", "/v1/blocks", map[string]string{"ip": ip, "ttl": "1h", "reason": "bulk"}); status != http.StatusCreated {
			t.Fatalf("POST /v1/blocks %s: %d %s", ip, status, body)
		}
	}
	if got := list(); len(got) != 100 {
		t.Errorf("decisions list -o json lists %d decisions, want all 100", len(got))
	}
	out, errOut, code = cli("decisions", "list", "-o", "raw", "--state", "active")
	rows, err = csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 100 {
		t.Errorf("decisions list -o raw --state active: exit %d (stderr %q), %v: %d rows, want a header and the 99 active", code, errOut, err, len(rows))
	}
}
