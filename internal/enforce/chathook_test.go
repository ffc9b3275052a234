package enforce_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/validate"
)

// chatReceiver keeps the bodies a chat hook posted.
type chatReceiver struct {
	mu     sync.Mutex
	bodies []string
}

func (c *chatReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, string(b))
	c.mu.Unlock()
}

func (c *chatReceiver) posted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bodies...)
}

// chatHook parses a slack hook line whose URL is in a file.
func chatHook(t *testing.T, url string, opts ...string) enforce.HookSpec {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(path, []byte(url+"/services/T0K3N\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"slack", "url_file", path}, opts...)
	h, err := enforce.ParseChatHook(args, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	h.Line = strings.Join(args, " ")
	return h
}

// A restart gives the webhook every live block again, and the chat
// channel nothing: people were told of the block when it was made.
func TestChatHookIsNotToldAgainAtARestart(t *testing.T) {
	f := newFixture(t)
	chat := &chatReceiver{}
	srv := httptest.NewServer(chat)
	t.Cleanup(srv.Close)
	hooks := []enforce.HookSpec{f.webhook(f.url, "webhook test"), chatHook(t, srv.URL, "on", "block", "allow", "console_url", "https://cip.example.org")}
	client := netip.MustParseAddr("10.1.2.3")

	e := f.startHooked(t.Name(), hooks...)
	e.Decide(f.suspicious("45.83.0.30"), validate.Job{IP: netip.MustParseAddr("45.83.0.30"), Client: client})
	f.hook.waitFor(t, "block 45.83.0.30")
	waitUntil(t, "the chat message", func() bool { return len(chat.posted()) == 1 })
	if m := chat.posted()[0]; !strings.Contains(m, "45.83.0.30") || !strings.Contains(m, "https://cip.example.org/ui/decisions/") {
		t.Errorf("chat message %s", m)
	}
	e.Stop()

	e = f.startHooked(t.Name(), hooks...)
	defer e.Stop()
	f.hook.waitFor(t, "block 45.83.0.30", "block 45.83.0.30 cipvalidate")
	e.Reconcile()
	// An allowlist entry lifts the block: the chat hook (on allow) is
	// told, and that is its only message since the restart.
	if _, err := e.API().Allow(adminapi.AllowRequest{Value: "45.83.0.30", Reason: "vendor", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	f.hook.waitFor(t, "unblock 45.83.0.30 bob")
	flush(t, e)
	got := chat.posted()
	if len(got) != 2 || !strings.Contains(got[1], "Allowlisted, unblocked 45.83.0.30") {
		t.Fatalf("chat got %d message(s) since the start, want the first block and the allow:\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestParseChatHook(t *testing.T) {
	h, err := enforce.ParseChatHook([]string{"teams", "https://prod.example/workflows/T0K3N", "on", "unblock", "allow", "scope", "tagged", "digest", "5m"}, t.Logf)
	if err != nil || !h.Notifies() || h.Chat.Digest != 5*time.Minute || h.Chat.Scope != "tagged" || len(h.Chat.On) != 2 {
		t.Fatalf("ParseChatHook = %+v, %v", h.Chat, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"slack"}, "no URL"},
		{[]string{"slack", "url_file"}, "no URL"},
		{[]string{"slack", "url_file", "/nonexistent/url"}, "url_file"},
		{[]string{"slack", "https://hooks.example/T0K3N", "on"}, "on needs"},
		{[]string{"slack", "https://hooks.example/T0K3N", "on", "expire"}, `on "expire"`},
		{[]string{"slack", "https://hooks.example/T0K3N", "digest", "soon"}, "digest"},
		{[]string{"slack", "https://hooks.example/T0K3N", "scope", "tagged", "scope", "everyone"}, "scope given twice"},
		{[]string{"slack", "https://hooks.example/T0K3N", "colour", "red"}, `unknown option "colour"`},
		{[]string{"teams", "https://hooks.example/T0K3N", "console_url", "ftp://x"}, "console_url"},
	} {
		_, err := enforce.ParseChatHook(tc.args, t.Logf)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "T0K3N") {
			t.Errorf("%q: error %v, want %q (and never the URL's token)", tc.args, err, tc.want)
		}
	}
}

// waitUntil polls cond until it holds; the deadline only bounds a broken
// test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
