package adminapi

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
)

// A SIEM's own fields are kept as labels, rendered as text and sanitised,
// and shown in the 202 answer's count, the report and the list.
func TestPostEventKeepsUnknownFieldsAsLabels(t *testing.T) {
	f := newFixture(t, nil)
	body := `{"client":"10.1.2.3","type":"edr.malware","severity":"Critical",
		"rule":"Beacon","score":87.5,"isolated":false,"gone":null,
		"mitre":{"tactic": "c2", "ids": [1, 2]},"note":"a\nforged [INFO] line\u202e"}`
	rec := f.do("POST", "/v1/events", body, "Content-Type", "application/json; charset=utf-8")
	wantStatus(t, rec, http.StatusAccepted)
	if got := decodeBody[Accepted](t, rec); got.LabelsDropped != 0 {
		t.Errorf("labels_dropped = %d, want 0", got.LabelsDropped)
	}
	want := map[string]string{"rule": "Beacon", "score": "87.5", "isolated": "false",
		"mitre": `{"tactic":"c2","ids":[1,2]}`, "note": `a\nforged [INFO] line\u202e`}
	report := decodeBody[eventReport](t, f.do("GET", "/v1/events/ev-000000000001", ""))
	if report.Event.Severity != "critical" || !maps.Equal(report.Event.Labels, want) {
		t.Errorf("report event = %+v,\nwant severity critical and labels %v", report.Event, want)
	}
	list := decodeBody[eventList](t, f.do("GET", "/v1/events", ""))
	if len(list.Events) != 1 || list.Events[0].Severity != "critical" {
		t.Errorf("list = %+v, want one event of severity critical", list.Events)
	}
}

// Beyond MaxLabels labels, or with a name over MaxLabelKey characters, a
// field is dropped and counted; a long value is cut, not dropped.
func TestLabelsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"client":"10.1.2.3","type":"x","Client":"10.9.9.9"`)
	for i := range MaxLabels + 3 {
		fmt.Fprintf(&b, `,"f%02d":%d`, i, i)
	}
	fmt.Fprintf(&b, `,"%s":1,"a_long":"%s","a_nested":[%s1]}`, strings.Repeat("k", MaxLabelKey+1),
		strings.Repeat("v", 300), strings.Repeat("1,", 200))
	ev, err := decodeEvent([]byte(b.String()), testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Labels["Client"]; ok {
		t.Error(`"Client" became a label; encoding/json takes it as client`)
	}
	if len(ev.Labels) != MaxLabels {
		t.Errorf("%d labels, want %d: %v", len(ev.Labels), MaxLabels, ev.Labels)
	}
	// In the order of their names: a_long, a_nested, f00…f13 are kept;
	// f14…f18 and the long name are dropped.
	if ev.LabelsDropped != 6 {
		t.Errorf("labels_dropped = %d, want 6", ev.LabelsDropped)
	}
	for _, k := range []string{"a_long", "a_nested"} {
		v := ev.Labels[k]
		if n := len([]rune(v)); n != MaxLabelValue || !strings.HasSuffix(v, "…") {
			t.Errorf("%s = %d characters ending %q, want %d ending in …", k, n, v[len(v)-5:], MaxLabelValue)
		}
	}
	if _, ok := ev.Labels["f13"]; !ok {
		t.Errorf("f13 missing from %v", ev.Labels)
	}
}

func TestSeverityForms(t *testing.T) {
	for raw, want := range map[string]string{
		`"low"`: "low", `"MEDIUM"`: "medium", `" High "`: "high", `"critical"`: "critical",
		`"informational"`: "info", `"Info"`: "info", `0`: "info", `0.1`: "low", `3.9`: "low",
		`4`: "medium", `"6.9"`: "medium", `7`: "high", `8.9`: "high", `9`: "critical", `10`: "critical",
		`null`: "",
	} {
		ev, err := decodeEvent([]byte(`{"client":"10.1.2.3","type":"x","severity":`+raw+`}`), testDefaults, testNow)
		if err != nil || ev.Severity != want {
			t.Errorf("severity %s = %q (%v), want %q", raw, ev.Severity, err, want)
		}
	}
}

func TestEventContentTypes(t *testing.T) {
	body := `{"client":"10.1.2.3","type":"x"}`
	for ct, want := range map[string]int{
		"application/json":                         http.StatusAccepted,
		"application/json; charset=utf-8":          http.StatusAccepted,
		"Application/JSON; charset=\"UTF-8\"":      http.StatusAccepted,
		"application/json; charset=utf-8; v=1":     http.StatusAccepted,
		"application/json;profile=ecs":             http.StatusAccepted,
		"text/plain; charset=utf-8":                http.StatusUnsupportedMediaType,
		"application/x-ndjson":                     http.StatusUnsupportedMediaType,
		"application/json; charset=utf-16":         http.StatusUnsupportedMediaType,
		"application/json; charset=utf-8; broken=": http.StatusUnsupportedMediaType,
	} {
		if rec := newFixture(t, nil).do("POST", "/v1/events", body, "Content-Type", ct); rec.Code != want {
			t.Errorf("Content-Type %q: %d, want %d: %s", ct, rec.Code, want, rec.Body)
		}
	}
}

// eventReport is what the tests read of GET /v1/events/{id}.
type eventReport struct {
	Event struct {
		Severity string            `json:"severity"`
		Labels   map[string]string `json:"labels"`
	} `json:"event"`
}

// Labels count towards the Store's byte bound, so events full of vendor
// fields cannot hold more memory than it allows.
func TestStoreCountsLabels(t *testing.T) {
	plain := Record{ID: "ev-1", Event: Event{Type: "x"}}
	labelled := plain
	labelled.Event.Labels = map[string]string{}
	for i := range MaxLabels {
		labelled.Event.Labels[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", MaxLabelValue)
	}
	if extra := recordSize(&labelled) - recordSize(&plain); extra < MaxLabels*MaxLabelValue {
		t.Errorf("16 labels of 256 bytes add %d bytes to the estimate, want at least %d", extra, MaxLabels*MaxLabelValue)
	}
}
