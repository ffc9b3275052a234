package fakeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// fixturesDir is the repository's copy of the Criminal IP fixtures, the set
// compiled into the fake (TestEmbeddedMatchesShared keeps it equal to
// ../shared/fixtures/criminalip).
const fixturesDir = "fixtures"

const (
	testKey = "test-key"
	cleanIP = "45.83.0.10" // clean.json
	// malformedIP is the IP written in malformed.json, which the manifest
	// does not give because the body does not parse.
	malformedIP = "45.83.0.90"
	// conditionTimeout bounds waits for something that must happen; it is
	// never reached unless the behaviour under test is broken.
	conditionTimeout = 10 * time.Second
)

type manifestEntry struct {
	IP         *string `json:"ip"`
	HTTPStatus []int   `json:"http_status"`
}

func readManifest(t *testing.T) map[string]manifestEntry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixturesDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Fixtures map[string]manifestEntry `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Fixtures
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(fixturesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func load(t *testing.T) *fakeapi.Server {
	t.Helper()
	s, err := fakeapi.Load(fixturesDir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// client does not keep connections alive: net/http silently retries a GET
// that fails on a reused connection, which would hide a hang-up and double
// the calls the fake counts.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func do(ctx context.Context, method, target, key string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return answer{}, err
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, body}, err
}

func reportURL(base, ip string) string {
	return base + fakeapi.ReportPath + "?ip=" + url.QueryEscape(ip) + "&full=true"
}

// report asks base about ip with the test key; it fails the test on a
// transport error.
func report(t *testing.T, base, ip string) answer {
	t.Helper()
	a, err := do(t.Context(), http.MethodGet, reportURL(base, ip), testKey)
	if err != nil {
		t.Fatalf("GET report for %s: %v", ip, err)
	}
	return a
}

func wantAnswer(t *testing.T, got answer, status int, body []byte) {
	t.Helper()
	if got.status != status || !bytes.Equal(got.body, body) {
		t.Errorf("got HTTP %d %q, want HTTP %d %q", got.status, got.body, status, body)
	}
}

func TestServesEveryManifestFixtureByteForByte(t *testing.T) {
	m := readManifest(t)
	base := fakeapitest.Serve(t, load(t))
	served := 0
	for _, name := range slices.Sorted(maps.Keys(m)) {
		entry := m[name]
		if entry.IP == nil {
			continue
		}
		served++
		t.Run(name, func(t *testing.T) {
			got := report(t, base, *entry.IP)
			wantAnswer(t, got, http.StatusOK, readFixture(t, name))
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}
	if served == 0 {
		t.Fatal("manifest gives no fixture an IP")
	}
}

func TestServesUnparseableFixtureForTheIPInItsText(t *testing.T) {
	base := fakeapitest.Serve(t, load(t))
	got := report(t, base, malformedIP)
	wantAnswer(t, got, http.StatusOK, readFixture(t, "malformed.json"))
	if json.Valid(got.body) {
		t.Error("malformed.json was served as valid JSON")
	}
}

func TestLoadWithoutManifestUsesTopLevelIP(t *testing.T) {
	m := readManifest(t)
	dir := t.TempDir()
	for name := range m {
		if err := os.WriteFile(filepath.Join(dir, name), readFixture(t, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := fakeapi.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Fixtures() != len(m) {
		t.Errorf("Fixtures() = %d, want %d", s.Fixtures(), len(m))
	}
	base := fakeapitest.Serve(t, s)
	for name, entry := range m {
		if entry.IP != nil {
			wantAnswer(t, report(t, base, *entry.IP), http.StatusOK, readFixture(t, name))
		}
	}
	wantAnswer(t, report(t, base, malformedIP), http.StatusOK, readFixture(t, "malformed.json"))
}

func TestFixturesCountsFixtureFiles(t *testing.T) {
	m := readManifest(t)
	if got := load(t).Fixtures(); got != len(m) {
		t.Errorf("Fixtures() = %d, want the %d files the manifest lists", got, len(m))
	}
}

func TestUnknownIPGetsSynthesizedCleanReport(t *testing.T) {
	var clean map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, "clean.json"), &clean); err != nil {
		t.Fatal(err)
	}
	base := fakeapitest.Serve(t, load(t))
	for _, ip := range []string{"45.83.200.7", "2a00:1450:4001:80b::200e"} {
		t.Run(ip, func(t *testing.T) {
			got := report(t, base, ip)
			if got.status != http.StatusOK {
				t.Fatalf("HTTP %d, want 200", got.status)
			}
			var r map[string]json.RawMessage
			if err := json.Unmarshal(got.body, &r); err != nil {
				t.Fatalf("body is not a JSON object: %v: %s", err, got.body)
			}
			if keys, want := slices.Sorted(maps.Keys(r)), slices.Sorted(maps.Keys(clean)); !slices.Equal(keys, want) {
				t.Errorf("keys %v, want those of clean.json %v", keys, want)
			}
			var head struct {
				IP     string          `json:"ip"`
				Issues map[string]bool `json:"issues"`
				Score  struct{ Inbound, Outbound string }
				Status int `json:"status"`
			}
			if err := json.Unmarshal(got.body, &head); err != nil {
				t.Fatal(err)
			}
			if head.IP != ip || head.Status != 200 || head.Score.Inbound != "Safe" || head.Score.Outbound != "Safe" {
				t.Errorf("ip %q status %d score %+v, want %q 200 Safe/Safe", head.IP, head.Status, head.Score, ip)
			}
			if len(head.Issues) != 10 || slices.Contains(slices.Collect(maps.Values(head.Issues)), true) {
				t.Errorf("issues %v, want ten flags all false", head.Issues)
			}
			for key, raw := range r {
				var block struct {
					Count *int             `json:"count"`
					Data  *json.RawMessage `json:"data"`
				}
				if json.Unmarshal(raw, &block) != nil || block.Count == nil {
					continue // not a {count, data} block
				}
				if *block.Count != 0 || block.Data == nil || string(*block.Data) != "[]" {
					t.Errorf("%s = %s, want {count:0, data:[]}", key, raw)
				}
			}
		})
	}
}

func TestUnknownNotFound(t *testing.T) {
	s := load(t)
	s.UnknownNotFound = true
	base := fakeapitest.Serve(t, s)
	wantAnswer(t, report(t, base, "45.83.200.7"), http.StatusNotFound, []byte(`{"message":"not found","status":404}`))
	wantAnswer(t, report(t, base, cleanIP), http.StatusOK, readFixture(t, "clean.json"))
}

func TestRequestChecks(t *testing.T) {
	s := load(t)
	s.Key = "right-key"
	base := fakeapitest.Serve(t, s)
	invalidKey := readFixture(t, "error_invalid_key.json")
	invalidIP := []byte(`{"message":"invalid ip","status":400}`)
	tests := []struct {
		name, method, target, key string
		status                    int
		body                      []byte
	}{
		{"right key", http.MethodGet, reportURL(base, cleanIP), "right-key", 200, readFixture(t, "clean.json")},
		{"no key", http.MethodGet, reportURL(base, cleanIP), "", 401, invalidKey},
		{"wrong key", http.MethodGet, reportURL(base, cleanIP), "wrong-key", 401, invalidKey},
		{"no ip", http.MethodGet, base + fakeapi.ReportPath + "?full=true", "right-key", 400, invalidIP},
		{"empty ip", http.MethodGet, reportURL(base, ""), "right-key", 400, invalidIP},
		{"not an ip", http.MethodGet, reportURL(base, "example.com"), "right-key", 400, invalidIP},
		{"POST", http.MethodPost, reportURL(base, cleanIP), "right-key", 405, []byte(`{"message":"method not allowed","status":405}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := do(t.Context(), tt.method, tt.target, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			wantAnswer(t, got, tt.status, tt.body)
		})
	}
}

