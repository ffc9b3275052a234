package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coredns-cip/coredns-cip/internal/browsertest"
)

// A real headless Chromium logs in, opens a decision from a link, reads
// its timeline and lifts it with a reason; the API gets the DELETE with
// the reason and the token. A payload in a name and a ref stays text.
// With $CIP_SCREENSHOTS set to a directory, it saves the overview and the
// decision page there (the README's screenshots).
func TestBrowserLiftsADecision(t *testing.T) {
	api := withDecisions(40)
	d := &api.decisions[1]
	d.Qnames = []string{`<img src=x onerror="document.title='pwned'">.evil.example.`, "bad1.example."}
	d.Events = []string{"ev-9e90b43a5dbb"}
	d.Hooks = append(d.Hooks, Delivery{Hook: "webhook https://soar.example/hook", State: "delivered", DeliveredAt: d.Created, Attempts: 1},
		Delivery{Hook: "edl", State: "delivered", DeliveredAt: d.Created, Attempts: 1})
	d.Timeline = []TimeRecord{
		{At: d.Created.Add(-2 * time.Minute), Kind: "event", Detail: "ev-9e90b43a5dbb edr.malware on 10.1.2.3 (ref SIEM-4711): 12 IPs in the 5m window"},
		{At: d.Created.Add(-time.Minute), Kind: "verdict", Detail: "45.83.0.2 suspicious: SCORE: inbound Critical, outbound Critical; ANONYMITY: tor"},
		{At: d.Created, Kind: "block", Detail: "everyone for 24h (first offence)"},
		{At: d.Created.Add(time.Second), Kind: "hook", Detail: "nftables: element added"},
		{At: d.Created.Add(2 * time.Second), Kind: "hook", Detail: "webhook: 200 from soar.example"},
		{At: d.Created.Add(5 * time.Minute), Kind: "rewrite", Detail: "3 answers sinkholed: bad1.example."},
	}
	d.Evidence = evidence{{"ports", "22, 443"}, {"score_inbound", "Critical"}, {"score_outbound", "Critical"}, {"tags", "tor"}}
	api.clients = []Client{{Client: "10.1.2.3", Since: stubNow.Add(-10 * time.Minute), Until: stubNow.Add(20 * time.Minute), Event: "ev-9e90b43a5dbb", Ref: "SIEM-4711"}}
	api.events = []EventSummary{{ID: "ev-9e90b43a5dbb", Client: "10.1.2.3", Type: "edr.malware", Ref: `<script>document.title='pwned'</script>`,
		At: stubNow.Add(-12 * time.Minute), Backtracked: 12, Decisions: []string{d.ID}}}
	srv := serve(t, api, Config{}, false)

	ctx := browsertest.Start(t, 60*time.Second)
	do(t, ctx,
		chromedp.Navigate(srv.URL+"/ui/decisions/"+d.ID),
		chromedp.WaitVisible(css("#token")),
		chromedp.SendKeys(css("#token"), operatorSecret),
		chromedp.Click(css("#login")),
	)
	do(t, ctx, chromedp.WaitVisible(css("#decision-id")))
	state, timeline := text(t, ctx, "#state"), text(t, ctx, "#timeline")
	if state != "active" || !strings.Contains(timeline, "edr.malware on 10.1.2.3") || !strings.Contains(timeline, "3 answers sinkholed") {
		t.Fatalf("after login the decision page shows state %q, timeline %q", state, timeline)
	}
	if title, qnames := get(t, ctx, chromedp.Title()), text(t, ctx, "#qnames"); title == "pwned" ||
		!strings.Contains(qnames, `<img src=x onerror="document.title='pwned'">.evil.example.`) {
		t.Fatalf("a name with markup ran or was not shown as text: title %q, names %q", title, qnames)
	}
	screenshot(t, ctx, "console-decision.png")

	do(t, ctx,
		chromedp.SendKeys(css("#lift-reason"), "false positive: our pentest box, SIEM-4711"),
		chromedp.Click(css("#lift")),
	)
	do(t, ctx, chromedp.WaitVisible(css("#flash")))
	if state, flash := text(t, ctx, "#state"), text(t, ctx, "#flash"); state != "lifted" || !strings.Contains(flash, "lifted") {
		t.Fatalf("after the lift: state %q, message %q", state, flash)
	}
	got := api.changes()
	if len(got) != 1 || got[0].Method != "DELETE" || got[0].Path != "/v1/decisions/"+d.ID ||
		got[0].Reason != "false positive: our pentest box, SIEM-4711" || got[0].Token != "alice" {
		t.Fatalf("the API got %+v, want one DELETE of %s with the reason, as alice", got, d.ID)
	}

	do(t, ctx, chromedp.Navigate(srv.URL+"/ui/events"), chromedp.WaitVisible(css("td.ref")))
	if title, ref := get(t, ctx, chromedp.Title()), text(t, ctx, "td.ref"); title == "pwned" || ref != `<script>document.title='pwned'</script>` {
		t.Fatalf("an event ref with markup ran or was not shown as text: title %q, ref %q", title, ref)
	}
	do(t, ctx, chromedp.Navigate(srv.URL+"/ui/"), chromedp.WaitVisible(css("#active")))
	screenshot(t, ctx, "console-overview.png")
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// do runs steps in the browser; a step that fails, or takes more than
// 15 s, fails the test, which then shows the page the browser is on.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href + '\\n' + document.body.innerText"))
		t.Fatalf("%v; the browser shows %s", err, page)
	}
}

// get runs an action that reads something.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// text is the visible text of the element sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(css(sel)))
}

// screenshot saves the page to $CIP_SCREENSHOTS/name, if that is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("CIP_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
