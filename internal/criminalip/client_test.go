package criminalip_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

const testKey = "k3y-s3cr3t-DO-NOT-LEAK"

var clean = netip.MustParseAddr("45.83.0.10")

// newFake starts the fake API on loopback and a client for it with fast
// backoff, unlimited rate unless cfg says otherwise.
func newFake(t *testing.T, cfg criminalip.Config) (*fakeapi.Server, *criminalip.Client) {
	t.Helper()
	fake, url := fakeapitest.Start(t, fakeapitest.WithKey(testKey))
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	cfg.BaseURL = url
	if cfg.Rate == 0 {
		cfg.Rate = -1
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Millisecond
	}
	c, err := criminalip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return fake, c
}

func TestReportFixtures(t *testing.T) {
	_, c := newFake(t, criminalip.Config{})
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict == "error" || e.IP == "" {
			continue
		}
		rep, err := c.Report(context.Background(), netip.MustParseAddr(e.IP))
		if err != nil {
			t.Errorf("%s (%s): %v", e.File, e.IP, err)
			continue
		}
		if rep.IP != e.IP || rep.Status != 200 || len(rep.Raw) == 0 {
			t.Errorf("%s: ip %q status %d raw %d bytes", e.File, rep.IP, rep.Status, len(rep.Raw))
		}
	}
}

// TestErrorFixtures serves each error fixture with every HTTP status the
// manifest lists and checks the error class.
func TestErrorFixtures(t *testing.T) {
	classes := map[string]error{
		"auth":  criminalip.ErrBadKey,
		"quota": criminalip.ErrQuota,
		"parse": criminalip.ErrBadResponse,
	}
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict != "error" {
			continue
		}
		want, ok := classes[e.ErrorKind]
		if !ok {
			t.Fatalf("%s: unknown error_kind %q in manifest", e.File, e.ErrorKind)
		}
		body := fixtures.Body(t, e.File)
		for _, status := range e.HTTPStatus {
			t.Run(fmt.Sprintf("%s/%d", e.File, status), func(t *testing.T) {
				var calls atomic.Int32
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					calls.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					w.Write(body)
				}))
				defer srv.Close()
				c, err := criminalip.New(criminalip.Config{APIKey: testKey, BaseURL: srv.URL, Rate: -1,
					BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 3})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_, err = c.Report(context.Background(), clean)
				if !errors.Is(err, want) {
					t.Fatalf("error = %v, want class %v", err, want)
				}
				if got := criminalip.Retryable(err); e.Retryable != nil && got != *e.Retryable {
					t.Errorf("Retryable = %v, manifest says %v", got, *e.Retryable)
				}
				wantCalls := int32(1)
				if criminalip.Retryable(err) {
					wantCalls = 3
				}
				if calls.Load() != wantCalls {
					t.Errorf("API calls = %d, want %d", calls.Load(), wantCalls)
				}
			})
		}
	}
}

