package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testToken = "Splunk 0123-tok3n-SECRET"

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostile is a batch whose text fields try to break out of JSON and HTML.
func hostile() []Change {
	bad := "a\"b\\c\nd\te </script><b>x</b> \u2028 ☠ \x00 {{.Host}}"
	return []Change{{
		Action: Block, IP: netip.MustParseAddr("203.0.113.7"), Scope: ScopeTagged,
		Client: netip.MustParseAddr("10.0.0.9"), Port: 8443, TTL: 90 * time.Minute,
		Clients: []netip.Addr{netip.MustParseAddr("10.0.0.9")}, Decision: "d-" + bad,
		Reasons: []string{bad, "c2"}, Qnames: []string{bad + ".example."}, Event: bad, Ref: bad, Score: bad,
	}, {
		Action: Unblock, IP: netip.MustParseAddr("2001:db8::1"), Decision: "d-2",
		Actor: bad, Why: WhyAllowlisted + bad,
	}}
}

// decodeAll decodes every JSON value in b, one after another.
func decodeAll(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	for {
		var v map[string]any
		err := d.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, b)
		}
		out = append(out, v)
	}
}

func TestShippedTemplatesRenderHostileDataAsJSON(t *testing.T) {
	paths, _ := filepath.Glob("../../contrib/templates/*.tmpl")
	if len(paths) < 2 {
		t.Fatalf("shipped templates %v, want splunk-hec.tmpl and a SOAR one", paths)
	}
	want := hostile()
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			wt, err := LoadWebhookTemplate(p, "application/json")
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
			body, err := wt.render(want, now)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(body, []byte("</script>")) {
				t.Errorf("body has a raw </script>:\n%s", body)
			}
			docs := decodeAll(t, body)
			switch filepath.Base(p) {
			case "splunk-hec.tmpl":
				if len(docs) != 2 {
					t.Fatalf("%d events, want one per change", len(docs))
				}
				for _, d := range docs {
					if d["time"] != float64(now.Unix()) || d["source"] != "coredns-cip" || d["sourcetype"] == nil || d["host"] == nil {
						t.Errorf("envelope %v lacks time/host/source/sourcetype", d)
					}
				}
				ev, ok := docs[0]["event"].(map[string]any)
				if !ok || ev["decision"] != want[0].Decision || ev["ip"] != "203.0.113.7" || ev["port"] != float64(8443) ||
					ev["ttl"] != float64(5400) || ev["until"] != "2026-05-06T08:38:09Z" ||
					!reflect.DeepEqual(ev["reasons"], []any{want[0].Reasons[0], "c2"}) {
					t.Errorf("event %v does not carry the change intact", ev)
				}
				if ev2 := docs[1]["event"].(map[string]any); ev2["action"] != "unblock" || ev2["allowlisted"] != true || ev2["actor"] != want[1].Actor {
					t.Errorf("unblock event %v", ev2)
				}
			default:
				if len(docs) != 1 {
					t.Fatalf("%d documents, want one", len(docs))
				}
				items, _ := docs[0]["items"].([]any)
				if len(items) != 2 {
					t.Fatalf("items %v, want 2", docs[0]["items"])
				}
				it := items[0].(map[string]any)
				if it["id"] != want[0].Decision || !reflect.DeepEqual(it["description"], []any{want[0].Reasons[0], "c2"}) {
					t.Errorf("item %v does not carry the change intact", it)
				}
				if items[1].(map[string]any)["type"] != "allow" {
					t.Errorf("allowlisted unblock is %v, want type allow", items[1])
				}
			}
		})
	}
}

