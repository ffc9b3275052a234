package cipvalidate

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/nftset"

	"github.com/miekg/dns"
)

// waitElements polls the namespace's sets until want(elements) holds.
func waitElements(t *testing.T, ns *netnstest.NetNS, scoped bool, want func([]nftset.Element) bool) []nftset.Element {
	t.Helper()
	s, err := nftset.New(nftset.Config{Family: "inet", Table: "cip", Set4: "blocked4", Set6: "blocked6", Scoped: scoped, NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		els, err := s.Elements()
		if err != nil {
			t.Fatal(err)
		}
		if want(els) {
			return els
		}
		if time.Now().After(deadline) {
			t.Fatalf("nftables set holds %+v; condition not met after 15s", els)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The nftables hook, pointed at a network namespace of the test's own: a
// suspicious verdict puts the IP in the set with the block's timeout and the
// decision id as comment; traffic to it inside the namespace is dropped, and
// flows again after an unblock.
func TestE2ENftables(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.21/32", "10.99.0.1/32", "10.99.0.2/32")
	dst := ns.Listen(t, "45.83.0.21")
	ns.WantOpen(t, "", dst)

	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s\n        block_ttl 1h", ns.Name))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	v := e.waitVerdict("45.83.0.21")

	els := waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	el := els[0]
	if el.IP != netip.MustParseAddr("45.83.0.21") || el.Expires > time.Hour || el.Expires < 59*time.Minute || !strings.Contains(el.Comment, v.Decision) {
		t.Errorf("element %+v, want 45.83.0.21 with ~1h left and comment %s", el, v.Decision)
	}
	ns.WantDropped(t, "", dst)
	ns.WantDropped(t, "10.99.0.2", dst) // everyone

	if code := e.api("DELETE", "/v1/blocks/45.83.0.21?actor=test", nil, nil); code != 200 {
		t.Fatalf("unblock: %d", code)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	ns.WantOpen(t, "", dst)
}

// Scoped blocks drop only the tagged client -> suspicious IP pair.
func TestE2ENftablesScoped(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.21/32", "10.99.0.1/32", "10.99.0.2/32")
	dst := ns.Listen(t, "45.83.0.21")

	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create scoped netns %s", ns.Name))
	// The tagged client is 10.99.0.1, an address inside the namespace that
	// cannot query the server; its window gets the answer directly, as the
	// DNS path would record it.
	e.owner().eng.State().Window().Record(netip.MustParseAddr("10.99.0.1"), "bad.example.org.", []netip.Addr{netip.MustParseAddr("45.83.0.21")}, 0, e.clock.Now())
	e.postEvent("10.99.0.1", e.clock.Now(), "5m")
	e.waitVerdict("45.83.0.21")

	els := waitElements(t, ns, true, func(els []nftset.Element) bool { return len(els) == 1 })
	if els[0].Client != netip.MustParseAddr("10.99.0.1") || els[0].IP != netip.MustParseAddr("45.83.0.21") {
		t.Errorf("element %+v, want the pair 10.99.0.1 . 45.83.0.21", els[0])
	}
	ns.WantDropped(t, "10.99.0.1", dst)
	ns.WantOpen(t, "10.99.0.2", dst)
}

// Two tagged clients reached the same proxy (tagged scope); the second
// event is answered from the cache and still puts its pair in the hook's
// pair set beside the first: both clients are cut off the proxy, a third
// host is not, and the IP set stays empty.
func TestE2ENftablesPairsForCachedFindings(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.53/32", "10.99.0.1/32", "10.99.0.2/32", "10.99.0.3/32")
	dst := ns.Listen(t, "45.83.0.53")

	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s", ns.Name))
	for _, c := range []string{"10.99.0.1", "10.99.0.2"} {
		e.owner().eng.State().Window().Record(netip.MustParseAddr(c), "proxy.example.org.", []netip.Addr{netip.MustParseAddr("45.83.0.53")}, 0, e.clock.Now())
	}
	e.postEvent("10.99.0.1", e.clock.Now(), "5m")
	e.waitVerdict("45.83.0.53")
	if ev := e.postEvent("10.99.0.2", e.clock.Now(), "5m"); len(ev.Found) != 1 || ev.Found[0].Result != "cached" {
		t.Fatalf("second event found %+v, want 45.83.0.53 cached", ev.Found)
	}
	pairs, err := nftset.New(nftset.Config{Family: "inet", Table: "cip", Set4: "blocked4_pairs", Set6: "blocked6_pairs", Scoped: true, NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer pairs.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		els, err := pairs.Elements()
		if err != nil {
			t.Fatal(err)
		}
		if len(els) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pair set holds %+v, want 10.99.0.1 and 10.99.0.2 -> 45.83.0.53", els)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns.WantDropped(t, "10.99.0.1", dst)
	ns.WantDropped(t, "10.99.0.2", dst)
	ns.WantOpen(t, "10.99.0.3", dst)
	for _, el := range waitElements(t, ns, false, func([]nftset.Element) bool { return true }) {
		if !el.Client.IsValid() {
			t.Errorf("IP-wide element %+v: a proxy reaches tagged clients only", el)
		}
	}
}

// An element deleted by hand with `nft delete element` comes back at the
// next reconcile, with its decision and the block's remaining time, and
// traffic to the IP is dropped again.
func TestE2ENftablesReconcileRepairsDrift(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.21/32", "10.99.0.1/32")
	dst := ns.Listen(t, "45.83.0.21")

	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s\n        block_ttl 1h\n        reconcile 200ms", ns.Name))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	v := e.waitVerdict("45.83.0.21")
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	ns.WantDropped(t, "", dst)

	ns.Nft(t, "delete", "element", "inet", "cip", "blocked4", "{ 45.83.0.21 }")
	els := waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	if el := els[0]; el.IP != netip.MustParseAddr("45.83.0.21") || !strings.Contains(el.Comment, v.Decision) || el.Expires > time.Hour || el.Expires < 59*time.Minute {
		t.Errorf("element %+v, want 45.83.0.21 back with comment %s and ~1h left", el, v.Decision)
	}
	ns.WantDropped(t, "", dst)
}