func TestSingleflight(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	// Hold answers long enough that all callers overlap.
	fake.SetDelay(200 * time.Millisecond)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			rep, err := c.Report(context.Background(), clean)
			if err == nil && rep.IP != clean.String() {
				err = fmt.Errorf("got report for %q", rep.IP)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.CallsFor(clean.String()); got != 1 {
		t.Errorf("API calls for %s = %d, want 1", clean, got)
	}
}

func TestRetry429ThenSuccess(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	fake.Fault(fakeapi.Mode429, 1)
	rep, err := c.Report(context.Background(), clean)
	if err != nil {
		t.Fatalf("Report after one 429: %v", err)
	}
	if rep.IP != clean.String() || fake.Calls() != 2 {
		t.Errorf("ip %q after %d calls, want %s after 2", rep.IP, fake.Calls(), clean)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	fake.RetryAfter = 1
	fake.Fault(fakeapi.Mode429, 1)
	start := time.Now()
	if _, err := c.Report(context.Background(), clean); err != nil {
		t.Fatal(err)
	}
	// The backoff is at most 5ms here, so only Retry-After explains a wait
	// of a second; this checks the wait happened, not how fast anything is.
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", waited)
	}
}

func TestTransientRetried(t *testing.T) {
	for _, mode := range []fakeapi.Mode{fakeapi.Mode5xx, fakeapi.Mode500, fakeapi.ModeHangup} {
		t.Run(mode.String(), func(t *testing.T) {
			fake, c := newFake(t, criminalip.Config{})
			fake.Fault(mode, 2)
			if _, err := c.Report(context.Background(), clean); err != nil {
				t.Fatalf("after two %s faults: %v", mode, err)
			}
			if fake.Calls() != 3 {
				t.Errorf("calls = %d, want 3", fake.Calls())
			}
		})
	}
}

func TestTransientExhausted(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{MaxAttempts: 3})
	fake.Fault(fakeapi.Mode5xx, -1)
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrTransient) {
		t.Fatalf("error = %v, want ErrTransient", err)
	}
	var e *criminalip.Error
	if !errors.As(err, &e) || e.Attempts != 3 || e.HTTPStatus != 503 {
		t.Errorf("error detail = %+v, want 3 attempts, http 503", e)
	}
	if fake.Calls() != 3 {
		t.Errorf("calls = %d, want 3", fake.Calls())
	}
}

func TestBadKeyNotRetried(t *testing.T) {
	for _, mode := range []fakeapi.Mode{fakeapi.ModeBadKey, fakeapi.ModeBadKey200} {
		t.Run(mode.String(), func(t *testing.T) {
			fake, c := newFake(t, criminalip.Config{})
			fake.Fault(mode, -1)
			_, err := c.Report(context.Background(), clean)
			if !errors.Is(err, criminalip.ErrBadKey) || criminalip.Retryable(err) {
				t.Fatalf("error = %v, want non-retryable ErrBadKey", err)
			}
			if fake.Calls() != 1 {
				t.Errorf("calls = %d, want 1", fake.Calls())
			}
			// A refused key is held: the next IP does not call the API.
			_, err = c.Report(context.Background(), netip.MustParseAddr("45.83.0.21"))
			if !errors.Is(err, criminalip.ErrBadKey) || fake.Calls() != 1 {
				t.Errorf("second request: %v after %d calls, want ErrBadKey without a call", err, fake.Calls())
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{APIKey: "wrong-key"})
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrBadKey) {
		t.Fatalf("error = %v, want ErrBadKey", err)
	}
	if fake.Calls() != 1 {
		t.Errorf("calls = %d, want 1", fake.Calls())
	}
}

func TestQuotaWithHTTP200(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{MaxAttempts: 2})
	fake.Fault(fakeapi.ModeQuota200, -1)
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrQuota) {
		t.Fatalf("error = %v, want ErrQuota from the body status under HTTP 200", err)
	}
	if fake.Calls() != 2 {
		t.Errorf("calls = %d, want 2 (quota is retried)", fake.Calls())
	}
}

func TestSlowTimesOut(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{Timeout: 50 * time.Millisecond, MaxAttempts: 2})
	fake.SlowDelay = time.Minute
	fake.Fault(fakeapi.ModeSlow, -1)
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want ErrTransient wrapping context.DeadlineExceeded", err)
	}
	if fake.Calls() != 2 {
		t.Errorf("calls = %d, want 2 (timeouts are retried)", fake.Calls())
	}
}

func TestCallerContext(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	fake.SetDelay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.Report(ctx, clean)
	if !errors.Is(err, criminalip.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want the caller's deadline as ErrTransient", err)
	}
}

func TestBodyLimit(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{MaxBodyBytes: 1 << 20})
	fake.Fault(fakeapi.ModeHuge, -1)
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrBadResponse) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error = %v, want ErrBadResponse naming the size limit", err)
	}
	if fake.Calls() != 1 {
		t.Errorf("calls = %d, want 1 (an oversize body is not retried)", fake.Calls())
	}
}

func TestMalformed(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	fake.Fault(fakeapi.ModeMalformed, 1)
	_, err := c.Report(context.Background(), clean)
	if !errors.Is(err, criminalip.ErrBadResponse) {
		t.Fatalf("error = %v, want ErrBadResponse", err)
	}
}

