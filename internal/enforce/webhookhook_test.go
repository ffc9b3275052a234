package enforce_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

func TestParseWebhookHook(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("hec.token", "Splunk f1le-tok3n\n")
	tmpl := write("hec.tmpl", `{{range .Changes}}{"event": {"ip": {{json .IP}}}}{{end}}`)
	secret := write("secret", "hmac-key\n")

	args := []string{"webhook", "https://hec.example:8088/services/collector/event",
		"header", "X-Tenant", "inl1ne-tok3n", "header_file", "Authorization", tokenFile,
		"template", tmpl, "secret_file", secret}
	h, err := enforce.ParseWebhookHook(args)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != enforce.HookWebhook || h.Webhook == nil || h.Notifies() {
		t.Fatalf("spec %+v, want an enforcing webhook", h)
	}
	wantLine := "webhook https://hec.example:8088/services/collector/event header X-Tenant [redacted] header_file Authorization " +
		tokenFile + " template " + tmpl + " secret_file " + secret
	if h.Line != wantLine {
		t.Errorf("Line %q, want %q", h.Line, wantLine)
	}
	if shown := fmt.Sprintf("%v %+v %#v %s", h, h, h, h.Line); strings.Contains(shown, "tok3n") {
		t.Errorf("a header value shows in %q", shown)
	}

	plain := []string{"webhook", "https://soar.example/h", "secret_file", secret}
	if h, err := enforce.ParseWebhookHook(plain); err != nil || h.Line != strings.Join(plain, " ") {
		t.Errorf("a plain webhook's line %q (%v) changed: its journal would be lost", h.Line, err)
	}
}

func TestParseWebhookHookErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badTmpl := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(badTmpl, []byte("{\n{{json .IP"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := "https://soar.example/h"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"webhook"}, "webhook: no URL; syntax is hook webhook URL [header NAME VALUE]"},
		{[]string{"webhook", u, "header", "Authorization"}, "webhook: header needs 2 value(s)"},
		{[]string{"webhook", u, "headers", "A", "b"}, `webhook: unknown argument "headers"`},
		{[]string{"webhook", u, "header", "Host", "evil.tok3n"}, "webhook: header Host: set by coredns-cip"},
		{[]string{"webhook", u, "header", "A b", "tok3n"}, `webhook: header "A b": not a valid header name`},
		{[]string{"webhook", u, "header", "X-K", "tok3n", "header", "x-k", "tok3n2"}, "webhook: header x-k given twice"},
		{[]string{"webhook", u, "header_file", "Authorization", empty}, "file is empty"},
		{[]string{"webhook", u, "header_file", "Authorization", filepath.Join(dir, "none")}, "header_file Authorization: open " + filepath.Join(dir, "none")},
		{[]string{"webhook", u, "template", filepath.Join(dir, "none.tmpl")}, "webhook template: open " + filepath.Join(dir, "none.tmpl")},
		{[]string{"webhook", u, "template", badTmpl}, badTmpl + ":2:"},
		{[]string{"webhook", u, "template", badTmpl, "template", badTmpl}, "template given twice"},
		{[]string{"webhook", u, "on"}, "webhook: on needs block, unblock, allow or notice"},
		{[]string{"webhook", u, "on", "blocks"}, "webhook: on needs block, unblock, allow or notice"},
		{[]string{"webhook", u, "on", "block", "on", "allow"}, "webhook: on given twice"},
		{[]string{"webhook", u, "scope", "all"}, `scope "all": everyone or tagged`},
	} {
		_, err := enforce.ParseWebhookHook(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "tok3n") {
			t.Errorf("%q: error %q shows a header value", tc.args, err)
		}
	}
}

// A webhook with an on filter notifies as a chat hook does: told of the
// block once, nothing of what the filter drops, and nothing again at a
// restart, while the enforcing webhook gets the block again.
func TestFilteredWebhookIsNotToldAgainAtARestart(t *testing.T) {
	f := newFixture(t)
	rcv := &chatReceiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	tmpl := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{range .Changes}}{"action": {{json .Action}}, "ip": {{json .IP}}}{{end}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"webhook", srv.URL + "/soar", "template", tmpl, "on", "block", "header", "X-Key", "k"}
	notify, err := enforce.ParseWebhookHook(args)
	if err != nil {
		t.Fatal(err)
	}
	if !notify.Notifies() {
		t.Fatal("a webhook with on does not notify")
	}
	hooks := []enforce.HookSpec{f.webhook(f.url, "webhook test"), notify}
	client := netip.MustParseAddr("10.1.2.3")

	e := f.startHooked(t.Name(), hooks...)
	e.Decide(f.suspicious("45.83.0.30"), validate.Job{IP: netip.MustParseAddr("45.83.0.30"), Client: client})
	f.hook.waitFor(t, "block 45.83.0.30")
	waitUntil(t, "the notification", func() bool { return len(rcv.posted()) == 1 })
	if got := rcv.posted()[0]; got != `{"action": "block", "ip": "45.83.0.30"}` {
		t.Errorf("notification %s", got)
	}
	e.Stop()

	e = f.startHooked(t.Name(), hooks...)
	defer e.Stop()
	f.hook.waitFor(t, "block 45.83.0.30", "block 45.83.0.30 cipvalidate")
	e.Reconcile()
	if _, err := e.API().Allow(adminapi.AllowRequest{Value: "45.83.0.30", Reason: "vendor", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	f.hook.waitFor(t, "unblock 45.83.0.30 bob")
	flush(t, e)
	if got := rcv.posted(); len(got) != 1 {
		t.Fatalf("filtered webhook got %d posts, want only the first block:\n%s", len(got), strings.Join(got, "\n"))
	}
}