func TestFaultModes(t *testing.T) {
	quota := readFixture(t, "error_quota.json")
	invalidKey := readFixture(t, "error_invalid_key.json")
	clean := readFixture(t, "clean.json")
	tests := []struct {
		mode  fakeapi.Mode
		check func(t *testing.T, got answer)
	}{
		{fakeapi.Mode429, func(t *testing.T, got answer) {
			wantAnswer(t, got, http.StatusTooManyRequests, quota)
			if ra := got.header.Get("Retry-After"); ra != "7" {
				t.Errorf("Retry-After = %q, want 7", ra)
			}
		}},
		{fakeapi.ModeQuota200, func(t *testing.T, got answer) { wantAnswer(t, got, http.StatusOK, quota) }},
		{fakeapi.Mode5xx, func(t *testing.T, got answer) {
			if got.status != http.StatusServiceUnavailable || json.Valid(got.body) || !bytes.Contains(got.body, []byte("503")) {
				t.Errorf("got HTTP %d %q, want 503 with a non-JSON page", got.status, got.body)
			}
		}},
		{fakeapi.Mode500, func(t *testing.T, got answer) {
			wantAnswer(t, got, http.StatusInternalServerError, []byte(`{"message":"internal error","status":500}`))
		}},
		{fakeapi.ModeMalformed, func(t *testing.T, got answer) {
			if got.status != http.StatusOK || len(got.body) == 0 || json.Valid(got.body) {
				t.Errorf("got HTTP %d %q, want 200 with truncated JSON", got.status, got.body)
			}
		}},
		{fakeapi.ModeBadKey, func(t *testing.T, got answer) { wantAnswer(t, got, http.StatusUnauthorized, invalidKey) }},
		{fakeapi.ModeBadKey200, func(t *testing.T, got answer) { wantAnswer(t, got, http.StatusOK, invalidKey) }},
		{fakeapi.ModeSlow, func(t *testing.T, got answer) { wantAnswer(t, got, http.StatusOK, clean) }},
		{fakeapi.ModeHuge, func(t *testing.T, got answer) {
			if got.status != http.StatusOK || len(got.body) <= 8<<20 || !json.Valid(got.body) {
				t.Errorf("got HTTP %d, %d bytes (valid JSON: %t), want 200 with valid JSON over 8 MiB",
					got.status, len(got.body), json.Valid(got.body))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			s := load(t)
			s.RetryAfter = 7
			s.SlowDelay = time.Millisecond
			base := fakeapitest.Serve(t, s)
			s.Fault(tt.mode, 1)
			tt.check(t, report(t, base, cleanIP))
			wantAnswer(t, report(t, base, cleanIP), http.StatusOK, clean)
			if s.Calls() != 2 {
				t.Errorf("Calls() = %d, want 2", s.Calls())
			}
		})
	}
}

func TestFaultHangup(t *testing.T) {
	s := load(t)
	base := fakeapitest.Serve(t, s)
	s.Fault(fakeapi.ModeHangup, 1)
	got, err := do(t.Context(), http.MethodGet, reportURL(base, cleanIP), testKey)
	if err == nil {
		t.Fatalf("got HTTP %d %q, want the connection closed without an answer", got.status, got.body)
	}
	wantAnswer(t, report(t, base, cleanIP), http.StatusOK, readFixture(t, "clean.json"))
	if s.Calls() != 2 {
		t.Errorf("Calls() = %d, want 2", s.Calls())
	}
}

func TestDelayedAnswerEndsWithClientContext(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, s *fakeapi.Server, base string)
	}{
		{"SetDelay", func(_ *testing.T, s *fakeapi.Server, _ string) { s.SetDelay(time.Hour) }},
		{"ModeSlow", func(_ *testing.T, s *fakeapi.Server, _ string) {
			s.SlowDelay = time.Hour
			s.Fault(fakeapi.ModeSlow, 1)
		}},
		{"admin delay", func(t *testing.T, _ *fakeapi.Server, base string) {
			adminPost(t, base, "/_fake/delay?d=1h", http.StatusNoContent)
		}},
		{"admin fault delay", func(t *testing.T, _ *fakeapi.Server, base string) {
			adminPost(t, base, "/_fake/fault?mode=500&delay=1h", http.StatusNoContent)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := load(t)
			entered := make(chan struct{}, 1)
			finished := make(chan struct{}, 1)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				isReport := r.URL.Path == fakeapi.ReportPath
				if isReport {
					entered <- struct{}{}
				}
				s.Handler().ServeHTTP(w, r)
				if isReport {
					finished <- struct{}{}
				}
			}))
			defer ts.Close()
			tt.setup(t, s, ts.URL)

			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() {
				_, err := do(ctx, http.MethodGet, reportURL(ts.URL, cleanIP), testKey)
				errc <- err
			}()
			awaitSignal(t, entered, "the request to reach the handler")
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error %v, want context.Canceled", err)
			}
			awaitSignal(t, finished, "the handler to return after the client gave up")
		})
	}
}

