package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// TestFullDisk runs the server with its state directory on a tiny tmpfs,
// mounted in a private mount namespace, and fills it: changes are answered
// 503 instead of 2xx, /healthz and readiness turn unhealthy, the metrics
// say so and the log says it once; what was acknowledged survives a kill
// -9 all the same. Once space is freed the node is healthy again and
// every change it made while the disk was full is on disk.
func TestFullDisk(t *testing.T) {
	ns := privateTmpfs(t, "512k")
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "2h", metrics: true,
		stateDir: ns.dir, command: []string{"nsenter", "-t", strconv.Itoa(ns.pid), "-m", "--"}, root: ns.root})

	blocks := srv.blockBoth()
	acked := map[string]time.Time{} // tags acknowledged, by client
	for i := range 20 {
		client := fmt.Sprintf("10.60.0.%d", i)
		acked[client] = srv.tagUntil(client)
	}
	filler := ns.fill(t)

	// The disk is full: new tags no longer fit in the file.
	refused := 0
	for i := range 1000 {
		client := fmt.Sprintf("10.61.%d.%d", i/250, i%250)
		switch status, raw := srv.do("POST", "/v1/events", eventFor(client)); status {
		case http.StatusAccepted:
			acked[client] = untilOf(t, raw)
		case http.StatusServiceUnavailable:
			refused++
			if !strings.Contains(string(raw), "not on disk") {
				t.Fatalf("503 to an event on a full disk: %s, want it to say the change is not on disk", raw)
			}
		default:
			t.Fatalf("event on a full disk: %d %s, want 202 or 503", status, raw)
		}
	}
	if refused == 0 {
		t.Fatal("no event was refused: the state directory never filled up")
	}
	unblockedBad := srv.unblockStatus(badIP)
	srv.wantUnhealthy()
	waitFor(t, "the metrics of the full disk", func() (bool, string) {
		writable, ok := srv.metric("coredns_cipvalidate_state_writable")
		failed, _ := srv.metric("coredns_cipvalidate_state_write_errors_total")
		return ok && writable == 0 && failed > 0, fmt.Sprintf("writable %v, write errors %v", writable, failed)
	})
	if n := strings.Count(srv.out.String(), "writes failing"); n != 1 {
		t.Errorf("the log says %d times that writes fail, want once however many commits failed", n)
	}
	t.Logf("on the full disk: %d of 1000 events refused with 503, unblock answered %d", refused, unblockedBad)

	// What was acknowledged survives a kill -9 on the full disk.
	srv.kill()
	srv.start()
	tagged := srv.tagsUntil()
	for client, until := range acked {
		if got, ok := tagged[client]; !ok || !got.Equal(until) {
			t.Errorf("acknowledged tag of %s: %v (%v) after the restart, want until %s", client, got, ok, until)
		}
	}
	after := srv.blocks()
	if b, ok := after[torIP]; !ok || !b.Expires.Equal(blocks[torIP].Expires) {
		t.Errorf("block of %s after the restart: %+v, want it as before (expires %s)", torIP, b, blocks[torIP].Expires)
	}
	if _, ok := after[badIP]; ok == (unblockedBad == http.StatusOK) {
		t.Errorf("block of %s after the restart: %v, but its unblock was answered %d", badIP, ok, unblockedBad)
	}

	recovers(t, srv, filler)
}

// recovers makes changes on the full disk (made in memory, refused on
// disk), frees space and checks that the node is healthy again and that
// every one of them survives a kill -9.
func recovers(t *testing.T, srv *cipServer, filler string) {
	t.Helper()
	for i := range 200 {
		srv.do("POST", "/v1/events", eventFor(fmt.Sprintf("10.62.0.%d", i)))
	}
	unblockedTor := srv.unblockStatus(torIP)
	status, raw := srv.do("POST", "/v1/allow", map[string]string{"value": "198.18.200.2", "until": "3h"})
	t.Logf("still full after the restart: unblock answered %d, allow %d", unblockedTor, status)
	if status != http.StatusCreated && status != http.StatusServiceUnavailable {
		t.Fatalf("allow on a full disk: %d %s", status, raw)
	}
	srv.wantUnhealthy()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/healthz once space is freed", func() (bool, string) {
		status, body := srv.healthz()
		return status == http.StatusOK, fmt.Sprintf("%d %s", status, body)
	})
	if !strings.Contains(srv.out.String(), "writes succeeding again") {
		t.Error("the log does not say writes succeed again")
	}
	before := srv.tagsUntil()
	srv.kill()
	srv.start()
	tagged := srv.tagsUntil()
	for i := range 200 {
		client := fmt.Sprintf("10.62.0.%d", i)
		if got, ok := tagged[client]; !ok || !got.Equal(before[client]) {
			t.Errorf("tag of %s made on the full disk: %v (%v) after the restart, want until %s", client, got, ok, before[client])
		}
	}
	if _, ok := srv.blocks()[torIP]; ok {
		t.Errorf("%s is blocked again after the restart: its unblock on the full disk was lost", torIP)
	}
	var allow []struct{ Value string }
	srv.call("GET", "/v1/allow", nil, http.StatusOK, &allow)
	if len(allow) != 1 || allow[0].Value != "198.18.200.2" {
		t.Errorf("allowlist after the restart: %+v, want the entry added on the full disk", allow)
	}
	waitFor(t, "state_writable 1 after the restart", func() (bool, string) {
		writable, ok := srv.metric("coredns_cipvalidate_state_writable")
		return ok && writable == 1, fmt.Sprint(writable, ok)
	})
}

