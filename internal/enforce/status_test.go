package enforce_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

// waitStatus waits until ok holds for the engine's status, and returns it.
func waitStatus(t *testing.T, e *enforce.Engine, what string, ok func(adminapi.Status) bool) adminapi.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := e.API().Status()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: still not %s", s, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// GET /v1/status tells an API that fails from one that refuses for the
// quota, counts both in the last 24 hours, and forgets them after.
func TestStatusCountsAPIOutcomes(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	clock := testclock.New(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	e := enforce.New(t.Name(), enforce.Config{
		APIKey: fakeapitest.Key, APIURL: url, Policy: risk.DefaultPolicy(), Retain: 15 * time.Minute,
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 1, Max: time.Hour}, Now: clock.Now,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if s := e.API().Status(); s.API.State != adminapi.APIOK || s.API.Calls24h != 0 || s.API.LastErrorAt != nil {
		t.Fatalf("before any call: %+v, want ok and nothing counted", s.API)
	}
	client := netip.MustParseAddr("10.1.2.3")
	event := func(id string, ip netip.Addr) {
		e.State().Window().Record(client, "bad.example.", []netip.Addr{ip}, 0, clock.Now())
		e.API().Submit(adminapi.Event{Client: client, Type: "edr.malware", At: clock.Now(), Window: 5 * time.Minute}, id)
	}

	fake.Fault(fakeapi.Mode500, -1)
	event("ev-1", netip.MustParseAddr("45.83.0.21"))
	s := waitStatus(t, e, "failing", func(s adminapi.Status) bool { return s.API.State == adminapi.APIFailing })
	if s.API.Errors24h < 1 || s.API.QuotaErrors24h != 0 || s.API.LastErrorAt == nil || !strings.Contains(s.API.LastError, "http 500") {
		t.Errorf("API failing: %+v, want the error counted and shown, no quota error", s.API)
	}
	if strings.Contains(s.API.LastError, fakeapitest.Key) {
		t.Errorf("the last error %q holds the API key", s.API.LastError)
	}

	fake.ClearFaults()
	fake.Fault(fakeapi.Mode429, -1)
	event("ev-2", netip.MustParseAddr("45.83.0.22"))
	s = waitStatus(t, e, "out of quota", func(s adminapi.Status) bool { return s.API.State == adminapi.APIQuota })
	if s.API.QuotaErrors24h < 1 || s.API.Errors24h <= s.API.QuotaErrors24h || !strings.Contains(s.API.LastError, "http 429") {
		t.Errorf("API out of quota: %+v, want the 429 counted as a quota error among the errors", s.API)
	}

	fake.ClearFaults()
	event("ev-3", netip.MustParseAddr("45.83.0.23"))
	s = waitStatus(t, e, "ok again", func(s adminapi.Status) bool { return s.API.State == adminapi.APIOK })
	if s.API.LastError == "" || s.API.Calls24h <= s.API.Errors24h {
		t.Errorf("API back: %+v, want the last error kept and the successful calls counted", s.API)
	}
	// Every call the fake API saw, and only those, is counted.
	s = waitStatus(t, e, "counting every call", func(s adminapi.Status) bool { return s.API.Calls24h == fake.Calls() })

	clock.Advance(25 * time.Hour)
	if day := e.API().Status().API; day.Calls24h != 0 || day.Errors24h != 0 || day.QuotaErrors24h != 0 || day.LastError != s.API.LastError {
		t.Errorf("a day later: %+v, want nothing counted and the last error still shown", day)
	}
}

// GET /v1/status counts the active decisions by scope, and a hook whose
// receiver fails as failing, with its error and what it owes.
func TestStatusCountsDecisionsAndHooks(t *testing.T) {
	f := newFixture(t)
	e := f.startHooked(t.Name(), f.webhook("http://127.0.0.1:9/nothing-listens", "webhook dead"))
	defer e.Stop()
	for _, ip := range []string{"45.83.0.21", "45.83.0.22"} {
		v := f.suspicious(ip)
		e.Decide(v, validate.Job{IP: v.IP})
	}
	s := waitStatus(t, e, "failing hook", func(s adminapi.Status) bool { return len(s.Hooks) == 1 && s.Hooks[0].Failing })
	h := s.Hooks[0]
	if h.Pending != 2 || h.LastError == "" || h.LastErrorAt == nil {
		t.Errorf("hook %+v, want 2 changes pending and the error", h)
	}
	if d := s.Decisions; d.Active != 2 || d.ActiveEveryone != 2 || d.ActiveTagged != 0 || d.ActiveMonitor != 0 {
		t.Errorf("decisions %+v, want 2 active for everyone", d)
	}
	if !s.State.Configured || !s.State.Writable || s.Fleet.Configured {
		t.Errorf("state %+v fleet %+v, want a writable state directory and no fleet", s.State, s.Fleet)
	}
	if _, ok := e.API().Unblock(netip.MustParseAddr("45.83.0.21"), "alice", "fp"); !ok {
		t.Fatal("unblock failed")
	}
	if d := e.API().Status().Decisions; d.Active != 1 {
		t.Errorf("after a lift: %+v, want 1 active", d)
	}
}