func awaitSignal(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(conditionTimeout):
		t.Fatalf("gave up waiting for %s", what)
	}
}

// awaitCondition polls cond until it holds, failing the test if it does not
// within conditionTimeout.
func awaitCondition(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(conditionTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		<-tick.C
	}
}

func TestFaultQueueIsFIFO(t *testing.T) {
	s := load(t)
	base := fakeapitest.Serve(t, s)
	s.Fault(fakeapi.Mode429, 2)
	s.Fault(fakeapi.Mode500, 1)
	s.Fault(fakeapi.ModeBadKey, 1)
	var got []int
	for range 5 {
		got = append(got, report(t, base, cleanIP).status)
	}
	if want := []int{429, 429, 500, 401, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}

	s.Fault(fakeapi.Mode5xx, -1)
	s.Fault(fakeapi.Mode500, 1)
	for range 3 {
		if st := report(t, base, cleanIP).status; st != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d while an until-cleared 5xx fault is queued, want 503", st)
		}
	}
	s.ClearFaults()
	if st := report(t, base, cleanIP).status; st != http.StatusOK {
		t.Errorf("HTTP %d after ClearFaults, want 200", st)
	}
}

func TestCounters(t *testing.T) {
	s := load(t)
	base := fakeapitest.Serve(t, s)
	report(t, base, cleanIP)
	report(t, base, cleanIP)
	s.Fault(fakeapi.Mode500, 1)
	report(t, base, cleanIP)
	report(t, base, "2a00:1450:4001:080b:0:0:0:200e")
	if _, err := do(t.Context(), http.MethodGet, reportURL(base, "not-an-ip"), testKey); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); got != 5 {
		t.Errorf("Calls() = %d, want 5", got)
	}
	if got := s.CallsFor(cleanIP); got != 3 {
		t.Errorf("CallsFor(%s) = %d, want 3 (one of them faulted)", cleanIP, got)
	}
	if got := s.CallsFor("2a00:1450:4001:80b::200e"); got != 1 {
		t.Errorf("CallsFor(IPv6 written another way) = %d, want 1", got)
	}
	if !s.SawKey() {
		t.Error("SawKey() = false after requests with a key")
	}
	if _, err := do(t.Context(), http.MethodGet, reportURL(base, cleanIP), ""); err != nil {
		t.Fatal(err)
	}
	if s.SawKey() {
		t.Error("SawKey() = true after a request without a key")
	}

	s.Reset()
	if s.Calls() != 0 || s.CallsFor(cleanIP) != 0 {
		t.Errorf("after Reset: Calls() = %d, CallsFor = %d, want 0, 0", s.Calls(), s.CallsFor(cleanIP))
	}
}

