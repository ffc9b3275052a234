// Command demo walks through coredns-cip end to end, offline, on loopback:
// a fake Criminal IP API (the fixtures built into the binary), the real
// coredns-cip server running corefile.example on free ports, a workstation
// that browses, an EDR event that tags it, the backtracked verdicts, and the
// sinkholed answer with its Extended DNS Error. `make demo` runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	bin := flag.String("bin", "bin/coredns-cip", "the coredns-cip binary")
	corefile := flag.String("corefile", "corefile.example", "the Corefile to run (its loopback ports are replaced by free ones)")
	flag.Parse()
	d := &demo{bin: *bin}
	err := d.run(*corefile)
	d.stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		if d.serverLog.Len() > 0 {
			fmt.Fprintf(os.Stderr, "server output:\n%s", d.serverLog.String())
		}
		os.Exit(1)
	}
}

// demo is the walkthrough's state, shared by its steps.
type demo struct {
	netns     string // a network namespace the demo made for nftables, as root
	bin       string
	procs     []*exec.Cmd
	dir       string // the temporary directory of the Corefile, state and firewall log
	soar      *soar
	fakeURL   string
	dnsAddr   string
	eventsURL string
	found     []foundIP // what the event backtracked
	serverLog syncBuffer
}

// foundIP is one public IP the event backtracked, with the names it answered.
type foundIP struct {
	IP    string   `json:"ip"`
	Names []string `json:"names"`
}

const (
	workstation = "127.0.0.2"
	otherHost   = "127.0.0.3"
	apiKey      = "demo-key"
)

