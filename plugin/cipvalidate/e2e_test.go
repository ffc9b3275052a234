package cipvalidate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/testclock"

	"github.com/coredns/caddy"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/file"
	"github.com/miekg/dns"
)

// The zone the test server answers from. Public-looking IPs are the
// fixtures' (their verdicts are in the manifest); the rest must never reach
// the API.
const e2eZone = `$ORIGIN example.org.
@        3600 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
         3600 IN NS  ns.example.org.
ns       3600 IN A   127.0.0.53
clean    300  IN A   45.83.0.10
bad      300  IN A   45.83.0.21
tor      300  IN A   45.83.0.52
proxy    300  IN A   45.83.0.53
multi    300  IN A   45.83.0.71
old      300  IN A   45.83.0.41
alias    300  IN CNAME bad.example.org.
private  300  IN A   10.0.0.5
docnet   300  IN A   192.0.2.10
allowed  300  IN A   45.83.0.22
safe     300  IN A   45.83.0.31
ssh      300  IN A   45.83.0.61
cdn      300  IN A   45.83.0.90
site2    300  IN A   45.83.0.90
v6       300  IN AAAA 2a0c:9a40:1::21
`

// e2e is one test's world: a fake Criminal IP API, a CoreDNS server with
// cipvalidate in front of cache and file, and a clock the test moves.
type e2e struct {
	t        *testing.T
	fake     *fakeapi.Server
	inst     *caddy.Instance
	dnsAddr  string
	apiBase  string // event API
	token    string
	corefile string
	clock    *testclock.Clock
}

// startE2E starts everything; extra is added to the cipvalidate block.
func startE2E(t *testing.T, extra string) *e2e {
	t.Helper()
	return startE2EZone(t, e2eZone, extra)
}

// startE2EZone is startE2E with zone as the example.org zone.
func startE2EZone(t *testing.T, zone, extra string) *e2e {
	t.Helper()
	return startE2EServer(t, zone, "", extra)
}

// startE2EServer is startE2EZone with server added to the server block.
func startE2EServer(t *testing.T, zone, server, extra string) *e2e {
	t.Helper()
	RegisterDirective()
	fake, apiURL := fakeapitest.Start(t, fakeapitest.WithKey("e2e-key"))
	clock := testclock.New(time.Now())

	dir := t.TempDir()
	db := filepath.Join(dir, "db.example.org")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(db, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIP_E2E_KEY", "e2e-key")
	corefile := fmt.Sprintf(`.:0 {
%s
    cipvalidate {
        api_key {$CIP_E2E_KEY}
        api_url %s
        events 127.0.0.1:0 token_file %s
        allow 45.83.0.22 safe.example.org
        workers 2
%s
    }
    cache
    file %s example.org
}
`, server, apiURL, tokenFile, extra, db)
	inst, udp, _ := coretest.Start(t, corefile)
	e := &e2e{t: t, fake: fake, inst: inst, dnsAddr: udp, token: "e2e-token", corefile: corefile, clock: clock}
	e.owner().eng.SetClock(clock.Now)
	e.apiBase = "http://" + e.owner().api.Addr()
	return e
}

// owner is the plugin instance now serving.
func (e *e2e) owner() *CIPValidate {
	var found *CIPValidate
	instances.Range(func(_, v any) bool {
		found = v.(*CIPValidate)
		return false
	})
	if found == nil {
		e.t.Fatal("no cipvalidate instance is running")
	}
	return found
}

// query sends a real DNS query over UDP from the loopback address from
// (127.0.0.x: each is a different client), with EDNS0.
func (e *e2e) query(from, name string, qtype uint16) *dns.Msg {
	e.t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	r, _, err := c.Exchange(m, e.dnsAddr)
	if err != nil {
		e.t.Fatalf("query %s %s from %s: %v", name, dns.TypeToString[qtype], from, err)
	}
	return r
}

// api calls the event API and decodes the JSON answer into out.
func (e *e2e) api(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.apiBase+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

type eventAnswer struct {
	ID          string `json:"id"`
	Backtracked int    `json:"backtracked"`
	Queued      int    `json:"queued"`
	Cached      int    `json:"cached"`
	Found       []struct {
		IP     string `json:"ip"`
		Result string `json:"result"`
	} `json:"found"`
}

func (e *e2e) postEvent(client string, at time.Time, window string) eventAnswer {
	e.t.Helper()
	var ans eventAnswer
	code := e.api("POST", "/v1/events", map[string]string{
		"client": client, "type": "edr.malware", "at": at.Format(time.RFC3339Nano), "window": window, "ref": "SIEM-1",
	}, &ans)
	if code != http.StatusAccepted {
		e.t.Fatalf("POST /v1/events: status %d (%+v)", code, ans)
	}
	return ans
}

type verdictAnswer struct {
	IP       string `json:"ip"`
	Outcome  string `json:"outcome"`
	Decision string `json:"decision"`
	Error    string `json:"error"`
	Reasons  []struct {
		Factor string `json:"factor"`
	} `json:"reasons"`
}

// waitVerdict polls GET /v1/verdicts/{ip} until a verdict is there.
func (e *e2e) waitVerdict(ip string) verdictAnswer {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var v verdictAnswer
		if e.api("GET", "/v1/verdicts/"+ip, nil, &v) == http.StatusOK {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no verdict for %s after 15s", ip)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func answerIPs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func edeOf(r *dns.Msg) *dns.EDNS0_EDE {
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				return ede
			}
		}
	}
	return nil
}

