package test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
)

// TestVersion: -version and "version" print the identity the Makefile's
// -ldflags gave the binary (buildBinary sets the test values), and
// CoreDNS's version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"version"}, {"--version"}} {
		stdout, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("coredns-cip %s: exit %d, stderr:\n%s", args[0], code, stderr)
		}
		for _, want := range []string{"coredns-cip " + testVersion, "commit " + testCommit[:7], "built " + testBuildDate, "CoreDNS-1.15.0", " go1."} {
			if !strings.Contains(stdout, want) {
				t.Errorf("coredns-cip %s prints %q, without %q", args[0], stdout, want)
			}
		}
	}
}

// TestBuildInfoMetrics: a scrape shows CoreDNS's coredns_build_info with
// the commit as its revision, and coredns_cipvalidate_build_info with the
// whole identity.
func TestBuildInfoMetrics(t *testing.T) {
	_, fake := fakeapitest.Start(t)
	srv := startCIPServer(t, serverOptions{apiURL: fake, metrics: true})
	scrape := scrapeMetrics(t, srv.metricsURL)
	for _, want := range []string{
		`coredns_build_info{goversion="go1.`,
		`revision="` + testCommit + `",version="1.15.0"} 1`,
		`coredns_cipvalidate_build_info{build_date="` + testBuildDate + `",commit="` + testCommit + `",coredns_version="1.15.0",goversion="go1.`,
		`version="` + testVersion + `"} 1`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("the metrics lack %s:\n%s", want, grepLines(scrape, "build_info"))
		}
	}
}

// scrapeMetrics returns the text of a Prometheus scrape of url.
func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
