package test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/miekg/dns"
)

// waitTimeout bounds every wait on a condition of a running server.
const waitTimeout = 20 * time.Second

// The fixture IPs the fake API knows, and the names the test zone gives them.
const (
	badIP   = "45.83.0.21" // suspicious: SCORE
	torIP   = "45.83.0.52" // suspicious: ANON_TOR
	cleanIP = "45.83.0.10" // clean

	badName   = "bad.example.org."
	torName   = "tor.example.org."
	cleanName = "clean.example.org."

	// taggedClient resolves the names and is then tagged by an event;
	// otherClient never is.
	taggedClient = "127.0.0.2"
	otherClient  = "127.0.0.9"
	// barrierClient is tagged by the durability barrier's marker events.
	barrierClient = "127.0.0.3"
)

const testZone = `$ORIGIN example.org.
@      3600 IN SOA ns.example.org. hostmaster.example.org. 1 7200 3600 1209600 300
@      3600 IN NS  ns.example.org.
ns     3600 IN A   127.0.0.1
bad    3600 IN A   45.83.0.21
tor    3600 IN A   45.83.0.52
clean  3600 IN A   45.83.0.10
`

// serverOptions shape the Corefile of a cipServer.
type serverOptions struct {
	apiURL   string   // the fake Criminal IP API
	zone     string   // more lines of the test zone
	blockTTL string   // block_ttl; empty: the default
	token    string   // if set, written to a file named by events token_file
	options  []string // more lines of the cipvalidate block
	metrics  bool     // serve the prometheus metrics (cipServer.metricsURL)
	// stateDir, if set, is the state directory instead of one in the
	// test's temporary directory; with command, the binary runs inside
	// another mount namespace, whose files the test reads through root
	// (/proc/PID/root).
	stateDir string
	command  []string // a command (and arguments) that runs the binary and its arguments
	root     string
	flags    []string // more flags of the binary, before -conf
}

// cipServer is a coredns-cip process serving the test zone with cipvalidate,
// its event API and the ready endpoint on loopback ports that stay the same
// across restarts.
type cipServer struct {
	t        *testing.T
	conf     string
	stateDir string
	dnsAddr  string
	api      string // event API base URL
	readyURL string
	token    string
	http     *http.Client

	metricsURL string
	bin        string // the binary; empty: binPath
	command    []string
	flags      []string
	root       string

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed once cmd has exited
}

// startCIPServer writes a zone and a Corefile to a temporary directory and
// starts coredns-cip on them; it is killed by PID at cleanup.
func startCIPServer(t *testing.T, opts serverOptions) *cipServer {
	t.Helper()
	dir := t.TempDir()
	s := &cipServer{
		t:        t,
		conf:     filepath.Join(dir, "Corefile"),
		stateDir: filepath.Join(dir, "state"),
		dnsAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(freeDNSPort(t))),
		token:    opts.token,
		command:  opts.command,
		root:     opts.root,
		flags:    opts.flags,
		// No keep-alive: a connection must not outlive the process it went to.
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	eventsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	readyAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	s.api, s.readyURL = "http://"+eventsAddr, "http://"+readyAddr+"/ready"

	zone := filepath.Join(dir, "example.org.zone")
	writeFile(t, zone, testZone+opts.zone)
	events := eventsAddr
	if opts.token != "" {
		tokenFile := filepath.Join(dir, "token")
		writeFile(t, tokenFile, opts.token+"\n")
		events += " token_file " + tokenFile
	}
	if opts.stateDir != "" {
		s.stateDir = opts.stateDir
	}
	blockOptions := slices.Clone(opts.options)
	if opts.blockTTL != "" {
		blockOptions = append(blockOptions, "block_ttl "+opts.blockTTL)
	}
	prometheus := ""
	if opts.metrics {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
		s.metricsURL, prometheus = "http://"+addr+"/metrics", "prometheus "+addr
	}
	writeFile(t, s.conf, fmt.Sprintf(`example.org:%s {
    bind 127.0.0.1
    ready %s {
        monitor continuously
    }
    %s
    cipvalidate {
        api_key %s
        api_url %s
        events %s
        state %s
        %s
    }
    file %s
}
`, portOf(s.dnsAddr), readyAddr, prometheus, fakeapitest.Key, opts.apiURL, events, s.stateDir,
		strings.Join(blockOptions, "\n        "), zone))

	s.start()
	t.Cleanup(func() {
		if s.running() {
			s.kill()
		}
	})
	return s
}

