package cipvalidate

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"

	_ "github.com/coredns/coredns/plugin/proxyproto"
	"github.com/miekg/dns"
	"github.com/pires/go-proxyproto"
)

// Two clients behind one forwarder, each named by the forwarder's ECS option.
const clientA, clientB = "10.9.0.1", "10.9.0.2"

// queryECS is query with an ECS option naming ecs (a /32) on the query.
func (e *e2e) queryECS(from, ecs, name string) *dns.Msg {
	e.t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second,
		Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP(ecs).To4()})
	r, _, err := c.Exchange(m, e.dnsAddr)
	if err != nil {
		e.t.Fatalf("query %s from %s for %s: %v", name, from, ecs, err)
	}
	return r
}

func wantAnswer(t *testing.T, who string, r *dns.Msg, want string) {
	t.Helper()
	if got := answerIPs(r); !slices.Equal(got, []string{want}) {
		t.Errorf("%s got %v, want %s", who, got, want)
	}
}

// Behind a trusted forwarder (127.0.0.1) each ECS address is a client of
// its own: an event for A backtracks A's answers only, and only A's answers
// are rewritten. From any other source the ECS option is ignored, and the
// forwarder's own queries without ECS stay the forwarder's.
func TestE2EClientFromECS(t *testing.T) {
	e := startE2E(t, "client_from ecs 127.0.0.1\n        enforce tagged")
	e.queryECS("127.0.0.1", clientA, "bad.example.org")
	e.queryECS("127.0.0.1", clientB, "tor.example.org")
	e.query("127.0.0.1", "proxy.example.org", dns.TypeA)  // the forwarder's own
	e.queryECS("127.0.0.5", clientA, "multi.example.org") // untrusted: 127.0.0.5's

	ans := e.postEvent(clientA, e.clock.Now(), "5m")
	var found []string
	for _, f := range ans.Found {
		found = append(found, f.IP)
	}
	if !slices.Equal(found, []string{"45.83.0.21"}) {
		t.Fatalf("A's event backtracked %v, want only A's 45.83.0.21 (not B's, the forwarder's or the untrusted source's)", found)
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("45.83.0.21: %+v", v)
	}

	wantAnswer(t, "A through the forwarder", e.queryECS("127.0.0.1", clientA, "bad.example.org"), "0.0.0.0")
	wantAnswer(t, "B through the forwarder", e.queryECS("127.0.0.1", clientB, "bad.example.org"), "45.83.0.21")
	wantAnswer(t, "the forwarder without ECS", e.query("127.0.0.1", "bad.example.org", dns.TypeA), "45.83.0.21")
	wantAnswer(t, "an untrusted source claiming A", e.queryECS("127.0.0.5", clientA, "bad.example.org"), "45.83.0.21")

	var body struct {
		Clients []struct {
			Client string `json:"client"`
		} `json:"clients"`
	}
	if e.api("GET", "/v1/clients", nil, &body); len(body.Clients) != 1 || body.Clients[0].Client != clientA {
		t.Errorf("tagged clients %+v, want only %s", body.Clients, clientA)
	}
}

// proxied sends a query for name to addr over network ("udp", "tcp") from
// 127.0.0.1, behind a PROXY v2 header that names client.
func proxied(t *testing.T, network, addr, client, name string) *dns.Msg {
	t.Helper()
	proto, src := proxyproto.UDPv4, net.Addr(&net.UDPAddr{IP: net.ParseIP(client), Port: 40000})
	dst := net.Addr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53})
	if network == "tcp" {
		proto, src, dst = proxyproto.TCPv4, &net.TCPAddr{IP: net.ParseIP(client), Port: 40000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	header, err := (&proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: proto, SourceAddr: src, DestinationAddr: dst}).Format()
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := new(dns.Msg)
	if network == "udp" {
		// One datagram: the header, then the query.
		if _, err := conn.Write(append(header, q...)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err == nil {
			err = r.Unpack(buf[:n])
		}
		if err != nil {
			t.Fatalf("%s for %s over udp: %v", name, client, err)
		}
		return r
	}
	if _, err := conn.Write(header); err != nil {
		t.Fatal(err)
	}
	co := &dns.Conn{Conn: conn}
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if r, err = co.ReadMsg(); err != nil {
		t.Fatalf("%s for %s over tcp: %v", name, client, err)
	}
	return r
}

// Behind a load balancer speaking PROXY v2 to CoreDNS's proxyproto, the
// clients it names are clients of their own over UDP and TCP: cipvalidate
// needs no option for it.
func TestE2EClientFromProxyProtocol(t *testing.T) {
	e := startE2EServer(t, e2eZone, "    proxyproto {\n        allow 127.0.0.1/32\n    }", "enforce tagged")
	udp, tcp := coretest.Addrs(e.inst, 0)
	proxied(t, "udp", udp, clientA, "bad.example.org")
	proxied(t, "tcp", tcp, clientB, "tor.example.org")

	ans := e.postEvent(clientA, e.clock.Now(), "5m")
	if len(ans.Found) != 1 || ans.Found[0].IP != "45.83.0.21" {
		t.Fatalf("A's event found %+v, want only A's 45.83.0.21", ans.Found)
	}
	e.waitVerdict("45.83.0.21")
	for _, network := range []string{"udp", "tcp"} {
		addr := map[string]string{"udp": udp, "tcp": tcp}[network]
		wantAnswer(t, "A over "+network, proxied(t, network, addr, clientA, "bad.example.org"), "0.0.0.0")
		wantAnswer(t, "B over "+network, proxied(t, network, addr, clientB, "bad.example.org"), "45.83.0.21")
	}
}
