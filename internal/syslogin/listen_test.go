package syslogin

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector gathers what a Listener hands over.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) handle(msg []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(msg))
	c.mu.Unlock()
}

// wait waits until the messages are want.
func (c *collector) wait(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.msgs)
		c.mu.Unlock()
		if slices.Equal(got, want) || (len(got) == 0 && len(want) == 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listen(t *testing.T, spec Spec, c *collector) *Listener {
	t.Helper()
	l, err := Listen(spec, c.handle, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func send(t *testing.T, l *Listener, data ...string) {
	t.Helper()
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, d := range data {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListenUDPAndTCP(t *testing.T) {
	var u, c collector
	ul := listen(t, Spec{Network: "udp", Addr: "127.0.0.1:0"}, &u)
	tl := listen(t, Spec{Network: "tcp", Addr: "127.0.0.1:0"}, &c)
	if ul.Addr().(*net.UDPAddr).Port == 0 || tl.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("port 0 not resolved: %v %v", ul.Addr(), tl.Addr())
	}
	send(t, ul, "<1>one", "<1>two")
	u.wait(t, "<1>one", "<1>two")
	send(t, tl, "6 <1>one7 <1>two\n")         // octet counting
	send(t, tl, "<1>three\n<1>four\n<1>five") // newline, last one at close
	c.wait(t, "<1>one", "<1>two", "<1>three", "<1>four", "<1>five")
	if n := tl.Stats().Received.Load(); n != 5 {
		t.Errorf("tcp received %d, want 5", n)
	}
}

// Senders outside allow are dropped and counted; without allow only
// loopback is heard.
func TestListenAllow(t *testing.T) {
	var u, c collector
	ul := listen(t, Spec{Network: "udp", Addr: "127.0.0.1:0", Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, &u)
	tl := listen(t, Spec{Network: "tcp", Addr: "127.0.0.1:0", Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, &c)
	for range 3 {
		send(t, ul, "<1>x")
	}
	send(t, tl, "<1>x\n")
	deadline := time.Now().Add(5 * time.Second)
	for ul.Stats().Denied.Load() != 3 || tl.Stats().Denied.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("denied udp %d tcp %d, want 3 and 1", ul.Stats().Denied.Load(), tl.Stats().Denied.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	u.wait(t)
	c.wait(t)
	if !(Spec{}).allowed(netip.MustParseAddr("::1")) || (Spec{}).allowed(netip.MustParseAddr("10.0.0.1")) {
		t.Error("without allow, want loopback only")
	}
}

// Oversized messages are counted, not handed over, and do not stop the
// newline framing.
func TestListenTooBig(t *testing.T) {
	var c collector
	tl := listen(t, Spec{Network: "tcp", Addr: "127.0.0.1:0"}, &c)
	send(t, tl, "<1>a\n"+strings.Repeat("x", MaxMessage+10)+"\n<1>b\n")
	c.wait(t, "<1>a", "<1>b")
	if n := tl.Stats().TooBig.Load(); n != 1 {
		t.Errorf("too big = %d, want 1", n)
	}
	send(t, tl, fmt.Sprintf("%d <1>", MaxMessage+1)) // octet counting: the connection ends
	deadline := time.Now().Add(5 * time.Second)
	for tl.Stats().TooBig.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("an oversized octet count was not counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A second Listen on an address in use (as a reload does, before the old
// configuration stops) shares the socket: the newest hears, and the
// socket stays open until the last one closes.
func TestListenShared(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			var old, cur collector
			first, err := Listen(Spec{Network: network, Addr: "127.0.0.1:0"}, old.handle, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			addr := first.Addr().String()
			second, err := Listen(Spec{Network: network, Addr: addr}, cur.handle, t.Logf)
			if err != nil {
				t.Fatalf("second Listen on %s: %v", addr, err)
			}
			first.Close()
			send(t, second, "<1>after reload\n")
			cur.wait(t, "<1>after reload")
			second.Close()
			if _, err := net.Dial(network, addr); err == nil && network == "tcp" {
				t.Errorf("%s still accepts after the last Close", addr)
			}
			third, err := Listen(Spec{Network: network, Addr: addr}, cur.handle, t.Logf)
			if err != nil {
				t.Fatalf("Listen after the last Close: %v", err)
			}
			third.Close()
		})
	}
}

func TestParseSpec(t *testing.T) {
	spec, format, rest, err := ParseSpec(strings.Fields("udp://0.0.0.0:5514 eve allow 10.1.0.0/16 192.0.2.7 alerts 2"))
	if err != nil || spec.String() != "udp://0.0.0.0:5514" || format != "eve" || !slices.Equal(rest, []string{"alerts", "2"}) ||
		fmt.Sprint(spec.Allow) != "[10.1.0.0/16 192.0.2.7/32]" {
		t.Errorf("got %+v %q %q %v", spec, format, rest, err)
	}
	if _, _, rest, err := ParseSpec(strings.Fields("tcp://[::1]:5514 netfilter")); err != nil || len(rest) != 0 {
		t.Errorf("loopback without allow: %q, %v", rest, err)
	}
	for _, bad := range []string{
		"udp://0.0.0.0:5514 netfilter",            // beyond loopback without allow
		"tcp://:5514 netfilter",                   // all addresses, without allow
		"http://127.0.0.1:5514 netfilter",         // not udp or tcp
		"udp://127.0.0.1 netfilter",               // no port
		"udp://127.0.0.1:5514 netfilter allow",    // allow without CIDR
		"udp://127.0.0.1:5514 netfilter allow x1", // not a CIDR
		"udp://127.0.0.1:5514",                    // no format
	} {
		if _, _, _, err := ParseSpec(strings.Fields(bad)); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

// Past MaxConns, a new TCP connection is closed at once; the ones open
// keep being served.
func TestListenMaxConns(t *testing.T) {
	var c collector
	tl := listen(t, Spec{Network: "tcp", Addr: "127.0.0.1:0"}, &c)
	var want []string
	for i := range MaxConns {
		conn, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		msg := fmt.Sprintf("<1>conn %d", i)
		conn.Write([]byte(msg + "\n"))
		want = append(want, msg)
		c.wait(t, want...) // served, so counted against MaxConns
	}
	extra, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection %d: read %d, %v; want it closed by the server", MaxConns+1, n, err)
	}
}
