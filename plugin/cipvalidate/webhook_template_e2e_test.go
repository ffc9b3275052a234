package cipvalidate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hecReceiver is a Splunk HTTP Event Collector: it wants the token in
// Authorization and keeps the events of each POST.
type hecReceiver struct {
	token  string
	mu     sync.Mutex
	events []map[string]any
	errs   []string
}

func (h *hecReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Header.Get("Authorization") != "Splunk "+h.token || r.Header.Get("X-Tenant") != "soc-1" {
		h.errs = append(h.errs, "wrong headers")
		http.Error(w, `{"text":"Invalid token","code":4}`, http.StatusForbidden)
		return
	}
	d := json.NewDecoder(bytes.NewReader(body))
	for {
		var env map[string]any
		err := d.Decode(&env)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			h.errs = append(h.errs, fmt.Sprintf("not JSON: %v: %s", err, body))
			http.Error(w, `{"text":"Invalid data format","code":6}`, http.StatusBadRequest)
			return
		}
		h.events = append(h.events, env)
	}
	fmt.Fprint(w, `{"text":"Success","code":0}`)
}

func (h *hecReceiver) got() ([]map[string]any, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...), append([]string(nil), h.errs...)
}

// A block reaches Splunk HEC through the shipped template: the token from a
// header_file, an inline header, the event envelope; the status shows
// neither header's value.
func TestE2EWebhookTemplateSplunkHEC(t *testing.T) {
	dir := t.TempDir()
	hec := &hecReceiver{token: "hec-tok3n-0123"}
	srv := httptest.NewServer(hec)
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(dir, "hec.token")
	if err := os.WriteFile(tokenFile, []byte("Splunk "+hec.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := filepath.Abs("../../contrib/templates/splunk-hec.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, fmt.Sprintf("hook webhook %s/services/collector/event header_file Authorization %s header X-Tenant soc-1 template %s",
		srv.URL, tokenFile, tmpl))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	v := e.waitVerdict("45.83.0.21")

	deadline := time.Now().Add(15 * time.Second)
	events, errs := hec.got()
	for len(events) == 0 && len(errs) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		events, errs = hec.got()
	}
	if len(errs) > 0 || len(events) != 1 {
		t.Fatalf("HEC got %v, errors %v; want one event", events, errs)
	}
	ev, _ := events[0]["event"].(map[string]any)
	if events[0]["sourcetype"] != "coredns-cip:decision" || ev["decision"] != v.Decision || ev["action"] != "block" || ev["ip"] != "45.83.0.21" {
		t.Errorf("HEC event %v, want the block of 45.83.0.21 (decision %s)", events[0], v.Decision)
	}
	if st := e.get(t, "/v1/status"); strings.Contains(st, "tok3n") || strings.Contains(st, "soc-1") {
		t.Errorf("the status shows a header value: %s", st)
	}
}