func TestNotPublicNeverCalled(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{})
	for _, ip := range []string{"10.0.0.1", "192.168.1.1", "127.0.0.1", "192.0.2.1", "100.64.1.1", "fe80::1", "2001:db8::1", "224.0.0.1"} {
		_, err := c.Report(context.Background(), netip.MustParseAddr(ip))
		if !errors.Is(err, criminalip.ErrNotPublic) {
			t.Errorf("%s: error = %v, want ErrNotPublic", ip, err)
		}
	}
	if fake.Calls() != 0 {
		t.Errorf("calls = %d, want 0", fake.Calls())
	}
}

func TestRateLimit(t *testing.T) {
	fake, c := newFake(t, criminalip.Config{Rate: 20, Burst: 1})
	ips := []string{"45.83.0.10", "45.83.0.21", "45.83.0.22", "45.83.0.31", "45.83.0.32", "45.83.0.41"}
	start := time.Now()
	for _, ip := range ips {
		if _, err := c.Report(context.Background(), netip.MustParseAddr(ip)); err != nil {
			t.Fatal(err)
		}
	}
	// Five gaps of at least 50ms each: the limiter must have held calls back.
	if took := time.Since(start); took < 5*50*time.Millisecond*9/10 {
		t.Errorf("%d calls at 20/s burst 1 took %v; the limiter did not wait", fake.Calls(), took)
	}
}

// TestKeyNeverLeaks provokes every error class and checks that no error
// text and no formatting of the config shows the key, even when the server
// echoes it back.
func TestKeyNeverLeaks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-api-key")
		switch r.URL.Query().Get("ip") {
		case "45.83.0.1":
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"message":"invalid api key %s","status":401}`, key)
		case "45.83.0.2":
			w.WriteHeader(500)
			fmt.Fprintf(w, "upstream failed for key=%s", key)
		default:
			fmt.Fprintf(w, `{"message":"you sent %s","status":429}`, key)
		}
	}))
	defer srv.Close()
	cfg := criminalip.Config{APIKey: testKey, BaseURL: srv.URL, Rate: -1, MaxAttempts: 1, BadKeyHold: time.Nanosecond}
	c, err := criminalip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var texts []string
	for _, ip := range []string{"45.83.0.1", "45.83.0.2", "45.83.0.3"} {
		_, err := c.Report(context.Background(), netip.MustParseAddr(ip))
		if err == nil {
			t.Fatalf("%s: no error", ip)
		}
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	texts = append(texts, fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), fmt.Sprint(cfg.APIKey))
	for _, s := range texts {
		if strings.Contains(s, testKey) {
			t.Errorf("key leaked: %s", s)
		}
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		cfg  criminalip.Config
		want string
	}{
		{criminalip.Config{}, "api key is empty"},
		{criminalip.Config{APIKey: "k", BaseURL: "ftp://x"}, "api url"},
		{criminalip.Config{APIKey: "k", BaseURL: "http://"}, "api url"},
		{criminalip.Config{APIKey: "k", Burst: -1}, "negative"},
	}
	for _, tc := range tests {
		_, err := criminalip.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := criminalip.LoadKeyFile(write("ok.json", `{"api_key": " abc "}`)); err != nil || k != "abc" {
		t.Errorf("api_key: %q, %v", string(k), err)
	}
	if k, err := criminalip.LoadKeyFile(write("alt.json", `{"criminalip_api_key": "xyz"}`)); err != nil || k != "xyz" {
		t.Errorf("criminalip_api_key: %q, %v", string(k), err)
	}
	for name, content := range map[string]string{
		"empty.json":  `{"api_key": ""}`,
		"notobj.json": `sekrit-value`,
		"num.json":    `{"api_key": 12}`,
	} {
		_, err := criminalip.LoadKeyFile(write(name, content))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: error = %v, want one naming the file and not its content", name, err)
		}
	}
	if _, err := criminalip.LoadKeyFile(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
}
