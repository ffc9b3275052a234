package enforce_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/enforce"
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
