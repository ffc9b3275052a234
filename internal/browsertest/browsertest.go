// Package browsertest starts a real headless Chromium for tests that
// drive a web page, through chromedp. A test calls Start; without a
// Chromium on the machine it is skipped, with the reason.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// binaries are the Chromium builds tried, in order: Debian's headless
// shell (what .ci/run installs), then full browsers.
var binaries = []string{"chromium-headless-shell", "chromium", "headless_shell", "google-chrome-stable", "google-chrome"}

// Find returns the path of a Chromium binary: $CHROMIUM if set, else the
// first of binaries on $PATH, else "".
func Find() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range binaries {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless Chromium for the test and returns the context
// that chromedp.Run takes, ending after timeout. The browser is closed
// when the test ends.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	bin := Find()
	if bin == "" {
		t.Skip("no Chromium: install Debian's chromium-headless-shell (apt-get install chromium-headless-shell, as .ci/run does) or set $CHROMIUM")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		// Tests run as root, where Chromium's sandbox cannot start; the
		// pages it opens are the test's own, on loopback.
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, so that a Chromium that cannot start fails
	// here, with its error, rather than in the test's first step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}
