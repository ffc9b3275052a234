package enforce_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

// An unblock a webhook could not take (it was down) is on disk once the
// API would acknowledge it, and a server started on that disk (as a
// kill -9 leaves it) sends it when the webhook is back: the SOAR does not
// keep a block the node lifted. A block it never acknowledged is sent
// again too; one it took is not.
func TestHookPendingSurvivesAKill(t *testing.T) {
	got := &hookRecorder{}
	// One SOAR, reached by two URLs: the killed engine's, which stays
	// down once it was killed (a dead process sends nothing), and the
	// restarted one's.
	var up, killed atomic.Bool
	up.Store(true)
	soar := func(dead *atomic.Bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !up.Load() || dead.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			got.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	f := newFixture(t)
	client := netip.MustParseAddr("10.1.2.3")
	e := f.startHooked(t.Name()+"-killed", f.webhook(soar(&killed), "webhook soar"))
	defer e.Stop()
	e.Decide(f.suspicious("45.83.0.21"), validate.Job{IP: netip.MustParseAddr("45.83.0.21"), Client: client})
	got.waitFor(t, "block 45.83.0.21")

	up.Store(false)
	api := e.API()
	if err := api.Durably(func() {
		if _, ok := e.Unblock(netip.MustParseAddr("45.83.0.21"), "alice", "false positive"); !ok {
			t.Error("Unblock failed")
		}
		e.Decide(f.suspicious("45.83.0.22"), validate.Job{IP: netip.MustParseAddr("45.83.0.22"), Client: client})
	}); err != nil {
		t.Fatal(err)
	}

	// What a kill -9 leaves: the state file as committed now. The killed
	// engine's hook keeps failing meanwhile; the restarted one, on the same
	// hook line, finds the SOAR up.
	f.dir = killedCopy(t, f.dir)
	killed.Store(true)
	before := got.count()
	up.Store(true)
	restarted := f.startHooked(t.Name()+"-restarted", f.webhook(soar(new(atomic.Bool)), "webhook soar"))
	defer restarted.Stop()
	got.waitFor(t, "unblock 45.83.0.21 alice")
	got.waitFor(t, "block 45.83.0.22 cipvalidate")
	flush(t, restarted)
	got.mu.Lock()
	sent := slices.Clone(got.changes[before:])
	got.mu.Unlock()
	if slices.Contains(sent, "block 45.83.0.21 cipvalidate") {
		t.Errorf("after the restart the SOAR got %q: the lifted block again", sent)
	}
}

// killedCopy copies the state file of dir into a new directory, as a
// kill -9 would leave it now.
func killedCopy(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	if err := os.WriteFile(filepath.Join(crashed, state.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return crashed
}
