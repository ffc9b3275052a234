package cipvalidate

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/nftset"

	"github.com/miekg/dns"
)

// decisionAnswer is what the tests read of a Decision.
type decisionAnswer struct {
	ID       string `json:"id"`
	IP       string `json:"ip"`
	State    string `json:"state"`
	Origin   string `json:"origin"`
	Actor    string `json:"actor"`
	Rewrites int    `json:"rewrites"`
	Hooks    []struct {
		Hook, Action, State string
	} `json:"hooks"`
	Lifted *struct {
		Actor, Reason string
	} `json:"lifted"`
}

// waitHook polls GET /v1/decisions/{id} until its one hook has done
// action.
func (e *e2e) waitHook(id, action string) decisionAnswer {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var d decisionAnswer
		code := e.api("GET", "/v1/decisions/"+id, nil, &d)
		if code == http.StatusOK && len(d.Hooks) == 1 && d.Hooks[0].Action == action && d.Hooks[0].State == "delivered" {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("decision %s: %d %+v; want its %s delivered", id, code, d, action)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A decision the engine made is lifted by its id: the nftables element
// goes, DNS answers the real address again, and the history says who
// lifted it, why, and that the hook got the unblock.
func TestE2ELiftByDecisionID(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.21/32", "10.99.0.1/32")
	dst := ns.Listen(t, "45.83.0.21")
	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s\n        block_ttl 1h", ns.Name))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", e.clock.Now(), "5m")
	v := e.waitVerdict("45.83.0.21")
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	ns.WantDropped(t, "", dst)
	if r := e.query("127.0.0.9", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Fatalf("before the lift: %v, want the sinkhole", answerIPs(r))
	}
	e.owner().eng.Sweep(e.clock.Now()) // writes the rewrite count

	var list struct {
		Decisions []decisionAnswer `json:"decisions"`
	}
	if code := e.api("GET", "/v1/decisions?ip=45.83.0.21&state=active", nil, &list); code != http.StatusOK || len(list.Decisions) != 1 ||
		list.Decisions[0].ID != v.Decision || list.Decisions[0].Rewrites < 1 {
		t.Fatalf("GET /v1/decisions = %d %+v, want %s active with its rewrites", code, list.Decisions, v.Decision)
	}
	e.waitHook(v.Decision, "block")

	var lifted decisionAnswer
	if code := e.api("DELETE", "/v1/decisions/"+v.Decision+"?reason=false+positive&on_behalf_of=bob", nil, &lifted); code != http.StatusOK ||
		lifted.State != "lifted" || lifted.Lifted == nil || lifted.Lifted.Actor != "token_file (on behalf of bob)" {
		t.Fatalf("DELETE /v1/decisions/%s = %d %+v", v.Decision, code, lifted)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	ns.WantOpen(t, "", dst)
	if r := e.query("127.0.0.9", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.21"}) {
		t.Errorf("after the lift: %v, want the real answer", answerIPs(r))
	}
	e.waitHook(v.Decision, "unblock")
	if code := e.api("DELETE", "/v1/decisions/"+v.Decision+"?reason=again", nil, nil); code != http.StatusConflict {
		t.Errorf("a second lift: %d, want 409", code)
	}
}

// An operator's block of an IP no verdict found suspicious makes both
// the nftables element and the DNS rewrite, and a lift by its id undoes
// both.
func TestE2EManualBlock(t *testing.T) {
	ns := netnstest.New(t, "45.83.0.10/32", "10.99.0.1/32")
	dst := ns.Listen(t, "45.83.0.10")
	e := startE2E(t, fmt.Sprintf("hook nftables inet cip blocked4 blocked6 create netns %s", ns.Name))
	ns.WantOpen(t, "", dst)

	var d decisionAnswer
	if code := e.api("POST", "/v1/blocks", map[string]string{"ip": "45.83.0.10", "ttl": "2h", "reason": "IR-7: C2"}, &d); code != http.StatusCreated ||
		d.Origin != "manual" || d.Actor != "token_file" || d.State != "active" {
		t.Fatalf("POST /v1/blocks = %d %+v", code, d)
	}
	els := waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 })
	if el := els[0]; el.IP != netip.MustParseAddr("45.83.0.10") || !strings.Contains(el.Comment, d.ID) || el.Expires > 2*time.Hour || el.Expires < 119*time.Minute {
		t.Errorf("element %+v, want 45.83.0.10 with ~2h left and comment %s", el, d.ID)
	}
	ns.WantDropped(t, "", dst)
	if r := e.query("127.0.0.9", "clean.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("a manual block is not rewritten by DNS: %v", answerIPs(r))
	}
	if edl := e.get(t, "/v1/blocklist.txt"); !strings.Contains(edl, "45.83.0.10\n") {
		t.Errorf("EDL = %q, want 45.83.0.10", edl)
	}

	if code := e.api("DELETE", "/v1/decisions/"+d.ID+"?reason=contained", nil, nil); code != http.StatusOK {
		t.Fatalf("lift: %d", code)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	ns.WantOpen(t, "", dst)
	if r := e.query("127.0.0.9", "clean.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.10"}) {
		t.Errorf("after the lift: %v, want the real answer", answerIPs(r))
	}
}

