package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// TestHookUnblockSurvivesKill: a SOAR webhook is down when an operator
// unblocks an IP; the server is killed with SIGKILL and restarted while
// the SOAR is back: the SOAR gets the unblock, so it does not keep a
// block the resolver lifted.
func TestHookUnblockSurvivesKill(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	var mu sync.Mutex
	var got []string
	soar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Changes []struct{ Action, IP string }
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, c := range body.Changes {
			got = append(got, c.Action+" "+c.IP)
		}
		mu.Unlock()
	}))
	defer soar.Close()
	received := func(want string) func() (bool, string) {
		return func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(got, want), fmt.Sprint(got)
		}
	}

	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, blockTTL: "2h", options: []string{"hook webhook " + soar.URL}})
	srv.blockBoth()
	waitFor(t, "the SOAR to get the block of "+badIP, received("block "+badIP))

	up.Store(false)
	if status := srv.unblockStatus(badIP); status != http.StatusOK {
		t.Fatalf("unblock %s: status %d, want 200", badIP, status)
	}
	srv.kill()
	up.Store(true)
	srv.start()
	waitFor(t, "the SOAR to get the unblock of "+badIP+" after the restart", received("unblock "+badIP))
}
