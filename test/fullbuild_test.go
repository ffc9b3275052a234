package test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/testcerts"
)

// The two full builds, each once per run: they compile every plugin
// CoreDNS ships and the cloud and Kubernetes SDKs with them, minutes on a
// small machine, so they run only without -short. The second shares the
// first's compiled dependencies through the build cache.
var (
	fullOnce, stockOnce         sync.Once
	fullBin, stockBin           string
	fullBuildErr, stockBuildErr error
)

// fullBinary returns the default (drop-in) build of cmd/coredns-cip.
func fullBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the full build takes minutes")
	}
	fullOnce.Do(func() {
		fullBin = filepath.Join(workDir, "coredns-cip-full")
		start := time.Now()
		fullBuildErr = buildBinary(fullBin, "")
		t.Logf("full build of cmd/coredns-cip: %s", time.Since(start).Round(time.Second))
	})
	if fullBuildErr != nil {
		t.Fatal(fullBuildErr)
	}
	return fullBin
}

// stockBinary returns stock CoreDNS built with cipvalidate by
// scripts/build-with-coredns.sh.
func stockBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the full build takes minutes")
	}
	stockOnce.Do(func() {
		stockBin = filepath.Join(workDir, "coredns")
		start := time.Now()
		cmd := exec.Command("bash", "scripts/build-with-coredns.sh", stockBin)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			stockBuildErr = fmt.Errorf("scripts/build-with-coredns.sh: %v\n%s", err, out)
		}
		t.Logf("scripts/build-with-coredns.sh: %s", time.Since(start).Round(time.Second))
	})
	if stockBuildErr != nil {
		t.Fatal(stockBuildErr)
	}
	return stockBin
}

// TestFullBuild: the default build is a drop-in CoreDNS. Its -plugins
// lists every standard plugin, and one server runs DoT (tls), dnstap to a
// unix socket and views with cipvalidate: each answers, the dnstap
// receiver sees the queries, and a tagged client's suspicious IPs get
// blocked.
func TestFullBuild(t *testing.T) {
	bin := fullBinary(t)
	out, err := exec.Command(bin, "-plugins").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -plugins: %v\n%s", bin, err, out)
	}
	plugins := strings.Fields(string(out))
	for _, want := range []string{"kubernetes", "dnstap", "tls", "proxyproto", "view", "etcd", "route53", "cipvalidate", "cache"} {
		if !slices.Contains(plugins, want) {
			t.Errorf("-plugins does not list %q:\n%s", want, out)
		}
	}

	_, fake := fakeapitest.Start(t)
	dir := t.TempDir()
	certs := testcerts.Write(t)
	taps := startDnstapReceiver(t, filepath.Join(dir, "dnstap.sock"))
	dotAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	s := newCustomServer(t, bin, dir, func(dns, ready, events, metrics, zone, state string) string {
		// The view block answers taggedClient with the zone, cipvalidate
		// and dnstap; everyone else gets the catch-all's template answer.
		return fmt.Sprintf(`tls://example.org:%s {
    bind 127.0.0.1
    tls %s %s
    file %s
}
example.org:%s {
    bind 127.0.0.1
    view tagged {
        expr client_ip() == '%s'
    }
    dnstap unix://%s full
    ready %s
    prometheus %s
    cipvalidate {
        api_key %s
        api_url %s
        events %s
        state %s
    }
    file %s
}
example.org:%s {
    bind 127.0.0.1
    template IN A example.org {
        answer "{{ .Name }} 60 IN A 192.0.2.1"
    }
}
`, portOf(dotAddr), certs.ServerCert, certs.ServerKey, zone, dns, taggedClient, taps.path,
			ready, metrics, fakeapitest.Key, fake, events, state, zone, dns)
	})

	if got := answerA(t, queryA(t, s.dnsAddr, taggedClient, cleanName)); !slices.Equal(got, []string{cleanIP}) {
		t.Errorf("view tagged, %s from %s: %v, want [%s]", cleanName, taggedClient, got, cleanIP)
	}
	if got := answerA(t, queryA(t, s.dnsAddr, otherClient, cleanName)); !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("catch-all block, %s from %s: %v, want the template's [192.0.2.1]", cleanName, otherClient, got)
	}
	if got := answerA(t, queryDoT(t, dotAddr, certs.CA, cleanName)); !slices.Equal(got, []string{cleanIP}) {
		t.Errorf("DoT, %s: %v, want [%s]", cleanName, got, cleanIP)
	}
	waitFor(t, "dnstap frame of the view's answer", func() (bool, string) {
		return taps.sawResponse(cleanName, taggedClient)
	})

	blocks := s.blockBoth()
	if _, ok := blocks[badIP]; !ok {
		t.Errorf("no block of %s after the tagged client's event: %v", badIP, blocks)
	}
	if scrape := scrapeMetrics(t, s.metricsURL); !strings.Contains(scrape, `coredns_cipvalidate_build_info{`) ||
		!strings.Contains(grepLines(scrape, "coredns_cipvalidate_answers_inspected_total{"), `view="tagged"`) {
		t.Errorf("the metrics lack cipvalidate's build_info or the view's answers:\n%s", grepLines(scrape, "cipvalidate"))
	}
}