// run tells the story, one step after the other; each step relies on what
// the ones before it did.
func (d *demo) run(corefilePath string) error {
	say("coredns-cip demo: everything runs on loopback; nothing leaves this machine.")
	if err := d.startFakeAPI(); err != nil {
		return err
	}
	if err := d.startServer(corefilePath); err != nil {
		return err
	}
	for _, s := range []func() error{
		d.browseUntagged,
		d.firewallTraffic,
		d.postEvent,
		d.showVerdicts,
		d.showSinkholed,
		d.showDecisions,
		d.showBlocks,
		d.unblock,
		d.oneIPCheck,
	} {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// startFakeAPI starts the fake Criminal IP API and learns its address from
// the first line it prints.
func (d *demo) startFakeAPI() error {
	fake := exec.Command(d.bin, "fakeapi", "--listen", "127.0.0.1:0", "--key", apiKey)
	out, err := fake.StdoutPipe()
	if err != nil {
		return err
	}
	fake.Stderr = os.Stderr
	if err := d.start(fake); err != nil {
		return err
	}
	line, err := firstLine(out, 10*time.Second)
	if err != nil {
		return fmt.Errorf("fake API: %w", err)
	}
	d.fakeURL = strings.Fields(strings.TrimPrefix(line, "fakeapi listening on "))[0]
	step("A fake Criminal IP API serves the fixture reports at %s.", d.fakeURL)
	return nil
}

// startServer runs coredns-cip with the Corefile, on free ports, and waits
// until it is ready.
func (d *demo) startServer(corefilePath string) error {
	raw, err := os.ReadFile(corefilePath)
	if err != nil {
		return err
	}
	dnsPort, err := freePort()
	if err != nil {
		return err
	}
	eventsPort, _ := freePort()
	metricsPort, _ := freePort()
	readyPort, _ := freePort()
	if d.dir, err = os.MkdirTemp("", "coredns-cip-demo-"); err != nil {
		return err
	}
	d.soar = startSOAR()
	nftLine := "# hook nftables inet cip blocked4 blocked6 create"
	if ns, ok := makeNetNS(); ok {
		d.netns = ns
		nftLine = "hook nftables inet cip blocked4 blocked6 create netns " + ns
	}
	cf := string(raw)
	for old, new := range map[string]string{
		"http://127.0.0.1:8082/soar":                        d.soar.srv.URL + "/soar",
		"state coredns-cip-state":                           "state " + filepath.Join(d.dir, "state"),
		"connlog fw.log":                                    "connlog " + filepath.Join(d.dir, "fw.log"),
		"# hook nftables inet cip blocked4 blocked6 create": nftLine,
		".:1053":                    fmt.Sprintf(".:%d", dnsPort),
		"http://127.0.0.1:8081":     d.fakeURL,
		"events 127.0.0.1:8053":     fmt.Sprintf("events 127.0.0.1:%d", eventsPort),
		"prometheus 127.0.0.1:9153": fmt.Sprintf("prometheus 127.0.0.1:%d", metricsPort),
		"ready 127.0.0.1:8181":      fmt.Sprintf("ready 127.0.0.1:%d", readyPort),
	} {
		if !strings.Contains(cf, old) {
			return fmt.Errorf("%s no longer contains %q; update the demo", corefilePath, old)
		}
		cf = strings.Replace(cf, old, new, 1)
	}
	cfPath := filepath.Join(d.dir, "Corefile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o600); err != nil {
		return err
	}
	server := exec.Command(d.bin, "-conf", cfPath)
	server.Env = append(os.Environ(), "CIP_API_KEY="+apiKey)
	server.Stdout, server.Stderr = &d.serverLog, &d.serverLog
	if err := d.start(server); err != nil {
		return err
	}
	d.dnsAddr = fmt.Sprintf("127.0.0.1:%d", dnsPort)
	d.eventsURL = fmt.Sprintf("http://127.0.0.1:%d", eventsPort)
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/ready", readyPort), 20*time.Second); err != nil {
		return fmt.Errorf("coredns-cip did not become ready: %w", err)
	}
	step("coredns-cip answers DNS on %s (corefile.example), its event API is on %s.", d.dnsAddr, d.eventsURL)
	return nil
}

// browseUntagged resolves names for the workstation before any event:
// nobody is tagged, so no API call is made.
func (d *demo) browseUntagged() error {
	step("The workstation %s browses. Nobody is tagged yet, so nothing is validated:", workstation)
	for _, name := range []string{"www.demo.test", "c2.demo.test", "files.demo.test", "relay.demo.test", "intranet.demo.test", "partner.demo.test"} {
		r, err := d.query(workstation, name, dns.TypeA)
		if err != nil {
			return err
		}
		fmt.Printf("    %-20s -> %s\n", name, describe(r))
	}
	calls, err := d.apiCalls()
	if err != nil {
		return err
	}
	fmt.Printf("    Criminal IP API calls so far: %d\n", calls)
	return nil
}

// firewallTraffic writes the firewall log the server follows: the firewall
// sees what DNS does not.
func (d *demo) firewallTraffic() error {
	step("Meanwhile the firewall logs the workstation's connections (netfilter LOG lines, followed like tail -F):")
	now := time.Now().UTC()
	fw := []string{
		fwLine(now, workstation, "45.83.0.10", 443),
		fwLine(now, workstation, "45.83.0.61", 22),
		fwLine(now, workstation, "10.20.30.40", 445),
	}
	for _, l := range fw {
		fmt.Println("    " + l[strings.Index(l, "SRC="):strings.Index(l, " LEN=")] + " ... DPT=" + l[strings.Index(l, "DPT=")+4:strings.Index(l, " WINDOW")])
	}
	if err := os.WriteFile(filepath.Join(d.dir, "fw.log"), []byte(strings.Join(fw, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Println("    45.83.0.61 was reached by raw IP, never resolved; port 22 is a critical port, so it is validated at once.")
	fmt.Println("    Port 443 is web traffic and 10.20.30.40 is private: neither costs an API call.")
	// Only that the verdict exists matters here; showVerdicts shows it.
	return d.waitVerdict("45.83.0.61", &struct{}{})
}

// postEvent posts the EDR alert on the workstation, as the SOC's SIEM would,
// and keeps the IPs it backtracked.
func (d *demo) postEvent() error {
	step("The EDR flags malware on %s a moment later. The SOC's SIEM posts the event:", workstation)
	body := fmt.Sprintf(`{"client":%q,"type":"edr.malware","ref":"EDR-4711","window":"5m","watch":"30m"}`, workstation)
	fmt.Printf("    POST %s/v1/events %s\n", d.eventsURL, body)
	var accepted struct {
		ID          string    `json:"id"`
		Backtracked int       `json:"backtracked"`
		Queued      int       `json:"queued"`
		TaggedUntil string    `json:"tagged_until"`
		Found       []foundIP `json:"found"`
	}
	if err := d.post("/v1/events", body, &accepted); err != nil {
		return err
	}
	fmt.Printf("    -> event %s: %d public IPs found in the last 5 minutes, %d queued for validation; tagged until %s\n",
		accepted.ID, accepted.Backtracked, accepted.Queued, accepted.TaggedUntil)
	if accepted.Backtracked != 5 {
		return fmt.Errorf("the event backtracked %d IPs, want the 5 public, non-allowlisted ones", accepted.Backtracked)
	}
	fmt.Println("       (DNS answers and firewall records alike; the intranet address is private and partner.demo.test")
	fmt.Println("        is allowlisted: neither costs an API call)")
	d.found = accepted.Found
	return nil
}

// showVerdicts waits for the verdict of each backtracked IP and shows it.
func (d *demo) showVerdicts() error {
	step("The backtracked IPs are validated in the background. Their verdicts:")
	for _, f := range d.found {
		var v struct {
			Outcome  string `json:"outcome"`
			Decision string `json:"decision"`
			Reasons  []struct {
				Factor string `json:"factor"`
				Detail string `json:"detail"`
			} `json:"reasons"`
		}
		if err := d.waitVerdict(f.IP, &v); err != nil {
			return err
		}
		fmt.Printf("    %-13s %-16s %s", f.IP, strings.Join(f.Names, ","), strings.ToUpper(v.Outcome))
		if v.Decision != "" {
			fmt.Printf("  (decision %s)", v.Decision)
		}
		fmt.Println()
		for _, r := range v.Reasons {
			fmt.Printf("        %s: %s\n", r.Factor, r.Detail)
		}
	}
	return nil
}

// showSinkholed asks the same names again, from the workstation and from a
// host never tagged: the suspicious ones are now sinkholed.
func (d *demo) showSinkholed() error {
	step("The workstation asks again. Suspicious infrastructure is now sinkholed, with the reason in an Extended DNS Error:")
	for _, name := range []string{"c2.demo.test", "files.demo.test", "www.demo.test"} {
		r, err := d.query(workstation, name, dns.TypeA)
		if err != nil {
			return err
		}
		fmt.Printf("    %-20s -> %s\n", name, describe(r))
		if sinkholed := strings.HasPrefix(describe(r), "0.0.0.0"); sinkholed != (name != "www.demo.test") {
			return fmt.Errorf("%s: unexpected answer %s", name, describe(r))
		}
	}
	step("Another host, %s, never tagged, is protected too (enforce all):", otherHost)
	r, err := d.query(otherHost, "relay.demo.test", dns.TypeA)
	if err != nil {
		return err
	}
	fmt.Printf("    %-20s -> %s\n", "relay.demo.test", describe(r))
	return nil
}

// showDecisions shows the server's decision lines for the three rewrites,
// then the API calls the whole story cost.
func (d *demo) showDecisions() error {
	step("The server logged one decision line per rewrite (the same ids as in the EDE):")
	var decisions []string
	for deadline := time.Now().Add(5 * time.Second); len(decisions) < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		decisions = decisions[:0]
		for _, l := range strings.Split(d.serverLog.String(), "\n") {
			if i := strings.Index(l, "cipvalidate: decision "); i >= 0 {
				decisions = append(decisions, l[i+len("cipvalidate: "):])
			}
		}
	}
	if len(decisions) < 3 {
		return fmt.Errorf("%d decision lines in the server log, want 3", len(decisions))
	}
	for _, l := range decisions {
		fmt.Println("    " + l)
	}
	calls, err := d.apiCalls()
	if err != nil {
		return err
	}
	step("Criminal IP API calls in all: %d (one per public IP validated; the cache answers the rest).", calls)
	return nil
}

// showBlocks shows that the block decisions reached the enforcement points
// beyond DNS.
func (d *demo) showBlocks() error {
	step("Each suspicious verdict became a block decision, pushed beyond DNS:")
	if err := d.cli("blocks", "list"); err != nil {
		return err
	}
	return d.showEnforcement(d.soar, 4)
}

// unblock lifts one block as an analyst would, shows it gone everywhere, and
// shows the audit log the decisions left.
func (d *demo) unblock() error {
	step("An analyst judges files.demo.test a false positive and unblocks it everywhere:")
	if err := d.cli("blocks", "unblock", "45.83.0.41", "--reason", "false positive: internal file share", "--actor", "analyst"); err != nil {
		return err
	}
	if err := d.showEnforcement(d.soar, 5); err != nil {
		return err
	}
	r, err := d.query(workstation, "files.demo.test", dns.TypeA)
	if err != nil {
		return err
	}
	fmt.Printf("    files.demo.test      -> %s (answered again)\n", describe(r))
	if strings.HasPrefix(describe(r), "0.0.0.0") {
		return errors.New("files.demo.test is still sinkholed after the unblock")
	}
	return d.showAudit(filepath.Join(d.dir, "state", "audit.log"))
}

// oneIPCheck runs the original tool's one-IP check against the fake API.
func (d *demo) oneIPCheck() error {
	step("The original tool's one-IP check is still there:")
	fmt.Printf("    $ coredns-cip check --ip 45.83.0.71 --port 22 --pretty\n")
	check := exec.Command(d.bin, "check", "--ip", "45.83.0.71", "--port", "22", "--pretty", "--api-url", d.fakeURL)
	check.Env = append(os.Environ(), "CIP_API_KEY="+apiKey)
	outb, err := check.Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		return fmt.Errorf("check: %w", err)
	}
	for _, l := range strings.Split(strings.TrimRight(string(outb), "\n"), "\n") {
		fmt.Println("    " + l)
	}
	fmt.Println("    (exit status 1: suspicious; 0 clean, 2 error)")
	return nil
}

func (d *demo) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

// stop ends the processes it started, by PID, then removes what they used:
// the SOAR stand-in, the temporary directory and the namespace. Last, so the
// server is gone before its state directory and webhook target are.
func (d *demo) stop() {
	defer func() {
		if d.soar != nil {
			d.soar.srv.Close()
		}
		if d.dir != "" {
			os.RemoveAll(d.dir)
		}
		if d.netns != "" {
			exec.Command("ip", "netns", "del", d.netns).Run()
		}
	}()
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
}

func (d *demo) query(from, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Timeout: 3 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	r, _, err := c.Exchange(m, d.dnsAddr)
	if err != nil {
		return nil, fmt.Errorf("query %s from %s: %w", name, from, err)
	}
	return r, nil
}

func describe(r *dns.Msg) string {
	var parts []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			parts = append(parts, rr.A.String())
		case *dns.AAAA:
			parts = append(parts, rr.AAAA.String())
		}
	}
	s := dns.RcodeToString[r.Rcode]
	if len(parts) > 0 {
		s = strings.Join(parts, ", ")
	}
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if ede, ok := o.(*dns.EDNS0_EDE); ok {
				s += fmt.Sprintf("\n        EDE %d (%s): %s", ede.InfoCode, dns.ExtendedErrorCodeToString[ede.InfoCode], ede.ExtraText)
			}
		}
	}
	return s
}

