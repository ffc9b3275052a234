package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// siemAlert is an alert as a SIEM forwards it: the event's own fields, a
// severity in the SIEM's words, and the vendor's fields around them.
const siemAlert = `{
  "client": %q,
  "type": "edr.malware",
  "watch": "1h",
  "ref": "SIEM-4711",
  "severity": "High",
  "rule_name": "Cobalt Strike beacon",
  "host": "ws-042",
  "score": 87,
  "mitre": {"tactic": "command-and-control", "technique": "T1071"}
}`

// TestSIEMEventWithVendorFields posts a SIEM-like alert to the real binary
// with a charset in its Content-Type: it is accepted, backtracks what the
// client resolved, and its report and the audit log show the severity and
// the vendor's fields. A batch with one bad event takes the good one.
func TestSIEMEventWithVendorFields(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake})
	if got := answerA(t, queryA(t, srv.dnsAddr, taggedClient, badName)); !slices.Equal(got, []string{badIP}) {
		t.Fatalf("%s: A %v, want %s", badName, got, badIP)
	}

	status, raw := postRaw(t, srv, fmt.Sprintf(siemAlert, taggedClient))
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d, want 202: %s", status, raw)
	}
	var acc struct {
		ID    string `json:"id"`
		Found []struct {
			IP string `json:"ip"`
		} `json:"found"`
	}
	if err := json.Unmarshal(raw, &acc); err != nil || acc.ID == "" {
		t.Fatalf("202 answer %s: %v", raw, err)
	}
	if len(acc.Found) != 1 || acc.Found[0].IP != badIP {
		t.Errorf("found %+v, want %s (resolved before the alert)", acc.Found, badIP)
	}

	var report struct {
		Event struct {
			Ref      string            `json:"ref"`
			Severity string            `json:"severity"`
			Labels   map[string]string `json:"labels"`
		} `json:"event"`
	}
	srv.call("GET", "/v1/events/"+acc.ID, nil, http.StatusOK, &report)
	wantLabels := map[string]string{"rule_name": "Cobalt Strike beacon", "host": "ws-042", "score": "87",
		"mitre": `{"tactic":"command-and-control","technique":"T1071"}`}
	if report.Event.Severity != "high" || report.Event.Ref != "SIEM-4711" || !maps.Equal(report.Event.Labels, wantLabels) {
		t.Errorf("report event = %+v, want severity high, ref SIEM-4711, labels %v", report.Event, wantLabels)
	}

	waitFor(t, "the event's audit line with its labels", func() (bool, string) {
		for _, e := range srv.auditEntries() {
			if e.Kind == "event" && e.Event == acc.ID {
				return e.Detail == "type edr.malware severity high" && maps.Equal(e.Labels, wantLabels), fmt.Sprintf("%+v", e)
			}
		}
		return false, "no event line"
	})

	batch := fmt.Sprintf(`[%s, {"client": "10.0.0.999", "type": "edr.malware"}]`, fmt.Sprintf(siemAlert, "127.0.0.77"))
	status, raw = postRaw(t, srv, batch)
	var ans struct {
		Accepted, Refused int
		Results           []struct{ ID, Error, Field string }
	}
	if err := json.Unmarshal(raw, &ans); err != nil || status != http.StatusAccepted {
		t.Fatalf("POST a batch: %d %s (%v), want 202", status, raw, err)
	}
	if ans.Accepted != 1 || ans.Refused != 1 || len(ans.Results) != 2 || ans.Results[0].ID == "" || ans.Results[1].Field != "client" {
		t.Fatalf("batch answer %s: want the first accepted, the second refused naming client", raw)
	}
	srv.call("GET", "/v1/events/"+ans.Results[0].ID, nil, http.StatusOK, nil)
}

// postRaw posts body to /v1/events as a SIEM would, charset and all.
func postRaw(t *testing.T, srv *cipServer, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.api+"/v1/events", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	resp, err := srv.http.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/events: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}
