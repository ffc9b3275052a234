package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// crashIterations is how many times TestCrashKeepsAcknowledged kills the
// server.
const crashIterations = 24

// TestCrashKeepsAcknowledged makes blocks, unblocks, allowlist entries
// (added and removed), events and untags concurrently, kills the server
// with SIGKILL at a random moment, restarts it, and checks that every
// change that was acknowledged (a 2xx of the API, a "block" audit line) is
// there with the time it had left, and that every acknowledged removal
// stuck; a change whose request the kill interrupted may go either way.
// What was acknowledged in earlier rounds is checked again after every
// later kill.
func TestCrashKeepsAcknowledged(t *testing.T) {
	fake, fakeURL := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fakeURL, blockTTL: "2h", options: []string{"rate 1000 1000", "workers 8"}})
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 13))
	l := &ledger{tags: expectations{}, allows: expectations{}, blocks: expectations{}, seen: map[string]time.Time{}}
	run := &crashRun{t: t, srv: srv, fake: fake, report: criticalReport(t), l: l}

	// The connections of every round come from this client; it stays
	// tagged through the test.
	run.tag(watcher, "24h")
	for round := range crashIterations {
		run.round(round, time.Duration(20+rng.IntN(400))*time.Millisecond, rng.Uint64())
		srv.kill()
		l.readAudit(srv)
		srv.start()
		l.check(t, srv, round)
		if t.Failed() {
			t.Fatalf("round %d (seed %d): an acknowledged change was lost; server output:\n%s", round, seed, srv.out)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("acknowledged over %d kills: %s", crashIterations, l.counts)
	for _, what := range []string{"event", "untag", "allow", "allow removed", "block", "unblock"} {
		if l.counts[what] == 0 {
			t.Errorf("no %s was acknowledged in %d rounds: the test checked nothing of it", what, crashIterations)
		}
	}
}

// watcher is the tagged client whose connections lead to the blocks.
const watcher = "10.99.0.1"

// criticalReport is the fixture of a Critical IP, to serve for other IPs.
func criticalReport(t *testing.T) map[string]any {
	t.Helper()
	body, err := os.ReadFile("../internal/fakeapi/fixtures/score_critical.json")
	if err != nil {
		t.Fatal(err)
	}
	var report map[string]any
	if err := json.Unmarshal(body, &report); err != nil {
		t.Fatal(err)
	}
	return report
}

// outcome is what the server must hold of a key after a restart.
type outcome int

const (
	present outcome = iota + 1 // with the expiry recorded
	absent
	unknown // the request was cut by the kill: either
)

type expectation struct {
	state   outcome
	expires time.Time
	exact   bool // expires is what the server said; else an audit line's estimate
}

type expectations map[string]expectation

// ledger is what the server acknowledged, by kind and key.
type ledger struct {
	mu                   sync.Mutex
	tags, allows, blocks expectations
	seen                 map[string]time.Time // blocks GET /v1/blocks showed, and their expiry
	unblocked            map[string]outcome   // unblocks sent: absent (acknowledged) or unknown
	counts               counts
}

type counts map[string]int

func (c counts) String() string {
	var b strings.Builder
	for _, k := range []string{"event", "untag", "allow", "allow removed", "block", "unblock"} {
		fmt.Fprintf(&b, "%d %s, ", c[k], k)
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// record notes the outcome of a request: ok acknowledged it as what, a
// failure (the kill) leaves the key unknown.
func (l *ledger) record(m expectations, what, key string, ok bool, e expectation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = counts{}
	}
	if !ok {
		m[key] = expectation{state: unknown}
		return
	}
	m[key] = e
	l.counts[what]++
}

// readAudit takes the blocks the audit log acknowledged: a "block" line is
// written once the block is on disk. It runs while the server is down.
func (l *ledger) readAudit(s *cipServer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range s.auditEntries() {
		if e.Kind != "block" || strings.Contains(e.Detail, "not on disk") {
			continue
		}
		if _, known := l.blocks[e.IP]; known {
			continue
		}
		l.counts["block"]++
		exp := expectation{state: present, expires: e.Time.Add(time.Duration(e.TTL) * time.Second)}
		if seen, ok := l.seen[e.IP]; ok {
			exp.expires, exp.exact = seen, true
		}
		switch l.unblocked[e.IP] {
		case absent:
			exp = expectation{state: absent}
		case unknown:
			exp = expectation{state: unknown}
		}
		l.blocks[e.IP] = exp
	}
}

// check compares what the restarted server holds with the ledger.
func (l *ledger) check(t *testing.T, s *cipServer, round int) {
	t.Helper()
	var clients struct {
		Clients []struct {
			Client string
			Until  time.Time
		}
	}
	s.call("GET", "/v1/clients", nil, http.StatusOK, &clients)
	tagged := map[string]time.Time{}
	for _, c := range clients.Clients {
		tagged[c.Client] = c.Until
	}
	var allowlist []struct {
		Value string
		Until time.Time
	}
	s.call("GET", "/v1/allow", nil, http.StatusOK, &allowlist)
	allowed := map[string]time.Time{}
	for _, a := range allowlist {
		allowed[a.Value] = a.Until
	}
	blocked := map[string]time.Time{}
	remaining := map[string]int64{}
	for ip, b := range s.blocks() {
		blocked[ip], remaining[ip] = b.Expires, b.RemainingSeconds
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.compare(t, round, "tag", l.tags, tagged)
	l.compare(t, round, "allowlist entry", l.allows, allowed)
	l.compare(t, round, "block", l.blocks, blocked)
	for ip, e := range l.blocks {
		if r, ok := remaining[ip]; e.state == present && ok && (r <= 0 || r > int64((2*time.Hour).Seconds())) {
			t.Errorf("round %d: block %s has %ds left after the restart, want 0 to 7200", round, ip, r)
		}
	}
}

func (l *ledger) compare(t *testing.T, round int, what string, want expectations, got map[string]time.Time) {
	t.Helper()
	for key, e := range want {
		expires, ok := got[key]
		switch {
		case e.state == present && !ok:
			t.Errorf("round %d: acknowledged %s %s is gone after the restart", round, what, key)
		case e.state == absent && ok:
			t.Errorf("round %d: %s %s, whose removal was acknowledged, is back after the restart", round, what, key)
		case e.state != present:
		case e.exact && !expires.Equal(e.expires):
			t.Errorf("round %d: %s %s expires at %s after the restart, want %s as before", round, what, key, expires, e.expires)
		case !e.exact && (expires.Before(e.expires.Add(-2*time.Second)) || expires.After(e.expires.Add(time.Second))):
			t.Errorf("round %d: %s %s expires at %s after the restart, want about %s (its audit line)", round, what, key, expires, e.expires)
		}
	}
}

// crashRun drives the server's API from several goroutines until it dies.
type crashRun struct {
	t      *testing.T
	srv    *cipServer
	fake   *fakeapi.Server
	report map[string]any
	l      *ledger
}

// round makes changes concurrently and kills the server after d.
func (r *crashRun) round(n int, d time.Duration, seed uint64) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.events(n, stop, rand.New(rand.NewPCG(seed, 1))) })
	wg.Go(func() { r.allows(n, stop, rand.New(rand.NewPCG(seed, 2))) })
	wg.Go(func() { r.blocks(n, stop, rand.New(rand.NewPCG(seed, 3))) })
	time.Sleep(d) // the random moment of the kill
	r.srv.kill()
	close(stop)
	wg.Wait()
}