func (d *demo) apiCalls() (int, error) {
	resp, err := http.Get(d.fakeURL + "/_fake/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s struct {
		Calls int `json:"calls"`
	}
	return s.Calls, json.NewDecoder(resp.Body).Decode(&s)
}

func (d *demo) post(path, body string, out any) error {
	resp, err := http.Post(d.eventsURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, data)
	}
	return json.Unmarshal(data, out)
}

func (d *demo) get(path string, out any) (int, error) {
	resp, err := http.Get(d.eventsURL + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

func waitReady(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(resp.Status)
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func firstLine(r io.Reader, limit time.Duration) (string, error) {
	ch := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
		io.Copy(io.Discard, r)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	select {
	case l, ok := <-ch:
		if !ok {
			return "", errors.New("exited before printing its address")
		}
		return l, nil
	case <-ctx.Done():
		return "", errors.New("printed nothing")
	}
}

func say(format string, a ...any) { fmt.Printf(format+"\n", a...) }

var stepN int

func step(format string, a ...any) {
	stepN++
	fmt.Printf("\n%d. %s\n", stepN, fmt.Sprintf(format, a...))
}

// syncBuffer is a bytes.Buffer safe for the server's stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// soar is a stand-in SOAR endpoint that keeps the webhook's changes.
type soar struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func startSOAR() *soar {
	s := &soar{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Changes []struct {
				Action   string   `json:"action"`
				IP       string   `json:"ip"`
				TTL      int64    `json:"ttl"`
				Decision string   `json:"decision"`
				Reasons  []string `json:"reasons"`
				Actor    string   `json:"actor"`
				Why      string   `json:"why"`
			} `json:"changes"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range body.Changes {
			line := fmt.Sprintf("%-7s %-12s ttl=%-6d %s", c.Action, c.IP, c.TTL, c.Decision)
			if c.Action == "unblock" {
				line += fmt.Sprintf(" by %s: %s", c.Actor, c.Why)
			} else {
				line += " " + strings.Join(c.Reasons, "; ")
			}
			s.got = append(s.got, line)
		}
	}))
	return s
}

func (s *soar) changes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// makeNetNS creates a network namespace for the nftables hook when the
// demo runs as root with iproute2; the firewall of the machine itself is
// never touched.
func makeNetNS() (string, bool) {
	if os.Geteuid() != 0 {
		return "", false
	}
	name := fmt.Sprintf("cipdemo-%d", os.Getpid())
	if err := exec.Command("ip", "netns", "add", name).Run(); err != nil {
		return "", false
	}
	return name, true
}

// showEnforcement waits until the SOAR webhook has n changes, then shows
// them, the External Dynamic List and, as root, the nftables set.
func (d *demo) showEnforcement(s *soar, n int) error {
	deadline := time.Now().Add(20 * time.Second)
	for len(s.changes()) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("the SOAR webhook got %d changes, want %d", len(s.changes()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("    SOAR webhook (signed JSON POSTs) received:")
	for _, c := range s.changes() {
		fmt.Println("      " + c)
	}
	resp, err := http.Get(d.eventsURL + "/v1/blocklist.txt")
	if err != nil {
		return err
	}
	edl, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("    External Dynamic List (GET /v1/blocklist.txt, for Palo Alto / FortiGate):\n")
	for _, l := range strings.Fields(string(edl)) {
		fmt.Println("      " + l)
	}
	if d.netns == "" {
		fmt.Println("    (run as root to also see the nftables set, in a network namespace of the demo's own)")
		return nil
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "exec", d.netns, "nft", "list", "set", "inet", "cip", "blocked4").CombinedOutput()
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("nft list set: %v: %s", err, out)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if strings.Count(string(out), "expires") == len(strings.Fields(string(edl))) || time.Now().After(deadline) {
			fmt.Printf("    nftables (namespace %s), elements expire by themselves:\n", d.netns)
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				fmt.Println("      " + l)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs a coredns-cip sub-command against the demo's event API.
func (d *demo) cli(args ...string) error {
	args = append(args, "--api", d.eventsURL)
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if strings.ContainsAny(a, " ;:") {
			shown[i] = "'" + a + "'"
		}
	}
	fmt.Printf("    $ coredns-cip %s\n", strings.Join(shown, " "))
	out, err := exec.Command(d.bin, args...).CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("      " + l)
	}
	if err != nil {
		return fmt.Errorf("coredns-cip %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// showAudit prints how many audit lines of each kind the decisions left.
func (d *demo) showAudit(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct{ Kind string }
		if json.Unmarshal([]byte(l), &e) == nil {
			if counts[e.Kind] == 0 {
				kinds = append(kinds, e.Kind)
			}
			counts[e.Kind]++
		}
	}
	step("The audit log (state dir, one JSON line per decision) holds:")
	for _, k := range kinds {
		fmt.Printf("    %-12s %d\n", k, counts[k])
	}
	return nil
}

// fwLine is a kernel LOG line as rsyslog writes it.
func fwLine(t time.Time, src, dst string, dport int) string {
	return fmt.Sprintf("%s fw1 kernel: [52311.004211] CIP-OUT IN=eth1 OUT=eth0 SRC=%s DST=%s LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF PROTO=TCP SPT=51234 DPT=%d WINDOW=64240 RES=0x00 SYN URGP=0",
		t.Format("2006-01-02T15:04:05.000000-07:00"), src, dst, dport)
}

// waitVerdict waits until ip has a verdict and decodes it into v.
func (d *demo) waitVerdict(ip string, v any) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, err := d.get("/v1/verdicts/"+ip, v)
		if err != nil {
			return err
		}
		if code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no verdict for %s after 20s", ip)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
