package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

type batchAnswer struct {
	Accepted int `json:"accepted"`
	Refused  int `json:"refused"`
	Results  []struct {
		ID            string `json:"id"`
		Backtracked   int    `json:"backtracked"`
		LabelsDropped int    `json:"labels_dropped"`
		Error         string `json:"error"`
		Field         string `json:"field"`
	} `json:"results"`
}

// One bad event in a batch is refused on its own: the others are accepted,
// stored and answered in the order sent, all in one Durably.
func TestBatchMixed(t *testing.T) {
	_, bb := newBlockFixture(t)
	db := &durableBackend{blockBackend: bb}
	f := newFixture(t, func(c *Config) { c.Backend = db })
	body := `[
		{"client":"10.1.2.3","type":"edr.malware","severity":"high","host":"ws-1"},
		{"client":"10.1.2","type":"edr.malware"},
		{"client":"10.1.2.4","type":"phishing.click","at":"yesterday"},
		"not an event",
		{"client":"10.1.2.5","type":"x"}
	]`
	rec := f.do("POST", "/v1/events", body)
	wantStatus(t, rec, http.StatusAccepted)
	got := decodeBody[batchAnswer](t, rec)
	if got.Accepted != 2 || got.Refused != 3 || len(got.Results) != 5 {
		t.Fatalf("answer %s: want 2 accepted, 3 refused, 5 results", rec.Body)
	}
	wantField := []string{"", "client", "at", "body", ""}
	for i, r := range got.Results {
		accepted := wantField[i] == ""
		if r.Field != wantField[i] || (r.ID != "") != accepted || (r.Error == "") != accepted {
			t.Errorf("result %d = %+v, want field %q", i, r, wantField[i])
		}
	}
	if db.ops != 1 {
		t.Errorf("%d Durably calls, want 1 for the batch", db.ops)
	}
	if _, ok := f.store.Get(got.Results[4].ID); !ok || f.store.Len() != 2 {
		t.Errorf("store holds %d events, want the 2 accepted", f.store.Len())
	}
	report := decodeBody[eventReport](t, f.do("GET", "/v1/events/"+got.Results[0].ID, ""))
	if report.Event.Severity != "high" || report.Event.Labels["host"] != "ws-1" {
		t.Errorf("report of the first event: %+v", report.Event)
	}
}

func TestBatchRefused(t *testing.T) {
	event := `{"client":"10.1.2.3","type":"x"}`
	many := "[" + strings.Repeat(event+",", MaxBatch) + event + "]"
	tests := []struct {
		name, body string
		maxBody    int64
		status     int
		msg        string
	}{
		{name: "all bad", body: `[{"client":"x","type":"x"},{"type":"x"}]`, status: http.StatusBadRequest},
		{name: "empty", body: `[]`, status: http.StatusBadRequest, msg: "body: an empty batch"},
		{name: "malformed", body: `[{"client":"10.1.2.3"`, status: http.StatusBadRequest, msg: "body: malformed JSON"},
		{name: "trailing data", body: `[` + event + `] {}`, status: http.StatusBadRequest, msg: "body: malformed JSON"},
		{name: "too many events", body: many, status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("a batch of %d events, at most %d", MaxBatch+1, MaxBatch)},
		{name: "over the batch limit", body: "[" + event + strings.Repeat(" ", 2048) + "]", maxBody: 128, status: http.StatusRequestEntityTooLarge, msg: "(2048 for a batch)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.MaxBody = tt.maxBody })
			rec := f.do("POST", "/v1/events", tt.body)
			wantStatus(t, rec, tt.status)
			if !strings.Contains(rec.Body.String(), tt.msg) {
				t.Errorf("answer %s, want it to contain %q", rec.Body, tt.msg)
			}
			if n := len(f.backend.submissions()); n != 0 {
				t.Errorf("%d events reached the Backend", n)
			}
		})
	}
}

// A batch may be larger than one event's limit, but each of its events is
// held to that limit.
func TestBatchBodyLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBody = 128 })
	small := `{"client":"10.1.2.3","type":"x"}`
	big := `{"client":"10.1.2.4","type":"x","note":"` + strings.Repeat("n", 200) + `"}`
	rec := f.do("POST", "/v1/events", "["+strings.Repeat(small+",", 10)+big+"]")
	wantStatus(t, rec, http.StatusAccepted)
	got := decodeBody[batchAnswer](t, rec)
	if got.Accepted != 10 || got.Results[10].Field != "body" || !strings.Contains(got.Results[10].Error, "limit of 128 bytes") {
		t.Errorf("answer %s: want 10 accepted and the big one refused for its size", rec.Body)
	}
}

// A batch that cannot reach the disk is answered 503 as a whole.
func TestBatchNotDurable(t *testing.T) {
	_, bb := newBlockFixture(t)
	db := &durableBackend{blockBackend: bb, diskErr: errors.New("disk full")}
	f := newFixture(t, func(c *Config) { c.Backend = db })
	rec := f.do("POST", "/v1/events", `[{"client":"10.1.2.3","type":"x"},{"client":"10.1.2.4","type":"x"}]`)
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if !strings.Contains(rec.Body.String(), "disk full") {
		t.Errorf("answer %s, want the disk error", rec.Body)
	}
}