// (a) An untagged client resolving a suspicious IP costs no API call, and
// its answer passes unchanged.
func TestE2EUntaggedNoAPICall(t *testing.T) {
	e := startE2E(t, "")
	for _, name := range []string{"bad.example.org", "multi.example.org", "tor.example.org", "alias.example.org"} {
		r := e.query("127.0.0.2", name, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(answerIPs(r)) == 0 {
			t.Errorf("%s: %v", name, r)
		}
	}
	if e.fake.Calls() != 0 {
		t.Errorf("untagged client cost %d API calls, want 0", e.fake.Calls())
	}
}

// (b) An event at T with window 5m validates exactly the public IPs the
// client resolved in [T-5m, T]: not older ones, not private, documentation
// or allowlisted ones, not another client's.
func TestE2EEventBacktracksWindow(t *testing.T) {
	e := startE2E(t, "window 5m")
	T := time.Now()
	e.clock.Set(T.Add(-10 * time.Minute))
	e.query("127.0.0.2", "old.example.org", dns.TypeA) // outside the window
	e.clock.Set(T.Add(-4 * time.Minute))
	for _, name := range []string{"bad.example.org", "clean.example.org", "private.example.org", "docnet.example.org", "allowed.example.org", "safe.example.org"} {
		e.query("127.0.0.2", name, dns.TypeA)
	}
	e.query("127.0.0.2", "v6.example.org", dns.TypeAAAA)
	e.query("127.0.0.3", "tor.example.org", dns.TypeA) // another client
	e.clock.Set(T.Add(-1 * time.Minute))
	e.query("127.0.0.2", "alias.example.org", dns.TypeA) // CNAME to bad: same IP again
	e.clock.Set(T)
	if e.fake.Calls() != 0 {
		t.Fatalf("%d API calls before the event", e.fake.Calls())
	}

	ans := e.postEvent("127.0.0.2", T, "5m")
	want := []string{"2a0c:9a40:1::21", "45.83.0.10", "45.83.0.21"}
	var got []string
	for _, f := range ans.Found {
		got = append(got, f.IP)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || ans.Backtracked != 3 {
		t.Fatalf("event found %v (backtracked %d), want exactly %v", got, ans.Backtracked, want)
	}
	for _, ip := range want {
		e.waitVerdict(ip)
	}
	calls := map[string]int{}
	for _, ip := range []string{"45.83.0.41", "45.83.0.52", "10.0.0.5", "192.0.2.10", "45.83.0.22", "45.83.0.31"} {
		calls[ip] = e.fake.CallsFor(ip)
	}
	for ip, n := range calls {
		if n != 0 {
			t.Errorf("%s was validated (%d calls); it is outside the window, another client's, non-public or allowlisted", ip, n)
		}
	}
	if e.fake.Calls() != len(want) {
		t.Errorf("%d API calls, want %d (one per IP in the window)", e.fake.Calls(), len(want))
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" || v.Decision == "" {
		t.Errorf("verdict for 45.83.0.21 = %+v, want suspicious with a decision id", v)
	}
	var detail struct {
		Found []struct {
			IP      string         `json:"ip"`
			Verdict *verdictAnswer `json:"verdict"`
		} `json:"found"`
	}
	if code := e.api("GET", "/v1/events/"+ans.ID, nil, &detail); code != http.StatusOK || len(detail.Found) != 3 {
		t.Errorf("GET /v1/events/%s: %d %+v", ans.ID, code, detail)
	}
}

// (c) After the verdicts, a tagged client's query for a name pointing at a
// suspicious IP is rewritten per `action`, with the EDE; a clean one passes
// unchanged; the name is remembered for other record types.
func TestE2EEnforcement(t *testing.T) {
	tests := []struct {
		action string
		rcode  int
		answer []string
	}{
		{"sinkhole", dns.RcodeSuccess, []string{"0.0.0.0"}},
		{"sinkhole 192.0.2.66 2001:db8::66", dns.RcodeSuccess, []string{"192.0.2.66"}},
		{"refuse", dns.RcodeRefused, nil},
		{"nxdomain", dns.RcodeNameError, nil},
		{"nodata", dns.RcodeSuccess, nil},
	}
	for _, tc := range tests {
		t.Run(tc.action, func(t *testing.T) {
			e := startE2E(t, "action "+tc.action)
			e.query("127.0.0.2", "bad.example.org", dns.TypeA)
			e.query("127.0.0.2", "clean.example.org", dns.TypeA)
			e.postEvent("127.0.0.2", e.clock.Now(), "5m")
			v := e.waitVerdict("45.83.0.21")
			e.waitVerdict("45.83.0.10")

			r := e.query("127.0.0.2", "bad.example.org", dns.TypeA)
			if r.Rcode != tc.rcode || !slices.Equal(answerIPs(r), tc.answer) {
				t.Fatalf("bad.example.org: rcode %s answer %v, want %s %v", dns.RcodeToString[r.Rcode], answerIPs(r), dns.RcodeToString[tc.rcode], tc.answer)
			}
			for _, rr := range r.Answer {
				if rr.Header().Ttl > defaultRewriteTTL {
					t.Errorf("rewritten TTL %d, want <= %d", rr.Header().Ttl, defaultRewriteTTL)
				}
			}
			ede := edeOf(r)
			if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked ||
				!strings.Contains(ede.ExtraText, "45.83.0.21") || !strings.Contains(ede.ExtraText, "SCORE") || !strings.Contains(ede.ExtraText, v.Decision) {
				t.Errorf("EDE = %+v, want Blocked naming 45.83.0.21, SCORE and decision %s", ede, v.Decision)
			}
			// Through the CNAME chain too.
			if r := e.query("127.0.0.2", "alias.example.org", dns.TypeA); r.Rcode != tc.rcode || !slices.Equal(answerIPs(r), tc.answer) {
				t.Errorf("alias.example.org (CNAME to bad): rcode %s answer %v", dns.RcodeToString[r.Rcode], answerIPs(r))
			}
			// Another record type of the remembered name.
			if r := e.query("127.0.0.2", "bad.example.org", dns.TypeMX); edeOf(r) == nil {
				t.Errorf("MX of a remembered bad name not handled: %v", r)
			}
			// With `enforce all` (the default) an untagged client is protected too.
			if r := e.query("127.0.0.9", "bad.example.org", dns.TypeA); r.Rcode != tc.rcode || edeOf(r) == nil {
				t.Errorf("untagged client under enforce all: %v", r)
			}
			r = e.query("127.0.0.2", "clean.example.org", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || !slices.Equal(answerIPs(r), []string{"45.83.0.10"}) || edeOf(r) != nil {
				t.Errorf("clean.example.org changed: %v", r)
			}
		})
	}
}

// `enforce tagged` leaves untagged clients' answers alone.
func TestE2EEnforceTagged(t *testing.T) {
	e := startE2E(t, "enforce tagged")
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	e.waitVerdict("45.83.0.21")
	if r := e.query("127.0.0.9", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.21"}) {
		t.Errorf("untagged client rewritten under enforce tagged: %v", r)
	}
	if r := e.query("127.0.0.2", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("tagged client not sinkholed: %v", r)
	}
}

// (d) `mode monitor` decides but rewrites nothing.
func TestE2EMonitor(t *testing.T) {
	e := startE2E(t, "mode monitor")
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict %+v", v)
	}
	r := e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	if !slices.Equal(answerIPs(r), []string{"45.83.0.21"}) || edeOf(r) != nil {
		t.Errorf("monitor mode rewrote the answer: %v", r)
	}
}

// (e) `pending wait 500ms`: a tagged client's first query for a suspicious
// IP waits for the verdict (the API answers in 100ms) and is rewritten.
// With `pending allow` (the default) that first answer passes, and the
// next one, after the verdict, is rewritten.
func TestE2EPending(t *testing.T) {
	for _, tc := range []struct {
		extra string
		first []string
	}{
		{"pending wait 500ms", []string{"0.0.0.0"}},
		{"pending allow", []string{"45.83.0.71"}},
	} {
		t.Run(strings.ReplaceAll(tc.extra, " ", "_"), func(t *testing.T) {
			e := startE2E(t, tc.extra)
			e.fake.SetDelay(100 * time.Millisecond)
			e.postEvent("127.0.0.2", e.clock.Now(), "5m") // tags the client; nothing to backtrack
			r := e.query("127.0.0.2", "multi.example.org", dns.TypeA)
			if !slices.Equal(answerIPs(r), tc.first) {
				t.Fatalf("first query of a tagged client: %v, want %v", r, tc.first)
			}
			e.waitVerdict("45.83.0.71")
			if r := e.query("127.0.0.2", "multi.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
				t.Errorf("after the verdict: %v, want the sinkholed answer", r)
			}
		})
	}
}

// (f) API down: `fail open` lets answers flow; `fail closed` refuses a
// tagged client's answer whose IPs could not be validated.
func TestE2EFailOpenClosed(t *testing.T) {
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			e := startE2E(t, "fail "+mode)
			e.fake.Fault(fakeapi.Mode5xx, -1)
			e.postEvent("127.0.0.2", e.clock.Now(), "5m")
			e.query("127.0.0.2", "clean.example.org", dns.TypeA) // queued; the API fails
			if v := e.waitVerdict("45.83.0.10"); v.Outcome != "error" || v.Error != "transient" {
				t.Fatalf("verdict %+v, want a transient error (not clean)", v)
			}
			r := e.query("127.0.0.2", "clean.example.org", dns.TypeA)
			if mode == "open" {
				if r.Rcode != dns.RcodeSuccess || !slices.Equal(answerIPs(r), []string{"45.83.0.10"}) {
					t.Errorf("fail open: %v, want the answer unchanged", r)
				}
				return
			}
			if r.Rcode != dns.RcodeRefused || edeOf(r) == nil {
				t.Errorf("fail closed: %v, want REFUSED with an EDE", r)
			}
			// Untagged clients are never refused for an unvalidated IP.
			if r := e.query("127.0.0.9", "clean.example.org", dns.TypeA); r.Rcode != dns.RcodeSuccess {
				t.Errorf("fail closed refused an untagged client: %v", r)
			}
		})
	}
}