// start runs the binary on the Corefile and waits until /ready answers 200.
func (s *cipServer) start() {
	t := s.t
	t.Helper()
	s.out = &syncBuffer{}
	bin := cmp.Or(s.bin, binPath)
	args := append(append(slices.Clone(s.command), bin), append(slices.Clone(s.flags), "-conf", s.conf)...)
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)

	deadline := time.Now().Add(waitTimeout)
	for {
		if s.started() {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("coredns-cip exited before it was ready (%v); output:\n%s", s.cmd.ProcessState, s.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			t.Fatalf("coredns-cip not ready within %s; output:\n%s", waitTimeout, s.out)
		}
	}
}

// started reports whether the server is up: its event API answers (ok, or
// 503 on a full disk) and, unless it says it is unhealthy, /ready is 200.
// /ready alone is not enough: CoreDNS's ready plugin answers 200 before
// the plugins it watches have registered, while they still start.
func (s *cipServer) started() bool {
	status := func(url string) int {
		resp, err := s.http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	switch status(s.api + "/healthz") {
	case http.StatusServiceUnavailable:
		return true
	case http.StatusOK:
		return status(s.readyURL) == http.StatusOK
	}
	return false
}

// kill sends SIGKILL to the server's PID: no shutdown hook runs, nothing is
// flushed. It returns once the process is gone.
func (s *cipServer) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("kill coredns-cip (pid %d): %v", s.cmd.Process.Pid, err)
	}
	<-s.done
}

func (s *cipServer) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// do sends a request to the event API (with the token, if any) and returns
// the status and body.
func (s *cipServer) do(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.api+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v; server output:\n%s", method, path, err, s.out)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

// call is do, failing the test unless the status is want; the answer is
// decoded into out (if not nil).
func (s *cipServer) call(method, path string, body any, want int, out any) []byte {
	s.t.Helper()
	status, raw := s.do(method, path, body)
	if status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return raw
}

// blockView is a block as GET /v1/blocks shows it.
type blockView struct {
	IP               string    `json:"ip"`
	Decision         string    `json:"decision"`
	Reasons          []string  `json:"reasons"`
	Created          time.Time `json:"created"`
	Expires          time.Time `json:"expires"`
	RemainingSeconds int64     `json:"remaining_seconds"`
	Clients          []string  `json:"clients"`
	Events           []string  `json:"events"`
}

// blocks returns the active blocks by IP.
func (s *cipServer) blocks() map[string]blockView {
	s.t.Helper()
	var list []blockView
	s.call("GET", "/v1/blocks", nil, http.StatusOK, &list)
	m := make(map[string]blockView, len(list))
	for _, b := range list {
		m[b.IP] = b
	}
	return m
}

// blocklist returns the External Dynamic List's IPs, sorted.
func (s *cipServer) blocklist() []string {
	s.t.Helper()
	raw := s.call("GET", "/v1/blocklist.txt", nil, http.StatusOK, nil)
	ips := strings.Fields(string(raw))
	slices.Sort(ips)
	return ips
}

// taggedClients returns the clients tagged by events.
func (s *cipServer) taggedClients() []string {
	s.t.Helper()
	var list struct{ Clients []struct{ Client string } }
	s.call("GET", "/v1/clients", nil, http.StatusOK, &list)
	var out []string
	for _, c := range list.Clients {
		out = append(out, c.Client)
	}
	return out
}

// postEvent tags client with an event that watches it for an hour.
func (s *cipServer) postEvent(client, ref string) {
	s.t.Helper()
	ev := map[string]string{"client": client, "type": "edr.malware", "watch": "1h"}
	if ref != "" {
		ev["ref"] = ref
	}
	s.call("POST", "/v1/events", ev, http.StatusAccepted, nil)
}

// blockBoth has taggedClient resolve the three names (nothing is validated
// while it is untagged), then tags it: the event's backtrack validates the
// three IPs, and the two suspicious ones get blocked. It returns the blocks.
func (s *cipServer) blockBoth() map[string]blockView {
	t := s.t
	t.Helper()
	for name, ip := range map[string]string{badName: badIP, torName: torIP, cleanName: cleanIP} {
		if got := answerA(t, queryA(t, s.dnsAddr, taggedClient, name)); !slices.Equal(got, []string{ip}) {
			t.Fatalf("%s before the event: A %v, want %s", name, got, ip)
		}
	}
	s.postEvent(taggedClient, "")
	for _, ip := range []string{badIP, torIP} {
		waitFor(t, "a suspicious verdict for "+ip, func() (bool, string) {
			status, raw := s.do("GET", "/v1/verdicts/"+ip, nil)
			var v struct{ Outcome string }
			_ = json.Unmarshal(raw, &v)
			return status == http.StatusOK && v.Outcome == "suspicious", fmt.Sprintf("%d %s", status, raw)
		})
	}
	var blocks map[string]blockView
	waitFor(t, "the blocks of "+badIP+" and "+torIP, func() (bool, string) {
		blocks = s.blocks()
		_, bad := blocks[badIP]
		_, tor := blocks[torIP]
		return bad && tor, fmt.Sprint(blocks)
	})
	if len(blocks) != 2 {
		t.Fatalf("blocks = %v, want only %s and %s (%s is clean)", blocks, badIP, torIP, cleanIP)
	}
	return blocks
}

// waitDurable returns once every change the server queued before the call
// is committed to its state file, so that a kill -9 cannot lose it. An
// event is answered 202 only once its tag is on disk, and the commit that
// takes it takes every change queued before (group commit): the event is
// the barrier.
func (s *cipServer) waitDurable() {
	s.postEvent(barrierClient, "durability-barrier")
}

// auditEntries reads the audit log's JSON lines.
func (s *cipServer) auditEntries() []auditEntry {
	s.t.Helper()
	path := s.root + filepath.Join(s.stateDir, "audit.log")
	data, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("audit log: %v", err)
	}
	var out []auditEntry
	for line := range strings.Lines(string(data)) {
		var e auditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			s.t.Fatalf("%s: a line is not JSON: %v: %q", path, err, line)
		}
		out = append(out, e)
	}
	return out
}

