// Package coretest starts an in-process CoreDNS server from a Corefile for
// tests. Unlike github.com/coredns/coredns/test, it does not import every
// CoreDNS plugin (and the cloud SDKs behind them): a test gets exactly the
// plugins it imports itself, plus any it registers with
// cipvalidate.RegisterDirective.
package coretest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/miekg/dns"
)

// startMu serialises starting and stopping: both touch caddy's process-wide
// instance list, and a start reads dnsserver.Directives.
var startMu sync.Mutex

var quiet = sync.OnceFunc(func() {
	caddy.Quiet = true
	dnsserver.Quiet = true
})

// Start starts CoreDNS with corefile and returns the instance and the UDP and
// TCP addresses of its first server. Servers must listen on port 0 (".:0");
// CoreDNS binds with SO_REUSEPORT, so two tests on one fixed port would share
// it silently instead of failing. The server is stopped when the test ends.
// Start fails the test if CoreDNS rejects the Corefile. It returns once the
// plain DNS servers answer; servers of other transports are not waited for.
func Start(t testing.TB, corefile string) (inst *caddy.Instance, udpAddr, tcpAddr string) {
	t.Helper()
	if err := dnsserver.Register(); err != nil {
		t.Fatalf("coretest: register the dns server type: %v", err)
	}
	quiet()

	startMu.Lock()
	inst, err := caddy.Start(caddy.CaddyfileInput{
		Contents:       []byte(corefile),
		Filepath:       "Corefile",
		ServerTypeName: "dns",
	})
	startMu.Unlock()
	if err != nil {
		t.Fatalf("coretest: start CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	t.Cleanup(func() {
		if _, gone := replaced.Load(inst); gone {
			return
		}
		if err := stop(inst); err != nil {
			t.Errorf("coretest: stop CoreDNS: %v", err)
		}
	})
	awaitAll(t, inst, corefile)
	udpAddr, tcpAddr = Addrs(inst, 0)
	if udpAddr == "" && tcpAddr == "" {
		t.Fatalf("coretest: CoreDNS started no DNS server\nCorefile:\n%s", corefile)
	}
	return inst, udpAddr, tcpAddr
}

// replaced holds the instances that Reload replaced (their servers and
// callbacks now belong to the new instance, which the test stops instead)
// and those Stop stopped.
var replaced sync.Map

// Stop stops inst now, as the coredns binary does on SIGTERM, rather than
// when the test ends: a test that restarts a server starts a new one from
// the same Corefile after it.
func Stop(t testing.TB, inst *caddy.Instance) {
	t.Helper()
	if _, gone := replaced.LoadOrStore(inst, true); gone {
		return
	}
	if err := stop(inst); err != nil {
		t.Errorf("coretest: stop CoreDNS: %v", err)
	}
}

// Reload reloads inst with corefile as CoreDNS's reload plugin does
// (caddy.Instance.Restart: listeners are handed over, the old instance's
// OnRestart runs first and its OnShutdown after the new one started) and
// returns the new instance, stopped when the test ends.
func Reload(t testing.TB, inst *caddy.Instance, corefile string) *caddy.Instance {
	t.Helper()
	startMu.Lock()
	next, err := inst.Restart(caddy.CaddyfileInput{
		Contents:       []byte(corefile),
		Filepath:       "Corefile",
		ServerTypeName: "dns",
	})
	startMu.Unlock()
	if err != nil {
		t.Fatalf("coretest: reload CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	if next == inst {
		t.Fatalf("coretest: reload kept the old instance\nCorefile:\n%s", corefile)
	}
	replaced.Store(inst, true)
	t.Cleanup(func() {
		if _, gone := replaced.Load(next); gone {
			return
		}
		if err := stop(next); err != nil {
			t.Errorf("coretest: stop CoreDNS: %v", err)
		}
	})
	awaitAll(t, next, corefile)
	return next
}

// awaitAll waits until every plain DNS server of inst answers.
func awaitAll(t testing.TB, inst *caddy.Instance, corefile string) {
	t.Helper()
	for k := range inst.Servers() {
		udp, tcp := Addrs(inst, k)
		if udp == "" || tcp == "" {
			continue // not plain DNS (tls://, https://, grpc://, quic://): no probe
		}
		if err := awaitServing(udp, tcp); err != nil {
			t.Fatalf("coretest: CoreDNS does not answer: %v\nCorefile:\n%s", err, corefile)
		}
	}
}

// awaitServing returns once the servers on udpAddr and tcpAddr answer.
// caddy.Start returns before the serving goroutines have started, and an
// instance stopped before then skips them: they then serve forever and
// Instance.Wait never returns. The probe is a message without a question,
// which the server rejects with FORMERR before any plugin sees it, so it
// neither reaches an upstream nor counts in the plugins' metrics.
func awaitServing(udpAddr, tcpAddr string) error {
	probe := new(dns.Msg)
	probe.Id = dns.Id()
	deadline := time.Now().Add(Timeout)
	for _, target := range []struct{ network, addr string }{{"udp", udpAddr}, {"tcp", tcpAddr}} {
		c := &dns.Client{Net: target.network, Timeout: 100 * time.Millisecond}
		for {
			_, _, err := c.Exchange(probe, target.addr)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s %s: %w", target.network, target.addr, err)
			}
		}
	}
	return nil
}

// stopTimeout bounds the wait for the serving goroutines after Stop; CoreDNS
// gives in-flight connections up to 5s by default.
const stopTimeout = 10 * time.Second

// stop stops inst the way the coredns binary does on SIGTERM: shutdown
// callbacks first (plugins' OnShutdown, which also run on reload), then the
// servers, then it waits for their serving goroutines to return.
func stop(inst *caddy.Instance) error {
	startMu.Lock()
	defer startMu.Unlock()
	err := errors.Join(inst.ShutdownCallbacks()...)
	err = errors.Join(err, inst.Stop())

	stopped := make(chan struct{})
	go func() {
		inst.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		err = errors.Join(err, fmt.Errorf("servers still running %s after Stop", stopTimeout))
	}
	return err
}

// Addrs returns the UDP and TCP addresses of the k-th server of inst, or empty
// strings when there is no such server or transport. Server blocks that share
// an address (".:0" and "example.org:0") share one server. An unspecified
// host ("[::]", "0.0.0.0") is replaced by 127.0.0.1, so test traffic stays on
// loopback.
func Addrs(inst *caddy.Instance, k int) (udpAddr, tcpAddr string) {
	srvs := inst.Servers()
	if k < 0 || k >= len(srvs) {
		return "", ""
	}
	return dialable(srvs[k].LocalAddr()), dialable(srvs[k].Addr())
}

func dialable(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Timeout bounds every exchange of Exchange and ExchangeTCP.
const Timeout = 5 * time.Second

// Exchange sends m to addr over UDP and returns the response. It fails the
// test if no response arrives within Timeout.
func Exchange(t testing.TB, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	return exchange(t, "udp", addr, m)
}

// ExchangeTCP is Exchange over TCP.
func ExchangeTCP(t testing.TB, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	return exchange(t, "tcp", addr, m)
}

func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: Timeout}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("coretest: %s exchange with %s for %s: %v", network, addr, questionString(m), err)
	}
	return r
}

func questionString(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return "an empty question"
	}
	q := m.Question[0]
	return q.Name + " " + dns.TypeToString[q.Qtype]
}
