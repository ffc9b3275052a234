package cipvalidate

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The original pipeline: a host with no DNS history, whose firewall
// records are posted, gets an event; its public destinations in the window
// are validated and, once the event tags it, blocked for it; the one on
// port 22 is a finding of the port hint only (its report is clean, and the
// port never enters the cached verdict); private destinations cost no API
// call. `ports not 80 443` keeps web traffic from being validated on its
// own, but inside the event's window every public destination is
// validated, web ones included.
func TestE2EConnectionRecords(t *testing.T) {
	h := startHooked(t, "ports not 80 443")
	T := h.clock.Now()
	at := func(d time.Duration) string { return T.Add(d).Format(time.RFC3339) }
	recs := []map[string]any{
		{"time": at(-3 * time.Minute), "src": "10.9.9.9", "dst": "45.83.0.10", "dport": 22, "proto": "tcp"},   // clean report, SSH port
		{"time": at(-3 * time.Minute), "src": "10.9.9.9", "dst": "45.83.0.53", "dport": 8080, "proto": "tcp"}, // proxy
		{"time": at(-2 * time.Minute), "src": "10.9.9.9", "dst": "45.83.0.21", "dport": 443, "proto": "tcp"},  // web: not on its own
		{"time": at(-2 * time.Minute), "src": "10.9.9.9", "dst": "45.83.0.31", "dport": 80, "proto": "tcp"},
		{"time": at(-1 * time.Minute), "src": "10.9.9.9", "dst": "10.20.30.40", "dport": 3389, "proto": "tcp"}, // private
		{"time": at(-1 * time.Minute), "src": "10.9.9.9", "dst": "nonsense"},                                   // refused, alone
	}
	var ans struct {
		Accepted int `json:"accepted"`
		Rejected int `json:"rejected"`
		Queued   int `json:"queued"`
		Errors   []struct {
			Index int    `json:"index"`
			Field string `json:"field"`
		} `json:"errors"`
	}
	if code := h.api("POST", "/v1/connections", recs, &ans); code != http.StatusOK || ans.Accepted != 5 || ans.Rejected != 1 || ans.Errors[0].Index != 5 || ans.Errors[0].Field != "dst" {
		t.Fatalf("POST /v1/connections: %d %+v", code, ans)
	}
	if ans.Queued != 2 {
		t.Errorf("queued %d right away, want 2 (the non-web ports)", ans.Queued)
	}
	if ssh := h.waitVerdict("45.83.0.10"); ssh.Outcome != "clean" || len(ssh.Reasons) != 0 {
		t.Errorf("45.83.0.10 seen on port 22: %+v, want the report's clean verdict", ssh)
	}
	if v := h.waitVerdict("45.83.0.53"); v.Outcome != "suspicious" {
		t.Errorf("45.83.0.53: %+v", v)
	}
	if b := h.blocks(); len(b) != 0 {
		t.Errorf("an untagged host's connections blocked %+v; a proxy and a port reach tagged clients only", b)
	}

	ev := h.postEvent("10.9.9.9", T, "5m")
	results := map[string]string{}
	for _, f := range ev.Found {
		results[f.IP] = f.Result
	}
	if results["45.83.0.10"] != "cached" || results["45.83.0.53"] != "cached" || results["45.83.0.21"] != "queued" || results["45.83.0.31"] != "queued" || len(results) != 4 {
		t.Errorf("event found %v, want the web destinations queued too", results)
	}
	lines := h.execLines(4)
	slices.Sort(lines)
	want := []string{"block 45.83.0.10 ", "block 45.83.0.21 ", "block 45.83.0.31 ", "block 45.83.0.53 "}
	for i, w := range want {
		if len(lines) != len(want) || !strings.HasPrefix(lines[i], w) {
			t.Fatalf("exec hook ran %q, want blocks of 45.83.0.10, .21 (port 443), .31 (port 80) and .53", lines)
		}
	}
	for _, i := range []int{0, 3} {
		if !strings.HasSuffix(lines[i], " tagged 10.9.9.9") {
			t.Errorf("exec hook ran %q, want a pair block for 10.9.9.9 (a port, a proxy)", lines[i])
		}
	}
	if b := h.waitBlock("45.83.0.10", "10.9.9.9"); b.Scope != "tagged" || b.Port != 22 {
		t.Errorf("45.83.0.10 block %+v, want a tagged pair on port 22", b)
	}
	if n := h.fake.CallsFor("10.20.30.40"); n != 0 {
		t.Errorf("the private destination cost %d API calls", n)
	}
	if h.fake.Calls() != 4 {
		t.Errorf("%d API calls, want 4 (one per public destination)", h.fake.Calls())
	}
}

// `connlog` follows a firewall log: a connection to a critical port is
// validated at once; lines that are not records are counted and skipped.
func TestE2EConnlogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fw.log")
	if err := os.WriteFile(path, []byte("an old line before the server started\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, "connlog "+path+" netfilter\n        critical_ports 22")
	line := fmt.Sprintf("%s fw1 kernel: [1.0] OUT IN=eth1 OUT=eth0 SRC=10.9.9.9 DST=45.83.0.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=5 DPT=22 WINDOW=1 RES=0x00 SYN URGP=0\nnot a log line\n",
		e.clock.Now().UTC().Format(time.RFC3339))
	// The follower reads what is appended once it has the file open;
	// append until the verdict shows it read the line.
	deadline := time.Now().Add(15 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line)
		f.Close()
		var v verdictAnswer
		if e.api("GET", "/v1/verdicts/45.83.0.10", nil, &v) == http.StatusOK {
			if v.Outcome != "clean" {
				t.Errorf("verdict %+v, want the report's clean verdict (the port is not the IP's)", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connlog line was not validated within 15s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	now := e.clock.Now()
	s := e.owner().eng.State().Window().Sightings(netip.MustParseAddr("10.9.9.9"), now.Add(-time.Minute), now.Add(time.Minute))
	if len(s) != 1 || !slices.Equal(s[0].Ports, []uint16{22}) {
		t.Errorf("window %+v, want 45.83.0.10 on port 22", s)
	}
}
