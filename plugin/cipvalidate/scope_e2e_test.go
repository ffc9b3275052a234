package cipvalidate

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// scopedBlock is a block's reach as GET /v1/blocks shows it.
type scopedBlock struct {
	IP       string   `json:"ip"`
	Scope    string   `json:"scope"`
	Port     int      `json:"port"`
	Clients  []string `json:"clients"`
	Events   []string `json:"events"`
	Narrowed string   `json:"narrowed"`
}

func (e *e2e) blocks() []scopedBlock {
	e.t.Helper()
	var out []scopedBlock
	if code := e.api("GET", "/v1/blocks", nil, &out); code != http.StatusOK {
		e.t.Fatalf("GET /v1/blocks: %d", code)
	}
	return out
}

// waitBlock waits until ip's block lists want clients.
func (e *e2e) waitBlock(ip string, clients ...string) scopedBlock {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, b := range e.blocks() {
			if b.IP == ip && len(b.Clients) == len(clients) {
				got := slices.Clone(b.Clients)
				slices.Sort(got)
				if slices.Equal(got, clients) {
					return b
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no block of %s for %v after 15s: %+v", ip, clients, e.blocks())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One SSH connection from an untagged client to a host whose report shows
// OpenSSH (45.83.0.61, score Low) is validated but blocks nothing: OpenSSH
// is common among legitimate hosts, so it reaches tagged clients only. With
// the client tagged, it gets a client -> IP:22 block and its own answers
// rewritten; nobody else's.
func TestE2EScopeSSH(t *testing.T) {
	e := startE2E(t, "critical_ports 22")
	T := e.clock.Now()
	conn := []map[string]any{{"time": T.Add(-time.Minute).Format(time.RFC3339), "src": "127.0.0.7", "dst": "45.83.0.61", "dport": 22}}
	if code := e.api("POST", "/v1/connections", conn, nil); code != http.StatusOK {
		t.Fatalf("POST /v1/connections: %d", code)
	}
	if v := e.waitVerdict("45.83.0.61"); v.Outcome != "suspicious" {
		t.Fatalf("45.83.0.61: %+v, want suspicious (OpenSSH)", v)
	}
	if got := e.blocks(); len(got) != 0 {
		t.Errorf("an untagged client's SSH connection blocked %+v", got)
	}
	for _, client := range []string{"127.0.0.7", "127.0.0.8"} {
		if r := e.query(client, "ssh.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.61"}) {
			t.Errorf("untagged %s got %v, want the real answer", client, answerIPs(r))
		}
	}

	e.postEvent("127.0.0.7", T, "5m")
	b := e.waitBlock("45.83.0.61", "127.0.0.7")
	if b.Scope != "tagged" || b.Port != 22 {
		t.Errorf("block %+v, want scope tagged on port 22", b)
	}
	if r := e.query("127.0.0.7", "ssh.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("tagged 127.0.0.7 got %v, want the sinkhole", answerIPs(r))
	}
	if r := e.query("127.0.0.8", "ssh.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.61"}) {
		t.Errorf("untagged 127.0.0.8 got %v, want the real answer", answerIPs(r))
	}
}

// Two tagged clients reached the same proxy; the second event is answered
// from the cache, and still gives its client a finding and a place on the
// block: DNS rewriting cannot help a host that already holds the address.
func TestE2EScopeCachedFinding(t *testing.T) {
	e := startE2E(t, "")
	T := e.clock.Now()
	e.query("127.0.0.11", "proxy.example.org", dns.TypeA)
	e.query("127.0.0.12", "proxy.example.org", dns.TypeA)
	e.postEvent("127.0.0.11", T, "5m")
	e.waitBlock("45.83.0.53", "127.0.0.11")
	ev := e.postEvent("127.0.0.12", T, "5m")
	if len(ev.Found) != 1 || ev.Found[0].Result != "cached" {
		t.Fatalf("second event found %+v, want 45.83.0.53 cached", ev.Found)
	}
	b := e.waitBlock("45.83.0.53", "127.0.0.11", "127.0.0.12")
	if b.Scope != "tagged" || len(b.Events) != 2 {
		t.Errorf("block %+v, want scope tagged, two clients and two events", b)
	}
	if n := e.fake.CallsFor("45.83.0.53"); n != 1 {
		t.Errorf("%d API calls for 45.83.0.53, want 1", n)
	}
}

// A Critical reputation reaches everyone: the second client, never tagged,
// gets the sinkhole too, and the block is IP-wide.
func TestE2EScopeEveryone(t *testing.T) {
	e := startE2E(t, "")
	e.query("127.0.0.21", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.21", e.clock.Now(), "5m")
	b := e.waitBlock("45.83.0.21", "127.0.0.21")
	if b.Scope != "everyone" {
		t.Errorf("block %+v, want scope everyone", b)
	}
	if r := e.query("127.0.0.22", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("untagged 127.0.0.22 got %v, want the sinkhole", answerIPs(r))
	}
}

// `scope everyone all` is the original tool's behaviour: OpenSSH alone
// blocks the IP for everyone.
func TestE2EScopeEveryoneAll(t *testing.T) {
	e := startE2E(t, "scope everyone all")
	e.query("127.0.0.31", "ssh.example.org", dns.TypeA)
	e.postEvent("127.0.0.31", e.clock.Now(), "5m")
	if b := e.waitBlock("45.83.0.61", "127.0.0.31"); b.Scope != "everyone" {
		t.Errorf("block %+v, want scope everyone", b)
	}
	if r := e.query("127.0.0.32", "ssh.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("untagged 127.0.0.32 got %v, want the sinkhole", answerIPs(r))
	}
}

// A Critical IP whose report lists thousands of domains is a shared front:
// no IP-wide block, the name that led to it is sinkholed for everyone, and
// another name on the same IP is not.
func TestE2EScopeSharedIP(t *testing.T) {
	e := startE2E(t, "")
	body, err := os.ReadFile("../../internal/fakeapi/fixtures/score_critical.json")
	if err != nil {
		t.Fatal(err)
	}
	var report map[string]any
	if err := json.Unmarshal(body, &report); err != nil {
		t.Fatal(err)
	}
	report["ip"] = "45.83.0.90"
	report["domain"] = map[string]any{"count": 2500, "data": []any{map[string]any{"domain": "cdn.example.org"}}}
	shared, _ := json.Marshal(report)
	e.fake.Serve("45.83.0.90", shared)

	e.query("127.0.0.41", "cdn.example.org", dns.TypeA)
	e.postEvent("127.0.0.41", e.clock.Now(), "5m")
	b := e.waitBlock("45.83.0.90", "127.0.0.41")
	if b.Scope != "tagged" || !strings.Contains(b.Narrowed, "shared: 2500 domains") {
		t.Errorf("block %+v, want tagged pairs only, narrowed because the IP is shared", b)
	}
	if edl := e.get(t, "/v1/blocklist.txt"); strings.Contains(edl, "45.83.0.90") {
		t.Errorf("a shared IP is in the EDL: %q", edl)
	}
	if r := e.query("127.0.0.42", "cdn.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("the name that led to it, untagged client: %v, want the sinkhole", answerIPs(r))
	}
	for _, client := range []string{"127.0.0.41", "127.0.0.42"} {
		if r := e.query(client, "site2.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.90"}) {
			t.Errorf("another name on the shared IP, client %s: %v, want the real answer", client, answerIPs(r))
		}
	}
}
