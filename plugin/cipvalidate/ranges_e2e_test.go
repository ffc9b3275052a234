package cipvalidate

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/nftset"

	"github.com/miekg/dns"
)

// An operator's range block rewrites the names resolving inside the range
// (and not the others), puts the range into the nftables set as an
// interval (traffic inside it dropped), lists it in the EDL, and a lift
// by its decision id undoes all of it.
func TestE2ERangeBlock(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.10/32", "45.83.0.90/32", "10.99.0.1/32")
	inside, outside := ns.Listen(t, "45.83.0.10"), ns.Listen(t, "45.83.0.90")
	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s", ns.Name))

	var d struct {
		decisionAnswer
		Range string `json:"range"`
	}
	if code := e.api("POST", "/v1/blocks", map[string]string{"range": "45.83.0.0/28", "ttl": "2h", "reason": "IR-9: scanner farm"}, &d); code != http.StatusCreated ||
		d.Range != "45.83.0.0/28" || d.IP != "" || d.Origin != "manual" || d.State != "active" {
		t.Fatalf("POST /v1/blocks with a range = %d %+v", code, d)
	}
	els := waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	if el := els[0]; el.Range != netip.MustParsePrefix("45.83.0.0/28") || !strings.Contains(el.Comment, d.ID) {
		t.Errorf("element %+v, want the range 45.83.0.0/28 with comment %s", el, d.ID)
	}
	ns.WantDropped(t, "", inside)
	ns.WantOpen(t, "", outside)
	if r := e.query("127.0.0.9", "clean.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("a name inside the range answers %v, want the sinkhole", answerIPs(r))
	}
	if r := e.query("127.0.0.9", "cdn.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.90"}) {
		t.Errorf("a name outside the range answers %v, want its address", answerIPs(r))
	}
	if edl := e.get(t, "/v1/blocklist.txt"); !strings.Contains(edl, "45.83.0.0/28\n") {
		t.Errorf("EDL = %q, want 45.83.0.0/28", edl)
	}
	var conflict struct{ Error string }
	if code := e.api("POST", "/v1/blocks", map[string]string{"range": "45.83.0.16/28", "ttl": "1h", "reason": "x"}, &conflict); code != http.StatusConflict ||
		!strings.Contains(conflict.Error, "45.83.0.22") {
		t.Errorf("a range over the allowlisted 45.83.0.22: %d %+v, want 409 naming it", code, conflict)
	}
	for body, field := range map[string]string{`10.0.0.0/8`: "range", `45.0.0.0/7`: "range"} {
		var bad struct{ Field string }
		if code := e.api("POST", "/v1/blocks", map[string]string{"range": body, "ttl": "1h", "reason": "x"}, &bad); code != http.StatusBadRequest || bad.Field != field {
			t.Errorf("range %s: %d %+v, want 400 naming %s", body, code, bad, field)
		}
	}

	if code := e.api("DELETE", "/v1/decisions/"+d.ID+"?reason=vendor+confirmed", nil, nil); code != http.StatusOK {
		t.Fatalf("lift: %d", code)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	ns.WantOpen(t, "", inside)
	if r := e.query("127.0.0.9", "clean.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.10"}) {
		t.Errorf("after the lift: %v, want the real answer", answerIPs(r))
	}
}

// A range block posted to node A rewrites on node B, and a lift by its id
// on B reaches A's nftables set and DNS answers.
func TestFleetRangeBlock(t *testing.T) {
	r := startRedis(t, t.TempDir())
	ns := netnstest.New(t)
	nodes := startFleet(t, r, []string{"A", "B"}, map[string]string{"A": "hook nftables inet cip blocked4 blocked6 create netns " + ns.Name})
	a, b := nodes[0], nodes[1]

	var d decisionAnswer
	if code := a.api("POST", "/v1/blocks", map[string]string{"range": "45.83.0.0/28", "ttl": "1h", "reason": "IR-9"}, &d); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks on A: %d %+v", code, d)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 && strings.Contains(els[0].Comment, d.ID) })
	eventually(t, "B rewrites inside A's range", func() bool {
		return slices.Equal(b.answer("127.0.0.9", "clean.example.org"), []string{"0.0.0.0"})
	})
	if code := b.api("DELETE", "/v1/decisions/"+d.ID+"?reason=contained", nil, nil); code != http.StatusOK {
		t.Fatalf("lift by id on B: %d", code)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	eventually(t, "A answers the real address after the lift on B", func() bool {
		return slices.Equal(a.answer("127.0.0.9", "clean.example.org"), []string{"45.83.0.10"})
	})
}