// (g) A reload keeps tags and verdicts, reopens the event API, and leaks no
// goroutines once the server stops.
func TestE2EReload(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Run("reload", func(t *testing.T) {
		e := startE2E(t, "")
		e.query("127.0.0.2", "bad.example.org", dns.TypeA)
		e.postEvent("127.0.0.2", e.clock.Now(), "5m")
		e.waitVerdict("45.83.0.21")
		calls := e.fake.Calls()

		for i := range 3 {
			e.inst = coretest.Reload(t, e.inst, strings.Replace(e.corefile, "workers 2", fmt.Sprintf("workers %d", i+1), 1))
			e.apiBase = "http://" + e.owner().api.Addr()
		}
		var body struct {
			Clients []struct {
				Client string `json:"client"`
			} `json:"clients"`
		}
		code := e.api("GET", "/v1/clients", nil, &body)
		if clients := body.Clients; code != http.StatusOK || len(clients) != 1 || clients[0].Client != "127.0.0.2" {
			t.Errorf("after reload, clients = %d %+v, want 127.0.0.2 still tagged", code, clients)
		}
		if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
			t.Errorf("after reload, verdict %+v", v)
		}
		if r := e.query("127.0.0.2", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
			t.Errorf("after reload, not sinkholed: %v", r)
		}
		if e.fake.Calls() != calls {
			t.Errorf("reload cost %d more API calls", e.fake.Calls()-calls)
		}
	})
	// Everything the subtest started is stopped by its cleanups now.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after stop, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left := enforce.Held(); left != 0 {
		t.Errorf("%d shared states left after the last shutdown", left)
	}
}

