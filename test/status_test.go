package test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// statusView is what the test reads of GET /v1/status.
type statusView struct {
	API struct {
		State          string `json:"state"`
		LastError      string `json:"last_error"`
		Calls24h       int    `json:"calls_24h"`
		Errors24h      int    `json:"errors_24h"`
		QuotaErrors24h int    `json:"quota_errors_24h"`
	} `json:"api"`
	Decisions struct {
		Active         int `json:"active"`
		ActiveEveryone int `json:"active_everyone"`
	} `json:"decisions"`
	TaggedClients int `json:"tagged_clients"`
	Events24h     int `json:"events_24h"`
	State         struct {
		Writable bool `json:"writable"`
	} `json:"state"`
}

// The real server's GET /v1/status counts what happened: the API calls
// the fake API answered, the blocks, the tagged client and its event; and
// an API out of quota shows as such, without the key.
func TestStatusEndToEnd(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: url})
	srv.blockBoth()
	status := func() (statusView, string) {
		var st statusView
		raw := srv.call("GET", "/v1/status", nil, http.StatusOK, &st)
		return st, string(raw)
	}
	waitFor(t, "the status counting every API call", func() (bool, string) {
		st, raw := status()
		return st.API.State == "ok" && st.API.Calls24h == fake.Calls() && st.API.Errors24h == 0, raw
	})
	if st, raw := status(); st.Decisions.Active != 2 || st.Decisions.ActiveEveryone != 2 || st.TaggedClients != 1 || st.Events24h != 1 || !st.State.Writable {
		t.Errorf("status %s: want 2 active blocks for everyone, 1 tagged client, 1 event, a writable state", raw)
	}

	fake.Fault(fakeapi.Mode429, -1)
	// The tagged client connects to a new destination: it is validated at once.
	srv.call("POST", "/v1/connections", []map[string]any{{"src": taggedClient, "dst": "45.83.0.99", "dport": 8443}}, http.StatusOK, nil)
	waitFor(t, "the API out of quota", func() (bool, string) {
		st, raw := status()
		return st.API.State == "quota" && st.API.QuotaErrors24h >= 1, raw
	})
	if _, raw := status(); strings.Contains(raw, fakeapitest.Key) {
		t.Errorf("the status holds the API key: %s", raw)
	}
}