// TestBuildWithCoreDNS: scripts/build-with-coredns.sh (the plugin.cfg route)
// builds stock CoreDNS with cipvalidate, which answers and blocks.
func TestBuildWithCoreDNS(t *testing.T) {
	bin := stockBinary(t)
	out, err := exec.Command(bin, "-plugins").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cipvalidate") || !strings.Contains(string(out), "kubernetes") {
		t.Fatalf("%s -plugins: %v, want cipvalidate and kubernetes listed:\n%s", bin, err, out)
	}
	_, fake := fakeapitest.Start(t)
	s := newCustomServer(t, bin, t.TempDir(), func(dns, ready, events, metrics, zone, state string) string {
		return fmt.Sprintf(`example.org:%s {
    bind 127.0.0.1
    ready %s
    prometheus %s
    cipvalidate {
        api_key %s
        api_url %s
        events %s
        state %s
    }
    file %s
}
`, dns, ready, metrics, fakeapitest.Key, fake, events, state, zone)
	})
	if got := answerA(t, queryA(t, s.dnsAddr, otherClient, cleanName)); !slices.Equal(got, []string{cleanIP}) {
		t.Errorf("%s: %v, want [%s]", cleanName, got, cleanIP)
	}
	if blocks := s.blockBoth(); len(blocks) == 0 {
		t.Error("no blocks after the tagged client's event")
	}
	if scrape := scrapeMetrics(t, s.metricsURL); !strings.Contains(scrape, `coredns_cipvalidate_build_info{`) {
		t.Errorf("no coredns_cipvalidate_build_info:\n%s", grepLines(scrape, "build_info"))
	}
}

// newCustomServer starts bin on the Corefile corefile returns, given the
// DNS port and the ready, events and metrics addresses, the test zone's
// file and a state directory, all in dir; it is killed at cleanup.
func newCustomServer(t *testing.T, bin, dir string, corefile func(dns, ready, events, metrics, zone, state string) string) *cipServer {
	t.Helper()
	s := &cipServer{
		t: t, bin: bin, conf: filepath.Join(dir, "Corefile"), stateDir: filepath.Join(dir, "state"),
		dnsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freeDNSPort(t))),
		http:    &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	ready := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	events := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeTCPPort(t)))
	s.api, s.readyURL, s.metricsURL = "http://"+events, "http://"+ready+"/ready", "http://"+metrics+"/metrics"
	zone := filepath.Join(dir, "example.org.zone")
	writeFile(t, zone, testZone)
	writeFile(t, s.conf, corefile(portOf(s.dnsAddr), ready, events, metrics, zone, s.stateDir))
	s.start()
	t.Cleanup(func() {
		if s.running() {
			s.kill()
		}
	})
	return s
}

// queryDoT asks the DNS-over-TLS server at addr for name's A records,
// trusting the CA in the PEM file ca.
func queryDoT(t *testing.T, addr, ca, name string) *dns.Msg {
	t.Helper()
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &dns.Client{Net: "tcp-tls", Timeout: 5 * time.Second,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("DoT query %s A: %v", name, err)
	}
	return r
}

// dnstapReceiver collects the dnstap messages CoreDNS sends to a unix
// socket, over Frame Streams.
type dnstapReceiver struct {
	path string
	mu   sync.Mutex
	msgs []*dnstap.Message
}

// startDnstapReceiver listens on the unix socket path until the test ends.
func startDnstapReceiver(t *testing.T, path string) *dnstapReceiver {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &dnstapReceiver{path: path}
	frames := make(chan []byte, 64)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				continue
			}
			in, err := dnstap.NewFrameStreamInputTimeout(conn, true, 5*time.Second)
			if err != nil {
				conn.Close()
				continue
			}
			go in.ReadInto(frames) // ends when CoreDNS closes the connection
		}
	})
	go func() {
		for frame := range frames {
			var d dnstap.Dnstap
			if proto.Unmarshal(frame, &d) == nil && d.GetMessage() != nil {
				r.mu.Lock()
				r.msgs = append(r.msgs, d.GetMessage())
				r.mu.Unlock()
			}
		}
	}()
	return r
}

// sawResponse reports whether a CLIENT_RESPONSE to client for name came.
func (r *dnstapReceiver) sawResponse(name, client string) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.GetType() != dnstap.Message_CLIENT_RESPONSE || net.IP(m.GetQueryAddress()).String() != client {
			continue
		}
		var resp dns.Msg
		if resp.Unpack(m.GetResponseMessage()) == nil && len(resp.Question) == 1 && resp.Question[0].Name == name {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%d messages", len(r.msgs))
}