// A manual block posted to node A reaches node B (its EDL and its DNS
// answers, under the same decision id), and a lift by that id on B
// reaches A: its nftables element, its DNS answers and its history, which
// names who lifted it on B.
func TestFleetManualBlockAndLiftByID(t *testing.T) {
	r := startRedis(t, t.TempDir())
	ns := netnstest.New(t)
	nodes := startFleet(t, r, []string{"A", "B"}, map[string]string{"A": "hook nftables inet cip blocked4 blocked6 create netns " + ns.Name})
	a, b := nodes[0], nodes[1]

	var d decisionAnswer
	if code := a.api("POST", "/v1/blocks?on_behalf_of=alice", map[string]string{"ip": "45.83.0.10", "ttl": "1h", "reason": "IR-7"}, &d); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks on A: %d %+v", code, d)
	}
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 1 && strings.Contains(els[0].Comment, d.ID) })
	eventually(t, "B lists A's manual block", func() bool { return b.blocked("45.83.0.10") })
	if got := b.answer("127.0.0.9", "clean.example.org"); !slices.Equal(got, []string{"0.0.0.0"}) {
		t.Errorf("B answers %v for the manually blocked IP, want the sinkhole", got)
	}
	var onB decisionAnswer
	if code := b.api("GET", "/v1/decisions/"+d.ID, nil, &onB); code != http.StatusOK || onB.Origin != "manual" || onB.Actor != "alice" {
		t.Errorf("B's history of %s: %d %+v, want manual by alice", d.ID, code, onB)
	}

	if code := b.api("DELETE", "/v1/decisions/"+d.ID+"?reason=contained&on_behalf_of=carol", nil, nil); code != http.StatusOK {
		t.Fatalf("lift by id on B: %d", code)
	}
	eventually(t, "A lifts the decision lifted on B", func() bool { return !a.blocked("45.83.0.10") })
	waitElements(t, ns, false, func(els []nftset.Element) bool { return len(els) == 0 })
	if got := a.answer("127.0.0.9", "clean.example.org"); !slices.Equal(got, []string{"45.83.0.10"}) {
		t.Errorf("A answers %v after the lift, want the real address", got)
	}
	var onA decisionAnswer
	if a.api("GET", "/v1/decisions/"+d.ID, nil, &onA); onA.State != "lifted" || onA.Lifted == nil || onA.Lifted.Actor != "carol" || onA.Lifted.Reason != "contained" {
		t.Errorf("A's history of %s: %+v, want lifted by carol for contained", d.ID, onA)
	}
}
