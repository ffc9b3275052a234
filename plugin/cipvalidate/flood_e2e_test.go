package cipvalidate

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A flood of queries from thousands of sources, far more answers than the
// windows' total cap holds, does not push out the window of a client whose
// event arrives after it: the event still backtracks what the client
// resolved.
//
// The flood is real DNS over UDP, each source a distinct loopback address
// (127.1.0.0/16 is routed to lo on Linux, and the server sees each query's
// source address as its client), rather than entries written into the
// window directly, so the whole path from the handler to the cap is tested.
// 20,000 sources against a total of 640: the windows are flooded thirty
// times over their cap.
func TestE2EFloodKeepsVictimWindow(t *testing.T) {
	const total, sources = 640, 20_000
	e := startE2E(t, fmt.Sprintf("window 5m\n        retain 15m total %d", total))
	T := time.Now()
	e.clock.Set(T.Add(-2 * time.Minute))
	victimNames := []string{"bad.example.org", "clean.example.org", "tor.example.org", "proxy.example.org"}
	for _, name := range victimNames {
		e.query("127.0.0.2", name, dns.TypeA)
	}

	e.clock.Set(T.Add(-time.Minute))
	flood(t, e.dnsAddr, sources)
	w := e.owner().eng.State().Window()
	if w.Len() > total || w.Clients() < 2 {
		t.Fatalf("after the flood the windows hold %d entries of %d clients; want at most %d", w.Len(), w.Clients(), total)
	}
	if w.EvictedProtected() == 0 {
		t.Fatal("the flood evicted nothing from recent windows; it did not pass the cap")
	}

	e.clock.Set(T)
	ans := e.postEvent("127.0.0.2", T, "5m")
	if ans.Backtracked != len(victimNames) {
		t.Errorf("the event backtracked %d IPs, want the %d the client resolved before the flood (%+v)", ans.Backtracked, len(victimNames), ans.Found)
	}
}

// flood sends one query for clean.example.org from each of n loopback
// sources 127.1.x.y, from four goroutines.
func flood(t *testing.T, server string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				src := net.IPv4(127, 1, byte(i>>8), byte(i+1))
				c := &dns.Client{Net: "udp", Timeout: 5 * time.Second,
					Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: src}, Timeout: 5 * time.Second}}
				m := new(dns.Msg)
				m.SetQuestion("clean.example.org.", dns.TypeA)
				if _, _, err := c.Exchange(m, server); err != nil {
					errs <- fmt.Errorf("query from %s: %w", src, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