func TestTemplatedWebhookSendsHeadersAndBodySigned(t *testing.T) {
	srv, reqs := hookServer(t, always(http.StatusOK))
	tmpl := writeFile(t, "t.tmpl", `{{range .Changes}}{"ip": {{json .IP}}, "reasons": {{json .Reasons}}, "sent": {{json (rfc3339 $.Time)}}}{{end}}`)
	wt, err := LoadWebhookTemplate(tmpl, "application/vnd.example+json")
	if err != nil {
		t.Fatal(err)
	}
	keyHeader, err := LoadHeaderValue("X-Api-Key", writeFile(t, "key", "k3y-from-file\n"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", testSecret, WebhookOptions{Template: wt, Headers: []WebhookHeader{
		{Name: "Authorization", Value: testToken}, keyHeader,
		{Name: "Content-Type", Value: "application/vnd.example+json"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := block(1, "d-1")
	c.Reasons = []string{`c2 "x"`}
	if err := w.Apply(context.Background(), []Change{c}); err != nil {
		t.Fatal(err)
	}
	r := <-reqs
	if r.header.Get("Authorization") != testToken || r.header.Get("X-Api-Key") != "k3y-from-file" ||
		r.header.Get("Content-Type") != "application/vnd.example+json" {
		t.Errorf("headers %v, want Authorization, X-Api-Key (from the file, no newline) and the Content-Type given", r.header)
	}
	var got struct {
		IP      string
		Reasons []string
		Sent    string
	}
	if err := json.Unmarshal(r.body, &got); err != nil || got.IP != c.IP.String() || got.Reasons[0] != `c2 "x"` || got.Sent == "" {
		t.Errorf("body %s (%v), want the template's rendering of the change", r.body, err)
	}
	if !verify(testSecret, r.header, r.body) {
		t.Error("a templated body is not signed as sent")
	}
}

func TestTemplatedWebhookRetriedByDispatcher(t *testing.T) {
	srv, reqs := hookServer(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	wt, err := LoadWebhookTemplate(writeFile(t, "t.tmpl", `{{range .Changes}}{"id": {{json .Decision}}}{{end}}`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{Template: wt, Headers: []WebhookHeader{{Name: "Authorization", Value: testToken}}})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	d := NewDispatcher(Config{Sinks: []Sink{w}, FlushEvery: time.Millisecond, Backoff: time.Millisecond, OnResult: rs.add})
	d.Start()
	defer stop(t, d)
	d.Submit(block(1, "d-1"))
	waitFor(t, "the change applied", func() bool { got := rs.get(); return len(got) > 0 && got[len(got)-1].Outcome == Applied })
	for range 2 {
		if r := <-reqs; string(r.body) != `{"id": "d-1"}` || r.header.Get("Authorization") != testToken {
			t.Errorf("attempt sent %s with %v", r.body, r.header)
		}
	}
	for _, res := range rs.get() {
		if res.Err != nil && strings.Contains(res.Err.Error(), testToken) {
			t.Errorf("result error %q shows the token", res.Err)
		}
	}
}

func TestLoadWebhookTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text, contentType, want string }{
		{"parse.tmpl", "{\n  \"ip\": {{json .IP}\n}", "application/json", "parse.tmpl:2:"},
		{"func.tmpl", "{\n\n  {{upper .Host}}}", "application/json", `parse.tmpl:3: function "upper" not defined`},
		{"exec.tmpl", "{{range .Changes}}\n{{.Nope}}{{end}}", "text/plain", `exec.tmpl:2:2: executing`},
		{"notjson.tmpl", `{{range .Changes}}{"ip": {{.IP}}}{{end}}`, "application/json", "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			want := strings.Replace(tc.want, "parse.tmpl", tc.name, 1)
			_, err := LoadWebhookTemplate(p, tc.contentType)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want one naming %s and %q", err, p, want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(dir, "nope.tmpl")
		if _, err := LoadWebhookTemplate(p, "application/json"); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v, want one naming %s", err, p)
		}
	})
	t.Run("plain text need not be JSON", func(t *testing.T) {
		if _, err := LoadWebhookTemplate(writeFile(t, "p.tmpl", "{{range .Changes}}{{.Summary}}\n{{end}}"), "text/plain"); err != nil {
			t.Error(err)
		}
	})
}

func TestWebhookHeaderChecks(t *testing.T) {
	for _, tc := range []struct {
		h    WebhookHeader
		want string
	}{
		{WebhookHeader{"Bad Name", testToken}, "not a valid header name"},
		{WebhookHeader{"X-Ok:", testToken}, "not a valid header name"},
		{WebhookHeader{"host", testToken}, "cannot be given"},
		{WebhookHeader{"Content-Length", testToken}, "cannot be given"},
		{WebhookHeader{"X-CIP-Signature", testToken}, "cannot be given"},
		{WebhookHeader{"x-cip-timestamp", testToken}, "cannot be given"},
		{WebhookHeader{"Authorization", testToken + "\r\nX-Evil: 1"}, "control character"},
		{WebhookHeader{"Authorization", ""}, "empty value"},
	} {
		err := CheckWebhookHeader(tc.h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.h.Name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "tok3n") {
			t.Errorf("error %q shows the value", err)
		}
		if _, err := NewWebhook("https://siem.example/hec", nil, WebhookOptions{Headers: []WebhookHeader{tc.h}}); err == nil || strings.Contains(err.Error(), "tok3n") {
			t.Errorf("NewWebhook with %s: %v, want a refusal without the value", tc.h.Name, err)
		}
	}
	if _, err := LoadHeaderValue("Authorization", writeFile(t, "empty", "\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty header_file: %v", err)
	}
	if _, err := LoadHeaderValue("Authorization", writeFile(t, "two", "Splunk tok3n\nX-Evil: 1\n")); err == nil || strings.Contains(err.Error(), "tok3n") {
		t.Errorf("header_file with two lines: %v, want a refusal without the value", err)
	}
}

func TestWebhookHeaderValueNeverShown(t *testing.T) {
	srv, _ := hookServer(t, always(http.StatusUnauthorized))
	hs := []WebhookHeader{{Name: "Authorization", Value: testToken}}
	w, err := NewWebhook(srv.URL+"/hook/T0K3N", nil, WebhookOptions{Headers: hs})
	if err != nil {
		t.Fatal(err)
	}
	errRejected := w.Apply(context.Background(), []Change{block(1, "d-1")})
	srv.Close()
	errDown := w.Apply(context.Background(), []Change{block(1, "d-1")})
	if errRejected == nil || errDown == nil {
		t.Fatalf("errors %v, %v; want both", errRejected, errDown)
	}
	shown := fmt.Sprintf("%v %+v %#v %s %v %#v %v %+v %s %s", w, w, w, w, hs, hs, hs[0], WebhookOptions{Headers: hs}, errRejected, errDown)
	if strings.Contains(shown, "tok3n") {
		t.Errorf("the token shows in %q", shown)
	}
}