// The event API refuses requests without the token.
func TestE2EEventAuth(t *testing.T) {
	e := startE2E(t, "")
	e.token = "wrong"
	if code := e.api("GET", "/v1/clients", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", code)
	}
}

// A static `tag` CIDR and the `after_hours` schedule tag clients without an
// event: their answers' unknown IPs are validated. DELETE /v1/clients ends
// an event tag.
func TestE2EStaticTagsAndUntag(t *testing.T) {
	t.Run("tag", func(t *testing.T) {
		e := startE2E(t, "tag 127.0.0.64/26")
		e.query("127.0.0.2", "tor.example.org", dns.TypeA) // not in the CIDR
		e.query("127.0.0.70", "bad.example.org", dns.TypeA)
		if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
			t.Errorf("verdict %+v", v)
		}
		// The queue is FIFO per priority: tor's verdict would have come first.
		if n := e.fake.CallsFor("45.83.0.52"); n != 0 {
			t.Errorf("an untagged client's answer cost %d API calls", n)
		}
	})
	t.Run("after_hours", func(t *testing.T) {
		e := startE2E(t, "after_hours 00:00-23:59 UTC\n        enforce tagged")
		e.query("127.0.0.5", "proxy.example.org", dns.TypeA)
		if v := e.waitVerdict("45.83.0.53"); v.Outcome != "suspicious" {
			t.Errorf("verdict %+v", v)
		}
	})
	t.Run("untag", func(t *testing.T) {
		e := startE2E(t, "")
		e.postEvent("127.0.0.2", e.clock.Now(), "5m")
		if code := e.api("DELETE", "/v1/clients/127.0.0.2", nil, nil); code != http.StatusOK {
			t.Fatalf("DELETE: %d", code)
		}
		if code := e.api("DELETE", "/v1/clients/127.0.0.2", nil, nil); code != http.StatusNotFound {
			t.Errorf("second DELETE: %d, want 404", code)
		}
		e.query("127.0.0.2", "bad.example.org", dns.TypeA)
		// Submission happens on the DNS path, before the answer is sent.
		for result, n := range e.owner().eng.Queue().Stats().Submitted {
			if n != 0 {
				t.Errorf("an untagged client's answer was submitted for validation (%s: %d)", result, n)
			}
		}
	})
}
