package cipvalidate

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/nftset"
	"github.com/coredns-cip/coredns-cip/internal/testclock"

	"github.com/miekg/dns"
)

// redisServer runs a private redis-server on a unix socket.
type redisServer struct {
	sock string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, dir string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (.ci/run installs it)")
	}
	r := &redisServer{sock: filepath.Join(dir, "redis.sock")}
	r.cmd = exec.Command(bin, "--port", "0", "--unixsocket", r.sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(r.sock); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not create its socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
	os.Remove(r.sock)
}

// node is one resolver of the fleet.
type node struct {
	name string
	*e2e
}

// startFleet starts n in-process nodes sharing one fake API and one Redis.
func startFleet(t *testing.T, r *redisServer, names []string, extra map[string]string) []*node {
	t.Helper()
	RegisterDirective()
	fake, apiURL := fakeapitest.Start(t, fakeapitest.WithKey("k"))
	clock := testclock.New(time.Now())
	dir := t.TempDir()
	db := filepath.Join(dir, "db.example.org")
	os.WriteFile(db, []byte(e2eZone), 0o600)
	prefix := fmt.Sprintf("t%d:", time.Now().UnixNano())
	var nodes []*node
	for _, name := range names {
		corefile := fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key k
        api_url %s
        rate 1000 1000
        events 127.0.0.1:0
        redis unix://%s prefix %s node %s
%s
    }
    file %s example.org
}
`, apiURL, r.sock, prefix, name, extra[name], db)
		inst, udp, _ := coretest.Start(t, corefile)
		n := &node{name: name, e2e: &e2e{t: t, fake: fake, inst: inst, dnsAddr: udp, corefile: corefile, clock: clock}}
		n.plugin().eng.SetClock(clock.Now)
		n.apiBase = "http://" + n.plugin().api.Addr()
		nodes = append(nodes, n)
	}
	return nodes
}

func (n *node) plugin() *CIPValidate {
	var found *CIPValidate
	instances.Range(func(key, v any) bool {
		if strings.HasSuffix(key.(string), " node="+n.name) {
			found = v.(*CIPValidate)
		}
		return found == nil
	})
	if found == nil {
		n.t.Fatalf("node %s is not running", n.name)
	}
	return found
}

// eventually polls cond until it holds, failing after 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) tagged(client string) bool {
	var list []struct {
		Client string `json:"client"`
	}
	n.api("GET", "/v1/clients", nil, &list)
	return slices.ContainsFunc(list, func(c struct {
		Client string `json:"client"`
	}) bool {
		return c.Client == client
	})
}

func (n *node) blocked(ip string) bool {
	return strings.Contains(n.get(n.t, "/v1/blocklist.txt"), ip+"\n")
}

// TestFleet: an event posted to node A tags the client on B too; the same
// IP asked on both nodes at once costs one API call; a block reaches both;
// an unblock on B removes the element from A's nftables set (in a network
// namespace of the test's own); GET /v1/events/{id} on B shows what both
// nodes found.
func TestFleet(t *testing.T) {
	dir := t.TempDir()
	r := startRedis(t, dir)
	var ns *netnstest.NetNS
	extra := map[string]string{}
	if os.Geteuid() == 0 {
		ns = netnstest.New(t)
		extra["A"] = "hook nftables inet cip blocked4 blocked6 create netns " + ns.Name
	}
	nodes := startFleet(t, r, []string{"A", "B"}, extra)
	a, b := nodes[0], nodes[1]

	// Both nodes saw the client resolve names before the event.
	a.query("127.0.0.2", "bad.example.org", dns.TypeA)
	b.query("127.0.0.2", "tor.example.org", dns.TypeA)
	ev := a.postEvent("127.0.0.2", a.clock.Now(), "5m")
	eventually(t, "B tags the client of A's event", func() bool { return b.tagged("127.0.0.2") })

	// Each node backtracked its own window: A found bad, B found tor.
	a.waitVerdict("45.83.0.21")
	b.waitVerdict("45.83.0.52")
	var detail struct {
		Fleet map[string]struct {
			Found []struct {
				IP string `json:"ip"`
			} `json:"found"`
		} `json:"fleet"`
	}
	eventually(t, "B reports the whole fleet's findings", func() bool {
		detail.Fleet = nil
		b.api("GET", "/v1/events/"+ev.ID, nil, &detail)
		return len(detail.Fleet) == 2
	})
	if f := detail.Fleet["B"].Found; len(f) != 1 || f[0].IP != "45.83.0.52" {
		t.Errorf("B's report %+v", detail.Fleet)
	}

	// One API call per IP for the whole fleet.
	a.fake.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.query("127.0.0.2", "multi.example.org", dns.TypeA) })
	}
	wg.Wait()
	a.waitVerdict("45.83.0.71")
	b.waitVerdict("45.83.0.71")
	if calls := a.fake.CallsFor("45.83.0.71"); calls != 1 {
		t.Errorf("45.83.0.71 asked on both nodes at once cost %d API calls, want 1", calls)
	}
	a.fake.SetDelay(0)

	// Blocks are fleet-wide.
	for _, ip := range []string{"45.83.0.21", "45.83.0.52", "45.83.0.71"} {
		for _, n := range nodes {
			eventually(t, n.name+" lists "+ip, func() bool { return n.blocked(ip) })
		}
	}
	if ns != nil {
		waitElements(t, ns, false, func(els []nftset.Element) bool {
			return slices.ContainsFunc(els, func(e nftset.Element) bool { return e.IP == netip.MustParseAddr("45.83.0.52") })
		})
	}
	if code := b.api("DELETE", "/v1/blocks/45.83.0.52?actor=bob&reason=false+positive", nil, nil); code != http.StatusOK {
		t.Fatalf("unblock on B: %d", code)
	}
	eventually(t, "A lifts the block unblocked on B", func() bool { return !a.blocked("45.83.0.52") })
	if ns != nil {
		waitElements(t, ns, false, func(els []nftset.Element) bool {
			return !slices.ContainsFunc(els, func(e nftset.Element) bool { return e.IP == netip.MustParseAddr("45.83.0.52") })
		})
	} else {
		t.Log("not root: the nftables part of the fleet test was skipped")
	}
}

// TestFleetRedisDown: with Redis stopped mid-run, queries keep being
// answered and the nodes say they are degraded; a block made meanwhile on
// A reaches B once Redis is back.
func TestFleetRedisDown(t *testing.T) {
	dir := t.TempDir()
	r := startRedis(t, dir)
	nodes := startFleet(t, r, []string{"A", "B"}, nil)
	a, b := nodes[0], nodes[1]

	r.stop()
	for _, n := range nodes {
		if res := n.query("127.0.0.2", "clean.example.org", dns.TypeA); !slices.Equal(answerIPs(res), []string{"45.83.0.10"}) {
			t.Errorf("node %s with Redis down: %v", n.name, res)
		}
	}
	// Work during the outage: an event and a block on A alone.
	a.query("127.0.0.2", "bad.example.org", dns.TypeA)
	a.postEvent("127.0.0.2", a.clock.Now(), "5m")
	a.waitVerdict("45.83.0.21")
	eventually(t, "A blocks locally while Redis is down", func() bool { return a.blocked("45.83.0.21") })
	eventually(t, "A notices Redis is down", func() bool { return !a.plugin().eng.State().Fleet().Up() })
	if b.blocked("45.83.0.21") {
		t.Fatal("B knows A's block with Redis down")
	}

	// Redis back on the same socket: the nodes converge.
	r2 := startRedis(t, dir)
	_ = r2
	eventually(t, "A sees Redis again", func() bool { return a.plugin().eng.State().Fleet().Up() })
	eventually(t, "B gets the block made during the outage", func() bool { return b.blocked("45.83.0.21") })
}
