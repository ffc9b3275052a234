package cipvalidate

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"

	"github.com/miekg/dns"
)

// eventStates returns the state of each IP GET /v1/events/{id} shows.
func (e *e2e) eventStates(id string) map[string]string {
	e.t.Helper()
	var detail struct {
		Found []struct {
			IP    string `json:"ip"`
			State string `json:"state"`
		} `json:"found"`
	}
	if code := e.api("GET", "/v1/events/"+id, nil, &detail); code != http.StatusOK {
		e.t.Fatalf("GET /v1/events/%s: %d", id, code)
	}
	states := map[string]string{}
	for _, f := range detail.Found {
		states[f.IP] = f.State
	}
	return states
}

// waitState polls the event report until ip shows want; it returns the
// states ip went through.
func (e *e2e) waitState(id, ip, want string) []string {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for {
		s := e.eventStates(id)[ip]
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		if s == want {
			return seen
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("event %s: %s went through %q, never %q", id, ip, seen, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The API fails (5xx) for the first 4 calls of an event's backtrack, as
// many as the client's own attempts: the window's Critical IP gets an
// error verdict, is retried with backoff without any new query from the
// client, and ends suspicious and blocked; the event report shows it
// validating, retrying, then suspicious.
func TestE2EEventRetriesFailedValidation(t *testing.T) {
	e := startE2E(t, "window 5m")
	T := e.clock.Now()
	e.clock.Set(T.Add(-2 * time.Minute))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.clock.Set(T)
	e.fake.Fault(fakeapi.Mode5xx, 4)
	e.fake.Fault(fakeapi.ModeSlow, 1) // the retry takes a while: its state can be seen

	ev := e.postEvent("127.0.0.2", T, "5m")
	if len(ev.Found) != 1 || ev.Found[0].IP != "45.83.0.21" {
		t.Fatalf("event found %+v, want 45.83.0.21", ev.Found)
	}
	seen := e.waitState(ev.ID, "45.83.0.21", "retrying (1)")
	seen = append(seen, e.waitState(ev.ID, "45.83.0.21", "suspicious")...)
	if seen[0] != "validating" && seen[0] != "retrying (1)" {
		t.Errorf("states %q, want validating first", seen)
	}
	if n := e.fake.CallsFor("45.83.0.21"); n != 5 {
		t.Errorf("%d API calls for 45.83.0.21, want 5 (4 failed, 1 retry)", n)
	}
	var blocks []struct {
		IP string `json:"ip"`
	}
	if code := e.api("GET", "/v1/blocks", nil, &blocks); code != http.StatusOK || len(blocks) != 1 || blocks[0].IP != "45.83.0.21" {
		t.Errorf("GET /v1/blocks: %d %+v, want 45.83.0.21 blocked", code, blocks)
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" || v.Decision == "" {
		t.Errorf("verdict %+v, want suspicious with a decision id", v)
	}
}

// While the API stays down, an event's IP is retried until the event's
// watch ends, then given up on: the report says so.
func TestE2EEventRetryGivesUp(t *testing.T) {
	e := startE2E(t, "window 5m")
	T := e.clock.Now()
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.fake.Fault(fakeapi.Mode5xx, -1)

	var ev eventAnswer
	if code := e.api("POST", "/v1/events", map[string]string{
		"client": "127.0.0.2", "type": "edr.malware", "at": T.Format(time.RFC3339Nano), "watch": "1m",
	}, &ev); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d", code)
	}
	e.waitState(ev.ID, "45.83.0.21", "retrying (1)")
	e.clock.Advance(2 * time.Minute) // past the watch
	e.waitState(ev.ID, "45.83.0.21", "error: gave up")
	if v, ok := e.owner().eng.API().Verdict(netip.MustParseAddr("45.83.0.21")); ok && v.Outcome != "error" {
		t.Errorf("verdict %+v, want none or an error", v)
	}
}
