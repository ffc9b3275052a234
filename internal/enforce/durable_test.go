package enforce

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// statsRecorder keeps the last sweep's Stats.
type statsRecorder struct {
	nopObserver
	mu     sync.Mutex
	last   Stats
	errors uint64 // StateWriteErrors summed over every sweep
}

func (r *statsRecorder) Swept(s Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = s
	r.errors += s.StateWriteErrors
}

func startDurable(t *testing.T, obs Observer) (*Engine, string, *testclock.Clock) {
	t.Helper()
	dir := t.TempDir()
	clock := testclock.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	e := New(t.Name(), Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour},
		StateDir:    dir, AuditPath: filepath.Join(dir, "audit.log"), Now: clock.Now, Observer: obs,
	})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e, dir, clock
}

func suspiciousVerdict(ip string, now time.Time) verdicts.Verdict {
	return verdicts.Verdict{IP: netip.MustParseAddr(ip), Outcome: verdicts.Suspicious, Decision: verdicts.NewDecisionID(),
		Reasons: []risk.Reason{{Factor: risk.Score, Detail: "inbound Critical"}}, Score: "Critical",
		Checked: now, Expires: now.Add(24 * time.Hour)}
}

// onDisk copies the state file, as a kill -9 would leave it now, and
// returns the keys of kind that the copy holds.
func onDisk(t *testing.T, dir string, kind state.Kind, now time.Time) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	if err := os.WriteFile(filepath.Join(crashed, state.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := state.Open(crashed, state.Options{Now: func() time.Time { return now }, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Load(kind)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key)
	}
	return keys
}

// auditDetails returns "kind ip: detail" of every audit line in dir.
func auditDetails(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		var e struct{ Kind, IP, Detail string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e.Kind+" "+e.IP+": "+e.Detail)
	}
	return out
}

// A block's audit line is written, and an admin API change acknowledged,
// only once it is on disk: the file as it is at that moment holds it,
// without waiting for the writer's next batch.
func TestAcknowledgedChangesAreOnDisk(t *testing.T) {
	e, dir, clock := startDurable(t, nil)
	now := clock.Now()
	e.Decide(suspiciousVerdict("45.83.0.21", now), validate.Job{IP: netip.MustParseAddr("45.83.0.21")})
	if got := auditDetails(t, dir); !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "block 45.83.0.21") }) {
		t.Fatalf("audit lines %q, want the block of 45.83.0.21", got)
	}
	if got := onDisk(t, dir, kindBlocks, now); !slices.Equal(got, []string{"45.83.0.21"}) {
		t.Errorf("blocks on disk once the block is audited: %v, want 45.83.0.21", got)
	}

	api := e.API()
	if err := api.Durably(func() {
		_, _ = api.Allow(adminapi.AllowRequest{Value: "198.51.100.7", Until: now.Add(time.Hour), Actor: "test"})
	}); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, dir, kindAllow, now); !slices.Equal(got, []string{"198.51.100.7"}) {
		t.Errorf("allowlist on disk once the allow is acknowledged: %v, want 198.51.100.7", got)
	}
	if err := api.Durably(func() { api.Unblock(netip.MustParseAddr("45.83.0.21"), "test", "fp") }); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, dir, kindBlocks, now); len(got) != 0 {
		t.Errorf("blocks on disk once the unblock is acknowledged: %v, want none", got)
	}
	if err := api.Health(); err != nil {
		t.Errorf("Health = %v, want nil", err)
	}
}

// When the state directory stops taking writes, nothing is acknowledged:
// an API change gets the error, the engine is unhealthy and its sweep says
// so, and a block is still enforced but its audit line says it is not on
// disk.
func TestWriteFailuresAreNotAcknowledged(t *testing.T) {
	obs := &statsRecorder{}
	e, dir, clock := startDurable(t, obs)
	now := clock.Now()
	if err := e.st.store.Close(); err != nil { // every commit now fails
		t.Fatal(err)
	}

	api := e.API()
	err := api.Durably(func() {
		_, _ = api.Allow(adminapi.AllowRequest{Value: "198.51.100.7", Actor: "test"})
	})
	if err == nil {
		t.Fatal("an allow was acknowledged although the state directory takes no writes")
	}
	if len(api.Allowlist()) != 1 {
		t.Errorf("allowlist = %v, want the entry in memory all the same", api.Allowlist())
	}
	if err := api.Health(); err == nil {
		t.Error("Health = nil while writes fail")
	}

	e.Decide(suspiciousVerdict("45.83.0.22", now), validate.Job{IP: netip.MustParseAddr("45.83.0.22")})
	if got := api.Blocks(); len(got) != 1 {
		t.Errorf("blocks = %+v, want 45.83.0.22 enforced all the same", got)
	}
	lines := auditDetails(t, dir)
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "block 45.83.0.22") && strings.Contains(l, "not on disk")
	}) {
		t.Errorf("audit lines %q, want the block's saying it is not on disk", lines)
	}

	e.Sweep(now)
	obs.mu.Lock()
	s, failed := obs.last, obs.errors
	obs.mu.Unlock()
	if !s.Stateful || s.StateWritable || failed == 0 {
		t.Errorf("sweep %+v (%d failed commits), want a state directory that is not writable and its failed commits", s, failed)
	}
}

// The disk follows memory when a block is lifted while it is being made:
// an operator who unblocks an IP the moment it shows in GET /v1/blocks
// must not find it blocked again after a restart.
func TestUnblockRacingTheBlock(t *testing.T) {
	e, dir, clock := startDurable(t, nil)
	now := clock.Now()
	api := e.API()
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{45, 83, byte(i / 250), byte(1 + i%250)})
		var wg sync.WaitGroup
		wg.Go(func() { e.Decide(suspiciousVerdict(ip.String(), now), validate.Job{IP: ip}) })
		// DELETE /v1/blocks/{ip} until it finds the block.
		for lifted := false; !lifted; {
			_, lifted = api.Unblock(ip, "test", "racing")
		}
		wg.Wait()
	}
	if err := e.st.writer.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, dir, kindBlocks, now); len(got) != 0 {
		t.Errorf("%d blocks on disk after every one was unblocked (%v): a restart would bring them back", len(got), got)
	}
}