func TestFaultKnobsAreSafeUnderConcurrentRequests(t *testing.T) {
	s := load(t)
	base := fakeapitest.Serve(t, s)
	const workers, perWorker = 8, 25
	allowed := []int{http.StatusOK, http.StatusTooManyRequests, http.StatusInternalServerError}
	done := make(chan struct{})
	var knobs sync.WaitGroup
	knobs.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			s.Fault(fakeapi.Mode429, 2)
			s.Fault(fakeapi.Mode500, -1)
			s.SetDelay(0)
			s.ClearFaults()
			s.SawKey()
			s.CallsFor(cleanIP)
		}
	})
	var requests sync.WaitGroup
	for w := range workers {
		requests.Go(func() {
			for i := range perWorker {
				ip := fmt.Sprintf("45.83.%d.%d", 100+w, i)
				got, err := do(t.Context(), http.MethodGet, reportURL(base, ip), testKey)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Contains(allowed, got.status) {
					t.Errorf("HTTP %d, want one of %v", got.status, allowed)
				}
			}
		})
	}
	requests.Wait()
	close(done)
	knobs.Wait()
	if got := s.Calls(); got != workers*perWorker {
		t.Errorf("Calls() = %d, want %d", got, workers*perWorker)
	}
}

func adminPost(t *testing.T, base, path string, status int) answer {
	t.Helper()
	got, err := do(t.Context(), http.MethodPost, base+path, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.status != status {
		t.Fatalf("POST %s: HTTP %d %q, want %d", path, got.status, got.body, status)
	}
	return got
}

type stats struct {
	Calls int            `json:"calls"`
	ByIP  map[string]int `json:"by_ip"`
}

func getStats(t *testing.T, base string) stats {
	t.Helper()
	got, err := do(t.Context(), http.MethodGet, base+"/_fake/stats", "")
	if err != nil {
		t.Fatal(err)
	}
	var st stats
	if err := json.Unmarshal(got.body, &st); got.status != http.StatusOK || err != nil {
		t.Fatalf("GET /_fake/stats: HTTP %d %q (%v)", got.status, got.body, err)
	}
	return st
}

func TestAdminEndpoints(t *testing.T) {
	base := fakeapitest.Serve(t, load(t))

	adminPost(t, base, "/_fake/fault?mode=429&count=2&retry_after=3", http.StatusNoContent)
	for range 2 {
		got := report(t, base, cleanIP)
		if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") != "3" {
			t.Errorf("HTTP %d Retry-After %q, want 429 with Retry-After 3", got.status, got.header.Get("Retry-After"))
		}
	}
	if st := report(t, base, cleanIP).status; st != http.StatusOK {
		t.Errorf("HTTP %d once the faults are used up, want 200", st)
	}

	adminPost(t, base, "/_fake/fault?mode=500&count=-1", http.StatusNoContent)
	report(t, base, cleanIP)
	adminPost(t, base, "/_fake/clear", http.StatusNoContent)
	if st := report(t, base, cleanIP).status; st != http.StatusOK {
		t.Errorf("HTTP %d after /_fake/clear, want 200", st)
	}

	report(t, base, "45.83.200.7")
	st := getStats(t, base)
	if want := (stats{6, map[string]int{cleanIP: 5, "45.83.200.7": 1}}); st.Calls != want.Calls || !maps.Equal(st.ByIP, want.ByIP) {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	adminPost(t, base, "/_fake/reset", http.StatusNoContent)
	if st := getStats(t, base); st.Calls != 0 || len(st.ByIP) != 0 {
		t.Errorf("stats after reset %+v, want none", st)
	}

	adminPost(t, base, "/_fake/delay?d=0s", http.StatusNoContent)
	if st := report(t, base, cleanIP).status; st != http.StatusOK {
		t.Errorf("HTTP %d with delay 0, want 200", st)
	}
}

func TestAdminRejectsBadParameters(t *testing.T) {
	base := fakeapitest.Serve(t, load(t))
	tests := []struct{ path, param string }{
		{"/_fake/fault", "mode"},
		{"/_fake/fault?mode=teapot", "mode"},
		{"/_fake/fault?mode=429&count=0", "count"},
		{"/_fake/fault?mode=429&count=-2", "count"},
		{"/_fake/fault?mode=429&count=two", "count"},
		{"/_fake/fault?mode=429&retry_after=-1", "retry_after"},
		{"/_fake/fault?mode=slow&delay=soon", "delay"},
		{"/_fake/delay", "d"},
		{"/_fake/delay?d=-1s", "d"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got := adminPost(t, base, tt.path, http.StatusBadRequest)
			var body struct{ Message string }
			if err := json.Unmarshal(got.body, &body); err != nil || !strings.HasPrefix(body.Message, "parameter "+tt.param+":") {
				t.Errorf("body %q does not name parameter %s", got.body, tt.param)
			}
		})
	}
	if st := report(t, base, cleanIP).status; st != http.StatusOK {
		t.Errorf("HTTP %d after rejected admin calls, want 200 (nothing queued)", st)
	}
}