// mountNS is a private mount namespace, held by a process that sleeps in
// it, with a tmpfs mounted on dir.
type mountNS struct {
	pid  int
	dir  string
	root string // /proc/PID/root: the namespace's files seen from outside
}

// privateTmpfs mounts a tmpfs of size on a new directory, in a new mount
// namespace that only processes entering it see; it goes when the test
// ends. It skips the test where that cannot be done.
func privateTmpfs(t *testing.T, size string) *mountNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs in a private mount namespace needs root")
	}
	for _, tool := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (util-linux) to enter a private mount namespace: %v", tool, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=$1,mode=0700 cip-full-disk "$0" && echo mounted && exec sleep 600`, dir, size)
	var stderr strings.Builder
	holder.Stderr = &stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Skipf("cannot start unshare: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "mounted\n" {
		t.Skipf("cannot mount a tmpfs in a private mount namespace (%v): %s", err, stderr.String())
	}
	return &mountNS{pid: holder.Process.Pid, dir: dir, root: fmt.Sprintf("/proc/%d/root", holder.Process.Pid)}
}

// fill writes a file into the tmpfs until it is full, and returns its path.
func (ns *mountNS) fill(t *testing.T) string {
	t.Helper()
	path := ns.root + filepath.Join(ns.dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			return path
		}
	}
}

func eventFor(client string) map[string]string {
	return map[string]string{"client": client, "type": "edr.malware", "watch": "2h"}
}

func untilOf(t *testing.T, raw []byte) time.Time {
	t.Helper()
	var acc struct {
		TaggedUntil time.Time `json:"tagged_until"`
	}
	if err := json.Unmarshal(raw, &acc); err != nil || acc.TaggedUntil.IsZero() {
		t.Fatalf("event answer %s: %v, want tagged_until", raw, err)
	}
	return acc.TaggedUntil
}

// tagUntil posts an event for client, which must be acknowledged, and
// returns until when it is tagged.
func (s *cipServer) tagUntil(client string) time.Time {
	s.t.Helper()
	return untilOf(s.t, s.call("POST", "/v1/events", eventFor(client), http.StatusAccepted, nil))
}

// tagsUntil returns until when each client is tagged by an event.
func (s *cipServer) tagsUntil() map[string]time.Time {
	s.t.Helper()
	var list struct {
		Clients []struct {
			Client string
			Until  time.Time
		}
	}
	s.call("GET", "/v1/clients", nil, http.StatusOK, &list)
	out := make(map[string]time.Time, len(list.Clients))
	for _, c := range list.Clients {
		out[c.Client] = c.Until
	}
	return out
}

// unblockStatus asks to unblock ip and returns the status: 200 (on disk)
// or 503 (made, not on disk).
func (s *cipServer) unblockStatus(ip string) int {
	s.t.Helper()
	status, raw := s.do("DELETE", "/v1/blocks/"+ip, nil)
	if status != http.StatusOK && status != http.StatusServiceUnavailable {
		s.t.Fatalf("unblock %s: %d %s, want 200 or 503", ip, status, raw)
	}
	return status
}

// healthz returns the status and body of GET /healthz.
func (s *cipServer) healthz() (int, string) {
	s.t.Helper()
	status, raw := s.do("GET", "/healthz", nil)
	return status, string(raw)
}

// wantUnhealthy checks that /healthz and the ready endpoint say the node
// is unhealthy, /healthz with the reason.
func (s *cipServer) wantUnhealthy() {
	s.t.Helper()
	if status, body := s.healthz(); status != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		s.t.Errorf("/healthz on a full disk: %d %q, want 503 saying there is no space left", status, body)
	}
	resp, err := s.http.Get(s.readyURL)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "cipvalidate") {
		s.t.Errorf("/ready on a full disk: %d %q, want 503 naming cipvalidate", resp.StatusCode, body)
	}
}

// metric returns the value of an unlabelled metric, and whether it is
// exported.
func (s *cipServer) metric(name string) (float64, bool) {
	s.t.Helper()
	resp, err := s.http.Get(s.metricsURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