type auditEntry struct {
	Time     time.Time         `json:"time"`
	TTL      int64             `json:"ttl"`
	Kind     string            `json:"kind"`
	Decision string            `json:"decision"`
	IP       string            `json:"ip"`
	Client   string            `json:"client"`
	Actor    string            `json:"actor"`
	Detail   string            `json:"detail"`
	Event    string            `json:"event"`
	Labels   map[string]string `json:"labels"`
}

// hasAudit reports whether entries hold one of kind for ip with decision.
func hasAudit(entries []auditEntry, kind, ip, decision string) bool {
	return slices.ContainsFunc(entries, func(e auditEntry) bool {
		return e.Kind == kind && e.IP == ip && e.Decision == decision
	})
}

// queryA asks server for name's A records from the loopback address from,
// with EDNS0.
func queryA(t *testing.T, server, from, name string) *dns.Msg {
	t.Helper()
	c := &dns.Client{
		Net:    "udp",
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second},
	}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s A from %s: %v", name, from, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("query %s A from %s: rcode %s", name, from, dns.RcodeToString[r.Rcode])
	}
	return r
}

// answerA returns the addresses of r's A records.
func answerA(t *testing.T, r *dns.Msg) []string {
	t.Helper()
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// fakeCallsByIP returns how many report calls the fake API got per IP.
func fakeCallsByIP(t *testing.T, url string) map[string]int {
	t.Helper()
	resp, err := http.Get(url + "/_fake/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats struct {
		ByIP map[string]int `json:"by_ip"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats.ByIP
}

// waitFor polls cond until it holds, failing the test after waitTimeout
// with what cond last reported.
func waitFor(t *testing.T, what string, cond func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; last: %s", what, waitTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeTCPPort returns a TCP port free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeDNSPort returns a port free for both TCP and UDP on 127.0.0.1.
func freeDNSPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects a process's output; it is written by exec's copying
// goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