// request sends a request without failing the test: the kill cuts some.
// It returns the status (0 when there was no answer) and the body.
func (r *crashRun) request(method, path string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.srv.api+path, rd)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.srv.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, raw
}

// expect says whether a request was acknowledged with want; an answer
// other than want or none at all (the kill) is a test failure.
func (r *crashRun) acknowledged(what string, status, want int, raw []byte) bool {
	if status != 0 && status != want {
		r.t.Errorf("%s: status %d, want %d: %s", what, status, want, raw)
	}
	return status == want
}

func stopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// tag posts an event for client that watches it for watch.
func (r *crashRun) tag(client, watch string) {
	status, raw := r.request("POST", "/v1/events", map[string]string{"client": client, "type": "edr.malware", "watch": watch})
	var acc struct {
		TaggedUntil time.Time `json:"tagged_until"`
	}
	ok := r.acknowledged("event for "+client, status, http.StatusAccepted, raw) && json.Unmarshal(raw, &acc) == nil
	r.l.record(r.l.tags, "event", client, ok, expectation{state: present, expires: acc.TaggedUntil, exact: true})
}

// events tags new clients and now and then untags one of them.
func (r *crashRun) events(round int, stop chan struct{}, rng *rand.Rand) {
	var tagged []string
	for i := 0; !stopped(stop); i++ {
		client := fmt.Sprintf("10.%d.%d.%d", 1+round, i/250, 1+i%250)
		r.tag(client, fmt.Sprintf("%dm", 60+rng.IntN(120)))
		tagged = append(tagged, client)
		if rng.IntN(5) == 0 {
			victim := tagged[rng.IntN(len(tagged))]
			status, raw := r.request("DELETE", "/v1/clients/"+victim, nil)
			if status == http.StatusNotFound {
				continue // untagged already, or its event was cut by the kill
			}
			ok := r.acknowledged("untag "+victim, status, http.StatusOK, raw)
			r.l.record(r.l.tags, "untag", victim, ok, expectation{state: absent})
		}
	}
}

