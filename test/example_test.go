package test

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid and gid of Debian's nobody and nogroup.
const nobody = 65534

// corefile.example runs as written, as an unprivileged user in a directory
// of its own: it answers DNS, takes an event, validates what the client
// resolved and blocks the suspicious IP, keeping its state under the working
// directory. Only its ports are changed, to free ones.
func TestExampleCorefileAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the server as nobody")
	}
	// A directory nobody owns, with a copy of the binary nobody can run
	// (binPath's directory is root's alone) and of the Corefile.
	dir, err := os.MkdirTemp("", "coredns-cip-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "coredns-cip"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../corefile.example")
	if err != nil {
		t.Fatal(err)
	}

	apiURL := startFakeAPICommand(t)
	dnsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeDNSPort(t)))
	free := func() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t))) }
	eventsAddr, readyAddr, metricsAddr := free(), free(), free()
	cf := string(raw)
	for old, new := range map[string]string{
		".:1053":                        ".:" + portOf(dnsAddr),
		"api_url http://127.0.0.1:8081": "api_url " + apiURL,
		"events 127.0.0.1:8053":         "events " + eventsAddr,
		"ready 127.0.0.1:8181":          "ready " + readyAddr,
		"prometheus 127.0.0.1:9153":     "prometheus " + metricsAddr,
	} {
		if !strings.Contains(cf, old) {
			t.Fatalf("corefile.example no longer has %q; update the test", old)
		}
		cf = strings.Replace(cf, old, new, 1)
	}
	writeFile(t, filepath.Join(dir, "corefile.example"), cf)
	if err := os.Chmod(filepath.Join(dir, "corefile.example"), 0o644); err != nil {
		t.Fatal(err)
	}

	s := &cipServer{t: t, dnsAddr: dnsAddr, api: "http://" + eventsAddr, readyURL: "http://" + readyAddr + "/ready",
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, out: &syncBuffer{}}
	s.cmd = exec.Command("./coredns-cip", "-conf", "corefile.example")
	s.cmd.Dir = dir
	s.cmd.Env = []string{"CIP_API_KEY=demo-key", "PATH=/usr/bin:/bin"}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if s.running() {
			s.kill()
		}
	})
	waitFor(t, "ready server", func() (bool, string) { return s.started(), s.out.String() })

	if got := answerA(t, queryA(t, dnsAddr, "127.0.0.1", "c2.demo.test.")); len(got) != 1 || got[0] != "45.83.0.21" {
		t.Fatalf("c2.demo.test A before any event: %v, want 45.83.0.21", got)
	}
	var ev struct {
		Backtracked int `json:"backtracked"`
	}
	s.call("POST", "/v1/events", map[string]string{"client": "127.0.0.1", "type": "edr.malware"}, http.StatusAccepted, &ev)
	if ev.Backtracked == 0 {
		t.Errorf("the event backtracked nothing, want c2.demo.test's answer")
	}
	waitFor(t, "block of 45.83.0.21", func() (bool, string) { _, ok := s.blocks()["45.83.0.21"]; return ok, s.out.String() })

	st, err := os.Stat(filepath.Join(dir, "coredns-cip-state"))
	if err != nil {
		t.Fatalf("no state under the working directory: %v", err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != nobody {
		t.Errorf("the state directory is owned by uid %d, want nobody (%d)", uid, nobody)
	}
	resp, err := s.http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "coredns_dns_requests_total") {
		t.Errorf("metrics: %d, no coredns_dns_requests_total", resp.StatusCode)
	}
}
