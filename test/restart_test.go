package test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/state"
)

// TestRestartAfterKill kills the server with SIGKILL and restarts it on the
// same state directory: decisions come back with what was left of their
// time, expired ones do not.
func TestRestartAfterKill(t *testing.T) {
	t.Run("keeps decisions", testRestartKeepsDecisions)
	t.Run("drops expired", testRestartDropsExpired)
}

func testRestartKeepsDecisions(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "2h"})

	before := srv.blockBoth()
	wantIPs := []string{badIP, torIP}
	if got := srv.blocklist(); !slices.Equal(got, wantIPs) {
		t.Fatalf("blocklist.txt before the restart = %v, want %v", got, wantIPs)
	}
	if got := srv.taggedClients(); !slices.Contains(got, taggedClient) {
		t.Fatalf("GET /v1/clients before the restart = %v, want %s in it", got, taggedClient)
	}
	srv.call("POST", "/v1/allow", map[string]string{"value": "45.83.0.99", "until": "3h", "reason": "test"}, http.StatusCreated, nil)

	srv.waitDurable()
	callsBefore := fakeCallsByIP(t, fake)
	srv.kill()
	srv.start()

	after := srv.blocks()
	if len(after) != len(before) {
		t.Errorf("after the restart, blocks = %v, want those of %v", after, wantIPs)
	}
	for _, ip := range wantIPs {
		b, a := before[ip], after[ip]
		if a.Decision != b.Decision {
			t.Errorf("%s: decision %q after the restart, want %q", ip, a.Decision, b.Decision)
		}
		if a.RemainingSeconds > b.RemainingSeconds || a.RemainingSeconds <= b.RemainingSeconds-60 {
			t.Errorf("%s: %ds remaining after the restart, want at most the %ds before and less than a minute fewer",
				ip, a.RemainingSeconds, b.RemainingSeconds)
		}
	}
	if got := srv.blocklist(); !slices.Equal(got, wantIPs) {
		t.Errorf("blocklist.txt after the restart = %v, want %v", got, wantIPs)
	}
	if got := srv.taggedClients(); !slices.Contains(got, taggedClient) {
		t.Errorf("GET /v1/clients after the restart = %v, want %s still tagged", got, taggedClient)
	}
	var allow []struct{ Value string }
	srv.call("GET", "/v1/allow", nil, http.StatusOK, &allow)
	if !slices.ContainsFunc(allow, func(a struct{ Value string }) bool { return a.Value == "45.83.0.99" }) {
		t.Errorf("GET /v1/allow after the restart = %+v, want 45.83.0.99 in it", allow)
	}

	// The restored suspicious verdict protects a client that was never
	// tagged, without asking the API again.
	r := queryA(t, srv.dnsAddr, otherClient, badName)
	if got := answerA(t, r); !slices.Equal(got, []string{"0.0.0.0"}) {
		t.Errorf("%s from %s after the restart: A %v, want the sinkhole 0.0.0.0", badName, otherClient, got)
	}
	callsAfter := fakeCallsByIP(t, fake)
	for _, ip := range wantIPs {
		if callsAfter[ip] != callsBefore[ip] {
			t.Errorf("%s: %d API calls after the restart, want none (the verdict was kept)", ip, callsAfter[ip]-callsBefore[ip])
		}
	}

	entries := srv.auditEntries()
	for _, ip := range wantIPs {
		for _, kind := range []string{"verdict", "block"} {
			if !hasAudit(entries, kind, ip, before[ip].Decision) {
				t.Errorf("audit.log has no %q line for %s with decision %s: %+v", kind, ip, before[ip].Decision, entries)
			}
		}
	}
}

func testRestartDropsExpired(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "3s"})

	blocks := srv.blockBoth()
	srv.waitDurable()
	srv.kill()

	// The blocks were on disk when the server died (read with a clock set
	// to when they were made, as the expiry may have passed already).
	made := blocks[badIP].Created
	if got := storedBlocks(t, srv.stateDir, made); !slices.Equal(got, []string{badIP, torIP}) {
		t.Fatalf("stored blocks at the kill = %v, want %s and %s", got, badIP, torIP)
	}

	// Wait for time to pass: both blocks' three seconds.
	last := blocks[badIP].Expires
	if e := blocks[torIP].Expires; e.After(last) {
		last = e
	}
	waitFor(t, "the blocks' expiry", func() (bool, string) {
		return time.Now().After(last), fmt.Sprintf("now %s, expiry %s", time.Now(), last)
	})

	srv.start()
	if got := srv.blocks(); len(got) != 0 {
		t.Errorf("after the restart, GET /v1/blocks = %v, want none: they expired while the server was down", got)
	}
	if got := srv.blocklist(); len(got) != 0 {
		t.Errorf("after the restart, blocklist.txt = %v, want it empty", got)
	}
	srv.kill()
	if got := storedBlocks(t, srv.stateDir, made); len(got) != 0 {
		t.Errorf("after the restart, the state file still holds the expired blocks of %v", got)
	}
}

// storedBlocks opens the state directory of a stopped server and returns
// the IPs of the block records it holds that are live at now, sorted.
func storedBlocks(t *testing.T, dir string, now time.Time) []string {
	t.Helper()
	st, err := state.Open(dir, state.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Load(state.KindBlocks)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, r := range recs {
		ips = append(ips, r.Key)
	}
	slices.Sort(ips)
	return ips
}
