package test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coredns-cip/coredns-cip/internal/browsertest"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/nftset"
)

// xssName is a name a client resolves whose labels are markup; the zone's
// wildcard answers it with torIP.
const xssName = "<img/src=x/onerror=document.title=7>.x.example.org."

// xssRef is an event reference that is markup.
const xssRef = "<script>document.title='pwned'</script>"

// The console in a real headless Chromium against the real binary: an
// analyst logs in with a token, sees the decision an event produced, opens
// its timeline and lifts it with a reason; the nftables element (in a
// network namespace) and the EDL entry are gone, the DNS answer is the
// real one again and the audit record names the token. A name and an
// event ref that are markup render as text.
//
// It needs the history and listing API of issue 14 (GET /v1/decisions…):
// against a binary without it, it skips, saying so.
func TestConsoleLiftsADecisionEndToEnd(t *testing.T) {
	netnstest.RequireNetAdmin(t)
	if browsertest.Find() == "" {
		t.Skip("no Chromium: install Debian's chromium-headless-shell (as .ci/run does) or set $CHROMIUM")
	}
	ns := netnstest.New(t)
	_, fake := fakeapitest.Start(t)
	const token = "console-e2e-operator-token-0123456789"
	srv := startCIPServer(t, serverOptions{
		apiURL: fake, token: token, zone: "*.x 3600 IN A 45.83.0.52\n",
		options: []string{"enforce all", "hook nftables inet cip blocked4 blocked6 create netns " + ns.Name},
	})
	if status, body := srv.do("GET", "/v1/decisions?limit=1", nil); status == http.StatusNotFound {
		t.Skipf("this binary has no GET /v1/decisions (the history API of issue 14): %s", body)
	}

	queryA(t, srv.dnsAddr, taggedClient, xssName)
	srv.blockBoth() // the event: blocks for badIP and torIP
	srv.postEvent(taggedClient, xssRef)
	waitSet(t, ns, func(ips []netip.Addr) bool { return slices.Contains(ips, netip.MustParseAddr(badIP)) })
	if got := answerA(t, queryA(t, srv.dnsAddr, otherClient, badName)); slices.Equal(got, []string{badIP}) {
		t.Fatalf("%s is answered with %v while it is blocked", badName, got)
	}

	ctx := browsertest.Start(t, 2*time.Minute)
	b := &e2eBrowser{t: t, ctx: ctx}
	b.do(chromedp.Navigate(srv.api+"/ui/decisions?state=active&ip="+badIP),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login")))
	b.do(chromedp.WaitVisible(chromedp.CSS("table.decisions a[href^='/ui/decisions/cip-']")))
	b.do(chromedp.Click(chromedp.CSS("table.decisions a[href^='/ui/decisions/cip-']")))
	b.do(chromedp.WaitVisible(chromedp.CSS("#decision-id")))
	id, timeline := b.text("#decision-id"), b.text("#timeline")
	if b.text("#target") != badIP || b.text("#state") != "active" || !strings.Contains(timeline, "event") || !strings.Contains(timeline, "block") {
		t.Fatalf("decision %s: target %q, state %q, timeline %q", id, b.text("#target"), b.text("#state"), timeline)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#lift-reason"), "false positive: console e2e"),
		chromedp.Click(chromedp.CSS("#lift")))
	b.do(chromedp.WaitVisible(chromedp.CSS("#flash")))
	if state := b.text("#state"); state != "lifted" {
		t.Fatalf("after the lift the decision is %q (%s)", state, b.text("#flash"))
	}

	b.screenshot("console-decision.png")
	waitSet(t, ns, func(ips []netip.Addr) bool { return !slices.Contains(ips, netip.MustParseAddr(badIP)) })
	if slices.Contains(srv.blocklist(), badIP) {
		t.Errorf("the EDL still lists %s after the lift", badIP)
	}
	waitFor(t, "the real answer for "+badName, func() (bool, string) {
		got := answerA(t, queryA(t, srv.dnsAddr, otherClient, badName))
		return slices.Equal(got, []string{badIP}), fmt.Sprint(got)
	})
	waitFor(t, "an unblock audit record naming the token", func() (bool, string) {
		entries := srv.auditEntries()
		return slices.ContainsFunc(entries, func(e auditEntry) bool {
			return e.Kind == "unblock" && e.Decision == id && e.Actor == "token_file"
		}), fmt.Sprint(entries)
	})

	// Markup from DNS and from an event is shown as text.
	b.do(chromedp.Navigate(srv.api+"/ui/decisions?ip="+torIP), chromedp.WaitVisible(chromedp.CSS("table.decisions")))
	if names := b.text("table.decisions"); !strings.Contains(names, "<img/src=x/onerror=document.title=7>") {
		t.Errorf("the decisions of %s do not show the name %s as text: %q", torIP, xssName, names)
	}
	b.do(chromedp.Navigate(srv.api+"/ui/events?client="+taggedClient), chromedp.WaitVisible(chromedp.CSS("table.events")))
	if refs := b.text("table.events"); !strings.Contains(refs, xssRef) {
		t.Errorf("the events page does not show the ref %s as text: %q", xssRef, refs)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title == "7" || title == "pwned" {
		t.Errorf("a payload ran: document.title %q (%v)", title, err)
	}
	b.do(chromedp.Navigate(srv.api+"/ui/"), chromedp.WaitVisible(chromedp.CSS("main")))
	b.screenshot("console-overview.png")
}

// screenshot saves the page to $CIP_SCREENSHOTS/name, if that is set: the
// README's pictures come from this test, against the real binary.
func (b *e2eBrowser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("CIP_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// e2eBrowser runs steps in the browser of ctx, failing the test with the
// page it is on when one fails.
type e2eBrowser struct {
	t   *testing.T
	ctx context.Context
}

func (b *e2eBrowser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("location.href + '\\n' + document.body.innerText"))
		b.t.Fatalf("%v; the browser shows %s", err, page)
	}
}

func (b *e2eBrowser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return s
}

// waitSet polls the namespace's IPv4 set until want(its IPs) holds.
func waitSet(t *testing.T, ns *netnstest.NetNS, want func([]netip.Addr) bool) {
	t.Helper()
	set, err := nftset.New(nftset.Config{Family: "inet", Table: "cip", Set4: "blocked4", Set6: "blocked6", NetNS: ns.FD})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	waitFor(t, "the nftables set", func() (bool, string) {
		els, err := set.Elements()
		if err != nil {
			return false, err.Error()
		}
		var ips []netip.Addr
		for _, el := range els {
			ips = append(ips, el.IP)
		}
		return want(ips), fmt.Sprint(ips)
	})
}
