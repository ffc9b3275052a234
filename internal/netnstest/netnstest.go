// Package netnstest gives tests a network namespace of their own (root
// only): addresses on its loopback, sockets opened inside it, nft run in
// it, and connects that tell a dropped SYN from a refused one.
package netnstest

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

// DialTimeout bounds a connect in the test namespace. Over loopback an
// open port answers at once; a dropped SYN gets no answer at all, so the
// connect runs into this timeout.
const DialTimeout = 750 * time.Millisecond

// NetNS is a network namespace of the test's own, deleted at cleanup.
type NetNS struct {
	Name string
	FD   int
}

// New creates a namespace with lo up and the given addresses on lo.
func New(t testing.TB, addrs ...string) *NetNS {
	t.Helper()
	RequireNetAdmin(t)
	n := &NetNS{Name: fmt.Sprintf("cipt-%08x", rand.Uint32())}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	f, err := os.Open("/var/run/netns/" + n.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n.FD = int(f.Fd())
	Run(t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	for _, a := range addrs {
		args := []string{"ip", "-n", n.Name, "addr", "add", a, "dev", "lo"}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		Run(t, args...)
	}
	return n
}

// RequireNetAdmin skips the test unless it may create namespaces and
// change their firewall, and has the tools for it.
func RequireNetAdmin(t testing.TB) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("needs root for network namespaces: running as uid %d", uid)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s for network namespaces and their firewall (apt-get install iproute2 nftables): %v", tool, err)
		}
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

// Run runs a command and fails the test if it fails.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Nft runs the nft tool in the namespace.
func (n *NetNS) Nft(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", n.Name, "nft"}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace, so the sockets
// fn opens live there (and stay there when used from other threads).
func (n *NetNS) Do(fn func() error) error {
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
		if err := unix.Setns(n.FD, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
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

// Listen starts a TCP server on ip in the namespace that accepts and
// closes connections.
func (n *NetNS) Listen(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() (err error) {
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

// Dial connects from inside the namespace, from src unless it is "".
func (n *NetNS) Dial(src string, dst netip.AddrPort) error {
	return n.Do(func() error {
		d := net.Dialer{Timeout: DialTimeout}
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

// WantOpen fails the test unless a connect from src to dst succeeds.
func (n *NetNS) WantOpen(t testing.TB, src string, dst netip.AddrPort) {
	t.Helper()
	if err := n.Dial(src, dst); err != nil {
		t.Fatalf("connect %s -> %v: %v, want it to succeed", src, dst, err)
	}
}

// WantDropped fails the test unless a connect from src to dst times out:
// a drop rule swallows the SYN, while a missing listener refuses at once.
func (n *NetNS) WantDropped(t testing.TB, src string, dst netip.AddrPort) {
	t.Helper()
	err := n.Dial(src, dst)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("connect %s -> %v succeeded, want it dropped", src, dst)
	case !errors.As(err, &ne) || !ne.Timeout():
		t.Fatalf("connect %s -> %v: %v, want a timeout (dropped), not another failure", src, dst, err)
	}
}
