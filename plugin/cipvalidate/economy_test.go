package cipvalidate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// clientWriter is a response writer for one client address.
type clientWriter struct {
	test.ResponseWriter
	addr *net.UDPAddr
}

func (w *clientWriter) RemoteAddr() net.Addr { return w.addr }

// TestAPIEconomy: 500 clients resolve the same 1,000 names (900 public
// IPs, 100 private) during an event storm that tags all of them. The
// fake API's counter shows at most one call per unique public IP, and none
// for the private ones.
func TestAPIEconomy(t *testing.T) {
	// No CPU budget: this is the queue's de-duplication under 500 events
	// (internal/pace and TestE2ESpentCPUBudgetDoesNotHoldDNS test the budget); under -race each
	// unit's wall time is many times its CPU, and the budget would pace
	// the 900 validations over minutes.
	e := startE2E(t, "queue 100000\n        rate 100000 100000\n        validate_cpu off")
	c := e.owner()

	names := make([]string, 1000)
	ips := make([]netip.Addr, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.example.com.", i)
		if i%10 == 9 {
			ips[i] = netip.AddrFrom4([4]byte{10, 77, byte(i / 250), byte(i % 250)})
		} else {
			ips[i] = netip.AddrFrom4([4]byte{45, 84, byte(i / 250), byte(1 + i%250)})
		}
	}
	c.Next = test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		var i int
		fmt.Sscanf(r.Question[0].Name, "n%d.", &i)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ips[i].AsSlice()}}
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
	c.Zones = []string{"."}

	resolveAll := func(client netip.Addr) {
		w := &clientWriter{addr: &net.UDPAddr{IP: client.AsSlice(), Port: 5353}}
		for _, n := range names {
			m := new(dns.Msg)
			m.SetQuestion(n, dns.TypeA)
			c.ServeDNS(context.Background(), w, m)
		}
	}
	clients := make([]netip.Addr, 500)
	for i := range clients {
		clients[i] = netip.AddrFrom4([4]byte{10, 50, byte(i / 250), byte(1 + i%250)})
	}
	var wg sync.WaitGroup
	// 64 clients at a time: enough to race the queue's de-duplication, and
	// few enough that a 2-core CI machine under -race answers each event
	// POST well within the admin API's write timeout.
	slots := make(chan struct{}, 64)
	for i, cl := range clients {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			if i%2 == 0 { // half resolve before their event: backtracked
				resolveAll(cl)
				e.postEvent(cl.String(), e.clock.Now(), "5m")
			} else { // half after: validated live
				e.postEvent(cl.String(), e.clock.Now(), "5m")
				resolveAll(cl)
			}
		})
	}
	wg.Wait()

	deadline := time.Now().Add(60 * time.Second)
	for _, ip := range ips {
		if !publicOnly(ip) {
			continue
		}
		for {
			if _, ok := c.eng.State().Cache().Get(ip, e.clock.Now()); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no verdict for %s after 60s (%d API calls so far)", ip, e.fake.Calls())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	public := 0
	for _, ip := range ips {
		n := e.fake.CallsFor(ip.String())
		switch {
		case !publicOnly(ip) && n != 0:
			t.Errorf("private %s cost %d API calls", ip, n)
		case publicOnly(ip):
			public++
			if n > 1 {
				t.Errorf("%s cost %d API calls, want at most 1", ip, n)
			}
		}
	}
	t.Logf("%d clients x %d names = %d answers; %d unique public IPs; %d API calls", len(clients), len(names), len(clients)*len(names), public, e.fake.Calls())
	if e.fake.Calls() > public {
		t.Errorf("%d API calls for %d unique public IPs", e.fake.Calls(), public)
	}
}

func publicOnly(ip netip.Addr) bool { return ip.As4()[0] == 45 }
