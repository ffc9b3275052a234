package nftset

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dialTimeout bounds a connect in the test namespace. Over loopback an
// open port answers at once; a dropped SYN gets no answer at all, so the
// connect runs into this timeout.
const dialTimeout = 750 * time.Millisecond

// netNS is a network namespace of the test's own, deleted at cleanup.
type netNS struct {
	name string
	fd   int
}

// newNetNS creates a namespace with lo up and the given addresses on lo.
func newNetNS(t *testing.T, addrs ...string) *netNS {
	t.Helper()
	requireNetAdmin(t)
	n := &netNS{name: fmt.Sprintf("cipt-%08x", rand.Uint32())}
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	f, err := os.Open("/var/run/netns/" + n.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n.fd = int(f.Fd())
	run(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	for _, a := range addrs {
		args := []string{"ip", "-n", n.name, "addr", "add", a, "dev", "lo"}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		run(t, args...)
	}
	return n
}

// requireNetAdmin skips the test unless it may create namespaces and
// change their firewall.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("needs root for network namespaces: running as uid %d", uid)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Skipf("needs root for network namespaces: capget: %v", err)
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			t.Skipf("needs root for network namespaces: no %s", c.name)
		}
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft runs the nft tool in the namespace.
func (n *netNS) nft(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", n.name, "nft"}, args...)...)
}

// do runs fn on an OS thread switched into the namespace, so the sockets
// fn opens live there (and stay there when used from other threads).
func (n *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Unlocked only once back in the original namespace: otherwise
		// the goroutine exits locked and the runtime ends the thread.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// listen starts a TCP server on ip in the namespace that accepts and
// closes connections.
func (n *netNS) listen(t *testing.T, ip string) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := n.do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(ip, "0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dial connects from inside the namespace, from src unless it is "".
func (n *netNS) dial(src string, dst netip.AddrPort) error {
	return n.do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// wantOpen fails the test unless a connect from src to dst succeeds.
func (n *netNS) wantOpen(t *testing.T, src string, dst netip.AddrPort) {
	t.Helper()
	if err := n.dial(src, dst); err != nil {
		t.Fatalf("connect %s -> %v: %v, want it to succeed", src, dst, err)
	}
}

// wantDropped fails the test unless a connect from src to dst times out:
// a drop rule swallows the SYN, while a missing listener refuses at once.
func (n *netNS) wantDropped(t *testing.T, src string, dst netip.AddrPort) {
	t.Helper()
	err := n.dial(src, dst)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("connect %s -> %v succeeded, want it dropped", src, dst)
	case !errors.As(err, &ne) || !ne.Timeout():
		t.Fatalf("connect %s -> %v: %v, want a timeout (dropped), not another failure", src, dst, err)
	}
}