func TestBuiltInErrorBodiesWithoutErrorFixtures(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "only.json"), []byte(`{"ip":"45.83.0.10","status":200}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := fakeapi.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := fakeapitest.Serve(t, s)
	s.Fault(fakeapi.ModeQuota200, 1)
	wantAnswer(t, report(t, base, cleanIP), http.StatusOK, []byte(`{"message":"limit exceeded","status":429}`))
	s.Fault(fakeapi.ModeBadKey, 1)
	wantAnswer(t, report(t, base, cleanIP), http.StatusUnauthorized, []byte(`{"message":"invalid api key","status":401}`))
}

func TestLoadErrorsNameTheFileAndReason(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"empty dir", nil, []string{"no *.json fixtures"}},
		{"duplicate IP", map[string]string{
			"a.json": `{"ip":"45.83.0.1"}`,
			"b.json": `{"ip":"45.83.0.1"}`,
		}, []string{"a.json", "b.json", "45.83.0.1"}},
		{"bad top-level ip", map[string]string{"a.json": `{"ip":"nope"}`}, []string{"a.json", `"nope"`, "not an IP"}},
		{"ip not a string", map[string]string{"a.json": `{"ip":42}`}, []string{"a.json", "not a string"}},
		{"bad ip in unparseable body", map[string]string{"a.json": `{"ip":"nope", "trunc`}, []string{"a.json", "not valid JSON", `"nope"`}},
		{"manifest not JSON", map[string]string{"manifest.json": `{`, "a.json": `{}`}, []string{"manifest.json"}},
		{"manifest lists missing file", map[string]string{
			"manifest.json": `{"fixtures":{"gone.json":{"ip":"45.83.0.1"}}}`,
			"a.json":        `{}`,
		}, []string{"gone.json", "not a fixture file"}},
		{"manifest gives bad ip", map[string]string{
			"manifest.json": `{"fixtures":{"a.json":{"ip":"45.83.0"}}}`,
			"a.json":        `{}`,
		}, []string{"a.json", "manifest.json", `"45.83.0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := fakeapi.Load(dir)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "absent")
		if _, err := fakeapi.Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("error %v, want one naming %s", err, dir)
		}
	})
}

func TestStartServesOnARealPortUntilStopped(t *testing.T) {
	s := load(t)
	base, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Port() == "" || u.Port() == "0" {
		t.Fatalf("base URL %q, want http://127.0.0.1:PORT with a real port", base)
	}
	report(t, base, cleanIP)
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if got, err := do(t.Context(), http.MethodGet, reportURL(base, cleanIP), testKey); err == nil {
		t.Errorf("HTTP %d after stop, want a connection error", got.status)
	}
}

func TestStopEndsDelayedAnswers(t *testing.T) {
	s := load(t)
	s.SetDelay(time.Hour)
	base, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := do(t.Context(), http.MethodGet, reportURL(base, cleanIP), testKey)
		errc <- err
	}()
	awaitCondition(t, func() bool { return s.Calls() == 1 }, "the delayed request to reach the server")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	case <-time.After(conditionTimeout):
		t.Fatal("stop did not return while an answer was delayed by an hour")
	}
	if err := <-errc; err == nil {
		t.Error("the delayed request got an answer, want the connection closed")
	}
}

// A connection that never sends a request (a client transport's spare) does
// not hold up stop.
func TestStopClosesUnusedConnections(t *testing.T) {
	s := load(t)
	base, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	report(t, base, cleanIP) // the server has accepted conn by now
	if err := stop(); err != nil {
		t.Errorf("stop with an unused connection open: %v", err)
	}
}

func TestParseModeRoundTrips(t *testing.T) {
	for m := fakeapi.Mode429; m <= fakeapi.ModeHangup; m++ {
		got, err := fakeapi.ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := fakeapi.ParseMode("teapot"); err == nil {
		t.Error(`ParseMode("teapot") succeeded`)
	}
}
