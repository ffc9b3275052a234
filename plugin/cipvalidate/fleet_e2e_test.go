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

func startRedis(t testing.TB, dir string) *redisServer {
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
	return startFleetZone(t, r, e2eZone, names, extra)
}

// startFleetZone is startFleet serving zone.
func startFleetZone(t *testing.T, r *redisServer, zone string, names []string, extra map[string]string) []*node {
	t.Helper()
	RegisterDirective()
	fake, apiURL := fakeapitest.Start(t, fakeapitest.WithKey("k"))
	clock := testclock.New(time.Now())
	dir := t.TempDir()
	db := filepath.Join(dir, "db.example.org")
	os.WriteFile(db, []byte(zone), 0o600)
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
	var list struct {
		Clients []struct {
			Client string `json:"client"`
		} `json:"clients"`
	}
	n.api("GET", "/v1/clients", nil, &list)
	return slices.ContainsFunc(list.Clients, func(c struct {
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

// restart stops the node and starts it again from its Corefile (new
// ports), as after a reboot: a State of its own is restored from its
// state directory, if it has one.
func (n *node) restart() {
	n.t.Helper()
	coretest.Stop(n.t, n.inst)
	n.inst, n.dnsAddr, _ = coretest.Start(n.t, n.corefile)
	n.plugin().eng.SetClock(n.clock.Now)
	n.apiBase = "http://" + n.plugin().api.Addr()
}

// blockIPs lists the IPs of the node's blocks (GET /v1/blocks), sorted.
func (n *node) blockIPs() []string {
	var list []struct {
		IP string `json:"ip"`
	}
	n.api("GET", "/v1/blocks", nil, &list)
	ips := []string{}
	for _, b := range list {
		ips = append(ips, b.IP)
	}
	slices.Sort(ips)
	return ips
}

// allowValues lists the values of the node's allowlist (GET /v1/allow).
func (n *node) allowValues() []string {
	var list []struct {
		Value string `json:"value"`
	}
	n.api("GET", "/v1/allow", nil, &list)
	values := []string{}
	for _, a := range list {
		values = append(values, a.Value)
	}
	return values
}

// answer is what the node answers client for name's A record.
func (n *node) answer(client, name string) []string {
	return answerIPs(n.query(client, name, dns.TypeA))
}

// nftIPs lists the IPs in the nftables set of ns, sorted.
func nftIPs(t *testing.T, ns *netnstest.NetNS) []string {
	t.Helper()
	s, err := nftset.New(nftset.Config{Family: "inet", Table: "cip", Set4: "blocked4", Set6: "blocked6", NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	els, err := s.Elements()
	if err != nil {
		t.Fatal(err)
	}
	ips := []string{}
	for _, e := range els {
		ips = append(ips, e.IP.String())
	}
	slices.Sort(ips)
	return ips
}

// Fleet, lazy verdicts (issue 13): a verdict reached on A is in B's DNS
// path by the time B lists A's block, so B rewrites the answers A
// rewrites from the first query on: an untagged client's for an IP that
// reaches everyone, and a tagged client's first one for an IP that
// reaches tagged clients. GET /v1/verdicts on B reads Redis when B has no
// verdict of its own. An unblock and an allowlist entry travel the same
// way.
func TestFleetLazyVerdicts(t *testing.T) {
	r := startRedis(t, t.TempDir())
	nodes := startFleet(t, r, []string{"A", "B"}, nil)
	a, b := nodes[0], nodes[1]

	a.query("127.0.0.2", "bad.example.org", dns.TypeA)
	a.query("127.0.0.2", "proxy.example.org", dns.TypeA)
	a.postEvent("127.0.0.2", a.clock.Now(), "5m")
	bad := a.waitVerdict("45.83.0.21")
	eventually(t, "B lists A's blocks of 45.83.0.21 and 45.83.0.53", func() bool {
		ips := b.blockIPs()
		return slices.Contains(ips, "45.83.0.21") && slices.Contains(ips, "45.83.0.53")
	})
	if !b.tagged("127.0.0.2") {
		t.Fatal("B does not have the tag of A's event")
	}

	// B never asked the API, nor answered these names to anyone.
	r1 := b.query("127.0.0.9", "bad.example.org", dns.TypeA)
	if got := answerIPs(r1); !slices.Equal(got, []string{"0.0.0.0"}) {
		t.Errorf("B answers an untagged client bad.example.org with %v while A blocks it; want the sinkhole", got)
	} else if ede := edeOf(r1); ede == nil || !strings.Contains(ede.ExtraText, bad.Decision) {
		t.Errorf("B's EDE %+v does not name A's decision %s", ede, bad.Decision)
	}
	if got := b.answer("127.0.0.2", "proxy.example.org"); !slices.Equal(got, []string{"0.0.0.0"}) {
		t.Errorf("the tagged client's first query on B for a tagged-scope IP: %v, want the sinkhole", got)
	}
	if got := b.answer("127.0.0.9", "proxy.example.org"); !slices.Equal(got, []string{"45.83.0.53"}) {
		t.Errorf("an untagged client on B got %v for a tagged-scope IP, want it unchanged", got)
	}

	// B loses its copy (evicted, say): the verdict is read from Redis.
	b.plugin().eng.State().Cache().Delete(netip.MustParseAddr("45.83.0.21"))
	var v verdictAnswer
	if code := b.api("GET", "/v1/verdicts/45.83.0.21", nil, &v); code != http.StatusOK || v.Outcome != "suspicious" || v.Decision != bad.Decision {
		t.Errorf("GET /v1/verdicts/45.83.0.21 on B: %d %+v, want A's suspicious verdict %s", code, v, bad.Decision)
	}
	if calls := a.fake.CallsFor("45.83.0.21"); calls != 1 {
		t.Errorf("%d API calls for 45.83.0.21, want 1", calls)
	}

	// An unblock on A and an allowlist entry on B reach the other's DNS.
	if code := a.api("DELETE", "/v1/blocks/45.83.0.21?reason=fp", nil, nil); code != http.StatusOK {
		t.Fatalf("unblock on A: %d", code)
	}
	if code := b.api("POST", "/v1/allow", map[string]string{"value": "45.83.0.53", "reason": "ours"}, nil); code != http.StatusCreated {
		t.Fatalf("allow on B: %d", code)
	}
	eventually(t, "B answers the IP unblocked on A", func() bool {
		return slices.Equal(b.answer("127.0.0.9", "bad.example.org"), []string{"45.83.0.21"})
	})
	eventually(t, "A answers the IP allowlisted on B", func() bool {
		return slices.Equal(a.answer("127.0.0.2", "proxy.example.org"), []string{"45.83.0.53"})
	})
	var after verdictAnswer
	if b.api("GET", "/v1/verdicts/45.83.0.21", nil, &after); after.Outcome != "clean" {
		t.Errorf("B's verdict of 45.83.0.21 after the unblock: %+v, want the operator's clean one", after)
	}
}

// Fleet, undone unblock (issue 13): Redis is killed; B lifts a block
// both nodes had and removes an allowlist entry both had, while A makes a
// new block and a new entry; B restarts; Redis comes back empty. The
// latest change wins everywhere: both nodes list the same blocks and allowlist, answer
// the same, and hold the same nftables set (each in a namespace of its
// own), and neither removal is undone by either node's resync.
func TestFleetUndoneUnblock(t *testing.T) {
	dir := t.TempDir()
	r := startRedis(t, dir)
	names := []string{"A", "B"}
	extra, nss := map[string]string{}, map[string]*netnstest.NetNS{}
	if os.Geteuid() == 0 {
		for _, n := range names {
			nss[n] = netnstest.New(t)
			extra[n] = "hook nftables inet cip blocked4 blocked6 create netns " + nss[n].Name
		}
	}
	extra["B"] += "\nstate " + filepath.Join(dir, "b-state")
	nodes := startFleet(t, r, names, extra)
	a, b := nodes[0], nodes[1]

	a.query("127.0.0.2", "multi.example.org", dns.TypeA)
	a.postEvent("127.0.0.2", a.clock.Now(), "5m")
	if code := a.api("POST", "/v1/allow", map[string]string{"value": "198.51.100.0/24", "reason": "partner"}, nil); code != http.StatusCreated {
		t.Fatalf("allow on A: %d", code)
	}
	for _, n := range nodes {
		eventually(t, n.name+" blocks 45.83.0.71", func() bool { return n.blocked("45.83.0.71") })
		eventually(t, n.name+" allows 198.51.100.0/24", func() bool { return slices.Equal(n.allowValues(), []string{"198.51.100.0/24"}) })
	}

	r.stop() // SIGKILL
	for _, n := range nodes {
		eventually(t, n.name+" notices Redis is down", func() bool { return !n.plugin().eng.State().Fleet().Up() })
	}
	if code := b.api("DELETE", "/v1/blocks/45.83.0.71?reason=fp", nil, nil); code != http.StatusOK {
		t.Fatalf("unblock on B with Redis down: %d", code)
	}
	if code := b.api("DELETE", "/v1/allow/198.51.100.0/24", nil, nil); code != http.StatusOK {
		t.Fatalf("allowlist removal on B with Redis down: %d", code)
	}
	if code := a.api("POST", "/v1/allow", map[string]string{"value": "partner.example.net", "reason": "partner"}, nil); code != http.StatusCreated {
		t.Fatalf("allow on A with Redis down: %d", code)
	}
	a.query("127.0.0.3", "tor.example.org", dns.TypeA)
	a.postEvent("127.0.0.3", a.clock.Now(), "5m")
	eventually(t, "A blocks 45.83.0.52 with Redis down", func() bool { return a.blocked("45.83.0.52") })
	// B remembers what it did across a restart, Redis still down.
	b.restart()
	if b.blocked("45.83.0.71") || slices.Contains(b.allowValues(), "198.51.100.0/24") {
		t.Fatal("B's unblock or allowlist removal did not survive its restart")
	}

	synced := map[string]uint64{}
	for _, n := range nodes {
		synced[n.name] = n.plugin().eng.State().FleetSyncs()
	}
	startRedis(t, dir) // on the same socket, and empty
	for _, n := range nodes {
		// Both passes of the resync that would undo the unblock are done.
		eventually(t, n.name+" resynchronises twice", func() bool {
			return n.plugin().eng.State().FleetSyncs() >= synced[n.name]+2
		})
	}
	want, wantAllow := []string{"45.83.0.52"}, []string{"partner.example.net."}
	for _, n := range nodes {
		eventually(t, n.name+" converges on the latest changes", func() bool {
			return slices.Equal(n.blockIPs(), want) && slices.Equal(n.allowValues(), wantAllow)
		})
		if ns := nss[n.name]; ns != nil {
			waitElements(t, ns, false, func(els []nftset.Element) bool {
				return len(els) == 1 && els[0].IP == netip.MustParseAddr("45.83.0.52")
			})
		}
	}
	// Converged, and staying so: every node agrees with itself and the others.
	for _, n := range nodes {
		if got := n.blockIPs(); !slices.Equal(got, want) {
			t.Errorf("%s lists blocks %v, want %v", n.name, got, want)
		}
		if got := n.allowValues(); !slices.Equal(got, wantAllow) {
			t.Errorf("%s's allowlist is %v, want %v", n.name, got, wantAllow)
		}
		if got := n.answer("127.0.0.9", "multi.example.org"); !slices.Equal(got, []string{"45.83.0.71"}) {
			t.Errorf("%s answers the unblocked multi.example.org with %v", n.name, got)
		}
		if got := n.answer("127.0.0.9", "tor.example.org"); !slices.Equal(got, []string{"0.0.0.0"}) {
			t.Errorf("%s answers tor.example.org, blocked on A during the outage, with %v", n.name, got)
		}
		if ns := nss[n.name]; ns != nil {
			if got := nftIPs(t, ns); !slices.Equal(got, want) {
				t.Errorf("%s's nftables set holds %v, want %v", n.name, got, want)
			}
		}
	}
	if len(nss) == 0 {
		t.Log("not root: the nftables part of the test was skipped")
	}
}

// TestFleetUndoneUntag: an untag made on B while Redis is down is not
// undone when Redis comes back empty and A, which still holds the tag,
// writes it again: every node agrees the client is untagged, B across a
// restart during the outage too. A later event tags it again everywhere.
func TestFleetUndoneUntag(t *testing.T) {
	dir := t.TempDir()
	r := startRedis(t, dir)
	extra := map[string]string{"B": "state " + filepath.Join(dir, "b-state")}
	nodes := startFleet(t, r, []string{"A", "B"}, extra)
	a, b := nodes[0], nodes[1]
	const client = "127.0.0.4"

	a.postEvent(client, a.clock.Now(), "5m")
	for _, n := range nodes {
		eventually(t, n.name+" tags "+client, func() bool { return n.tagged(client) })
	}
	r.stop() // SIGKILL
	for _, n := range nodes {
		eventually(t, n.name+" notices Redis is down", func() bool { return !n.plugin().eng.State().Fleet().Up() })
	}
	if code := b.api("DELETE", "/v1/clients/"+client, nil, nil); code != http.StatusOK {
		t.Fatalf("untag on B with Redis down: %d", code)
	}
	if !a.tagged(client) {
		t.Fatal("A lost the tag while Redis was down: it cannot have heard of B's untag")
	}
	b.restart() // B remembers its untag across a restart, Redis still down.
	if b.tagged(client) {
		t.Fatal("B's untag did not survive its restart")
	}

	synced := map[string]uint64{}
	for _, n := range nodes {
		synced[n.name] = n.plugin().eng.State().FleetSyncs()
	}
	startRedis(t, dir) // on the same socket, and empty
	for _, n := range nodes {
		// Both passes of the resync that would undo the untag are done.
		eventually(t, n.name+" resynchronises twice", func() bool {
			return n.plugin().eng.State().FleetSyncs() >= synced[n.name]+2
		})
	}
	for _, n := range nodes {
		eventually(t, n.name+" agrees "+client+" is untagged", func() bool { return !n.tagged(client) })
	}
	for _, n := range nodes {
		if n.tagged(client) {
			t.Errorf("%s tags %s again after converging", n.name, client)
		}
	}

	a.postEvent(client, a.clock.Now(), "5m") // later than the untag: it wins
	for _, n := range nodes {
		eventually(t, n.name+" tags "+client+" after a new event", func() bool { return n.tagged(client) })
	}
}
