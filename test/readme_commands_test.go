package test

import (
	"bufio"
	"fmt"
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

// readmeNotRun are the READMEs' commands this test does not run, by
// prefix, and why. Keep it short: a command listed here can rot.
var readmeNotRun = map[string]string{
	"make test": "it is CI itself (.ci/run runs it)",
	"make demo": ".ci/run runs it after make test",
	// Linking CoreDNS takes minutes on a loaded machine; the commands
	// after them run the binary TestMain built the same way.
	"make build": "TestMain builds the binary with its go build; make demo in .ci/run runs make build",
	"go build -o coredns-cip ./cmd/coredns-cip": "TestMain builds the binary with this go build",
	"scripts/build-with-coredns.sh":             "TestBuildWithCoreDNS (test/fullbuild_test.go) runs it and starts what it builds",
	// Their examples name the ids of the API contract's fake.
	"coredns-cip decisions ":                              "cmd/coredns-cip/readme_test.go runs it against the API contract's fake",
	"coredns-cip events ":                                 "cmd/coredns-cip/readme_test.go runs it against the API contract's fake",
	"coredns-cip allow ":                                  "cmd/coredns-cip/readme_test.go runs it against the API contract's fake",
	"coredns-cip clients ":                                "cmd/coredns-cip/readme_test.go runs it against the API contract's fake",
	"coredns-cip blocks list --api https://10.0.0.2:8053": "a remote server with mutual TLS; cmd/coredns-cip/apitls_test.go runs these flags against one",
}

// TestReadmeCommands runs, in order, every command of the sh blocks of
// README.md and plugin/cipvalidate/README.md that readmeNotRun does not
// list: as written, but for the ports (free ones), /etc/coredns/ and ~/ (a
// temporary directory), pidof (this test's server) and check, which asks
// the fake API instead of the real one. Run as root (CI), every command runs
// as nobody, as a new user following the README would: nothing in them may
// need root.
func TestReadmeCommands(t *testing.T) {
	cmds := append(readmeCommands(t, "../README.md"), readmeCommands(t, "../plugin/cipvalidate/README.md")...)
	w := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	for _, d := range []string{"etc", "home/.cip", "path", "bin"} {
		if err := os.MkdirAll(filepath.Join(w, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// bin/coredns-cip (make build), ./coredns-cip (go build) and
	// coredns-cip on the PATH are the binary under test.
	// A copy: binPath's directory is root's alone.
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(w, "path", "coredns-cip.bin"), string(bin))
	if err := os.Chmod(filepath.Join(w, "path", "coredns-cip.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"path/coredns-cip", "bin/coredns-cip", "coredns-cip"} {
		if err := os.Symlink(filepath.Join(w, "path", "coredns-cip.bin"), filepath.Join(w, link)); err != nil {
			t.Fatal(err)
		}
	}
	corefile, err := os.ReadFile("../corefile.example")
	if err != nil {
		t.Fatal(err)
	}
	port := func() string { return "127.0.0.1:" + strconv.Itoa(freeTCPPort(t)) }
	fake, events, metrics, ready := port(), port(), port(), port()
	dns := strconv.Itoa(freeDNSPort(t))
	var server *exec.Cmd // the server the READMEs start, for kill -USR1
	sub := func(s string) string {
		pid := "0"
		if server != nil {
			pid = strconv.Itoa(server.Process.Pid)
		}
		return strings.NewReplacer("127.0.0.1:8081", fake, "127.0.0.1:8053", events, "127.0.0.1:9153", metrics,
			"127.0.0.1:8181", ready, ".:1053", ".:"+dns, "/etc/coredns/", w+"/etc/", "~/", w+"/home/",
			"$(pidof coredns-cip)", pid).Replace(s)
	}
	writeFile(t, filepath.Join(w, "corefile.example"), sub(string(corefile)))
	writeReadmeFiles(t, w, fake)
	env := append(cliEnv(), "PATH="+w+"/path:"+os.Getenv("PATH"), "HOME="+w+"/home", "CIP_API=http://"+events)
	if cred != nil {
		chownTree(t, w, nobody)
	}
	hc := &http.Client{Timeout: 5 * time.Second}

	ran := 0
	for _, readme := range cmds {
		if why := notRun(readme); why != "" {
			t.Logf("not run: %s (%s)", readme, why)
			continue
		}
		line := sub(readme)
		if strings.HasPrefix(readme, "coredns-cip check ") || strings.HasPrefix(readme, "bin/coredns-cip check ") {
			line += " --api-url http://" + fake
		}
		if readme == `coredns-cip blocks unblock 45.83.0.41 --reason "false positive"` {
			postJSON(t, hc, "http://"+events+"/v1/blocks", `{"ip":"45.83.0.41","ttl":"1h","reason":"README example"}`)
		}
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir, cmd.Env = w, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		ran++
		if strings.HasSuffix(line, "&") || strings.Contains(line, " -conf ") {
			startBackground(t, cmd)
			if strings.Contains(line, " -conf ") {
				server = cmd
				waitHTTP(t, hc, "http://"+ready+"/ready", readme)
			} else {
				waitHTTP(t, hc, "http://"+fake+"/_fake/stats", readme)
			}
			continue
		}
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		// check and backtrack exit 1 when they found something suspicious.
		finds := strings.Contains(readme, " check ") || strings.Contains(readme, " backtrack ")
		if err != nil && !(finds && code == 1) {
			t.Errorf("README: %s\nran: %s\nexit %d: %s", readme, line, code, out)
		}
		if strings.HasPrefix(readme, "kill -USR1") {
			waitHTTP(t, hc, "http://"+ready+"/ready", readme)
		}
	}
	t.Logf("ran %d commands of the READMEs", ran)
	if ran < 15 {
		t.Errorf("ran %d commands of the READMEs; want every one not listed in readmeNotRun", ran)
	}
}

func notRun(cmd string) string {
	for prefix, why := range readmeNotRun {
		if strings.HasPrefix(cmd, prefix) {
			return why
		}
	}
	return ""
}

// readmeCommands returns the commands of a README's ```sh and ~~~ sh
// blocks, continuation lines joined.
func readmeCommands(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in, cont := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "```sh" || line == "~~~ sh":
			in = true
		case in && (line == "```" || line == "~~~"):
			in = false
		case in && cont:
			cmds[len(cmds)-1] += " " + strings.TrimSpace(strings.TrimSuffix(line, `\`))
			cont = strings.HasSuffix(line, `\`)
		case in && strings.TrimSpace(line) != "":
			cmds = append(cmds, strings.TrimSuffix(line, `\`))
			cont = strings.HasSuffix(line, `\`)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// writeReadmeFiles writes the files the READMEs' commands read: the API
// key, a token, the firewall log of the backtrack examples (an old
// incident for the offline one, the last minutes for the one that asks the
// server) and the Corefile the offline backtrack reads, with a firewall
// hook that accepts every block.
func writeReadmeFiles(t *testing.T, w, fake string) {
	t.Helper()
	writeFile(t, filepath.Join(w, "criminalip_api_key.json"), `{"api_key": "demo-key"}`)
	writeFile(t, filepath.Join(w, "etc", "events.token"), "readme-token\n")
	writeFile(t, filepath.Join(w, "etc", "Corefile"), fmt.Sprintf(`. {
    cipvalidate {
        api_key demo-key
        api_url http://%s
        state %s
        hook exec %s {ip} {ttl}
    }
}
`, fake, filepath.Join(w, "backtrack-state"), filepath.Join(w, "fw-block")))
	writeFile(t, filepath.Join(w, "fw-block"), "#!/bin/sh\nexit 0\n")
	if err := os.Chmod(filepath.Join(w, "fw-block"), 0o755); err != nil {
		t.Fatal(err)
	}
	line := func(at time.Time, dst string, port int) string {
		return fmt.Sprintf("%s fw1 kernel: [12345.678901] CIP-OUT IN=eth1 OUT=eth0 SRC=10.1.2.3 DST=%s LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF PROTO=TCP SPT=51234 DPT=%d WINDOW=64240 RES=0x00 SYN URGP=0\n",
			at.Format("2006-01-02T15:04:05.000000-07:00"), dst, port)
	}
	incident := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	now := time.Now()
	writeFile(t, filepath.Join(w, "fw.log"), line(incident.Add(-2*time.Minute), "45.83.0.52", 9001)+
		line(incident.Add(-2*time.Minute), "45.83.0.99", 3389)+line(incident.Add(-time.Minute), "45.83.0.10", 22)+
		line(now.Add(-2*time.Minute), "45.83.0.99", 8443)+line(now.Add(-time.Minute), "45.83.0.21", 8443))
}

// startBackground starts cmd in a process group of its own, killed at
// cleanup.
func startBackground(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(cmd.Args, " "), out)
		}
	})
}

func waitHTTP(t *testing.T, hc *http.Client, url, what string) {
	t.Helper()
	waitFor(t, what+" answering "+url, func() (bool, string) {
		resp, err := hc.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

func postJSON(t *testing.T, hc *http.Client, url, body string) {
	t.Helper()
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s %s: %s", url, body, resp.Status)
	}
}

// chownTree gives dir and everything under it to uid (and its group), and
// lets others into dir: t.TempDir's parent is root's alone, so dir is
// reached by its full path only.
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
