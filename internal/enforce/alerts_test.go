package enforce_test

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/risk"
)

// startAlerts starts an engine with a watch, so that events tag.
func (f *engineFixture) startAlerts() *enforce.Engine {
	f.t.Helper()
	e := enforce.New(f.t.Name(), enforce.Config{
		APIKey: "unit", APIURL: "http://127.0.0.1:9", Policy: risk.DefaultPolicy(),
		Retain: 15 * time.Minute, Window: 5 * time.Minute, Watch: 10 * time.Minute,
		BlockPolicy: blocks.Policy{TTL: time.Hour, Factor: 2, Max: 8 * time.Hour},
		StateDir:    f.dir, AuditPath: filepath.Join(f.dir, "audit.log"), Now: f.clock.Now,
	})
	if err := e.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(e.Stop)
	return e
}

// auditEvents returns the audit log's event lines.
func (f *engineFixture) auditEvents() []struct {
	Client, Ref, Detail string
	Labels              map[string]string
} {
	f.t.Helper()
	file, err := os.Open(filepath.Join(f.dir, "audit.log"))
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var out []struct {
		Client, Ref, Detail string
		Labels              map[string]string
	}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var l struct {
			Kind, Client, Ref, Detail string
			Labels                    map[string]string
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			f.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if l.Kind == "event" {
			out = append(out, struct {
				Client, Ref, Detail string
				Labels              map[string]string
			}{l.Client, l.Ref, l.Detail, l.Labels})
		}
	}
	return out
}

func alertRecord(src, dst string, sev int) connlog.Record {
	return connlog.Record{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), DPort: 80, Proto: "tcp",
		Alert: connlog.Alert{Signature: "ET MALWARE Win32/Zeus CnC\n(forged)", SignatureID: 2018358, Severity: sev}}
}

// An alert tags its internal endpoint, the source of an outbound alert or
// the destination of an inbound one, as an event with the signature as
// its type and ref and Suricata's severity mapped; it backtracks the
// client's window. Two public or two internal endpoints tag nothing.
func TestAlertTagsInternalEndpoint(t *testing.T) {
	f := newFixture(t)
	e := f.startAlerts()
	now := f.clock.Now()
	e.Connection(netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("45.83.0.21"), 443, now.Add(-time.Minute))

	id, ok := e.Alert(alertRecord("10.1.2.3", "45.83.0.10", 1), now)
	if !ok || id == "" || !e.Tagged(netip.MustParseAddr("10.1.2.3"), now) {
		t.Fatalf("outbound alert: id %q tagged %v; want 10.1.2.3 tagged", id, ok)
	}
	if _, ok := e.Alert(alertRecord("45.83.0.99", "10.1.2.4", 2), now); !ok || !e.Tagged(netip.MustParseAddr("10.1.2.4"), now) {
		t.Error("inbound alert did not tag its internal destination 10.1.2.4")
	}
	for _, r := range []connlog.Record{alertRecord("45.83.0.98", "45.83.0.99", 1), alertRecord("10.1.2.5", "10.1.2.6", 1)} {
		if _, ok := e.Alert(r, now); ok || e.Tagged(r.Src, now) || e.Tagged(r.Dst, now) {
			t.Errorf("alert %s -> %s tagged an endpoint", r.Src, r.Dst)
		}
	}
	if got := len(e.API().Clients()); got != 2 {
		t.Errorf("%d clients tagged, want 2", got)
	}
	evs := f.auditEvents()
	if len(evs) != 2 {
		t.Fatalf("audit holds %d events, want 2: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Client != "10.1.2.3" || ev.Detail != "type ids.et-malware-win32-zeus-cnc-forged severity high" ||
		ev.Ref != "sid:2018358 ET MALWARE Win32/Zeus CnC?(forged)" || ev.Labels["signature"] != `ET MALWARE Win32/Zeus CnC\n(forged)` || ev.Labels["signature_id"] != "2018358" {
		t.Errorf("audit event = %+v", ev)
	}
	if evs[1].Detail != "type ids.et-malware-win32-zeus-cnc-forged severity medium" {
		t.Errorf("severity 2: audit detail %q", evs[1].Detail)
	}
	var submitted uint64
	for _, n := range e.Queue().Stats().Submitted {
		submitted += n
	}
	if submitted == 0 {
		t.Error("the alert's window was not backtracked: nothing queued")
	}
}

// A client alerting again within AlertDedupe only has its tag extended:
// no second event; past it, a new event.
func TestAlertRepeatExtendsTag(t *testing.T) {
	f := newFixture(t)
	e := f.startAlerts()
	t0 := f.clock.Now()
	if _, ok := e.Alert(alertRecord("10.1.2.3", "45.83.0.10", 3), t0); !ok {
		t.Fatal("first alert did not tag")
	}
	f.clock.Set(t0.Add(30 * time.Second))
	if id, ok := e.Alert(alertRecord("10.1.2.3", "45.83.0.10", 3), f.clock.Now()); !ok || id != "" {
		t.Fatalf("repeat alert: id %q tagged %v; want only the tag extended", id, ok)
	}
	if tags := e.API().Clients(); len(tags) != 1 || !tags[0].Until.Equal(t0.Add(30*time.Second+10*time.Minute)) {
		t.Errorf("tag after the repeat = %+v, want until 10m after it", tags)
	}
	f.clock.Set(t0.Add(enforce.AlertDedupe + 30*time.Second))
	if id, _ := e.Alert(alertRecord("10.1.2.3", "45.83.0.10", 3), f.clock.Now()); id == "" {
		t.Error("an alert past AlertDedupe made no new event")
	}
	if n := len(f.auditEvents()); n != 2 {
		t.Errorf("%d audit events, want 2 (the repeat within a minute is none)", n)
	}
}