// allows adds allowlist entries and now and then removes one.
func (r *crashRun) allows(round int, stop chan struct{}, rng *rand.Rand) {
	var added []string
	for i := 0; !stopped(stop); i++ {
		value := fmt.Sprintf("198.18.%d.%d", round, i)
		status, raw := r.request("POST", "/v1/allow", map[string]string{"value": value, "until": fmt.Sprintf("%dm", 60+rng.IntN(120)), "reason": "crash test"})
		var entry struct {
			Until time.Time `json:"until"`
		}
		ok := r.acknowledged("allow "+value, status, http.StatusCreated, raw) && json.Unmarshal(raw, &entry) == nil
		r.l.record(r.l.allows, "allow", value, ok, expectation{state: present, expires: entry.Until, exact: true})
		added = append(added, value)
		if rng.IntN(4) == 0 {
			victim := added[rng.IntN(len(added))]
			status, raw := r.request("DELETE", "/v1/allow/"+victim, nil)
			if status == http.StatusNotFound {
				continue
			}
			ok := r.acknowledged("remove allow "+victim, status, http.StatusOK, raw)
			r.l.record(r.l.allows, "allow removed", victim, ok, expectation{state: absent})
		}
	}
}

// blocks has the watcher connect to new Critical IPs, a few at a time,
// waits for their blocks and unblocks about half of them.
func (r *crashRun) blocks(round int, stop chan struct{}, rng *rand.Rand) {
	for i := 0; !stopped(stop); i += 3 {
		var conns []map[string]any
		var ips []string
		for j := range 3 {
			ip := fmt.Sprintf("45.83.%d.%d", 100+round, 1+i+j)
			r.report["ip"] = ip
			body, _ := json.Marshal(r.report)
			r.fake.Serve(ip, body)
			ips = append(ips, ip)
			conns = append(conns, map[string]any{"src": watcher, "dst": ip, "dport": 443})
		}
		if status, raw := r.request("POST", "/v1/connections", conns); !r.acknowledged("connections", status, http.StatusOK, raw) {
			return
		}
		for _, ip := range ips {
			if !r.waitBlock(ip, stop) {
				return
			}
			if rng.IntN(2) == 0 {
				status, raw := r.request("DELETE", "/v1/blocks/"+ip+"?reason=crash+test", nil)
				ok := r.acknowledged("unblock "+ip, status, http.StatusOK, raw)
				r.l.mu.Lock()
				if r.l.unblocked == nil {
					r.l.unblocked = map[string]outcome{}
				}
				r.l.unblocked[ip] = map[bool]outcome{true: absent, false: unknown}[ok]
				if ok {
					r.l.counts["unblock"]++
				}
				r.l.mu.Unlock()
			}
		}
	}
}

// waitBlock polls GET /v1/blocks until ip is blocked, and notes the
// block's expiry; false if the server died first.
func (r *crashRun) waitBlock(ip string, stop chan struct{}) bool {
	for !stopped(stop) {
		status, raw := r.request("GET", "/v1/blocks", nil)
		if status != http.StatusOK {
			return false
		}
		var list []blockView
		if err := json.Unmarshal(raw, &list); err != nil {
			r.t.Errorf("GET /v1/blocks: %v: %s", err, raw)
			return false
		}
		for _, b := range list {
			if b.IP == ip {
				r.l.mu.Lock()
				r.l.seen[ip] = b.Expires
				r.l.mu.Unlock()
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
