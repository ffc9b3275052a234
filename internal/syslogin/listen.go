package syslogin

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a TCP listener: connections past MaxConns are closed at once,
// and one silent for IdleTimeout is closed (senders reconnect).
const (
	MaxConns    = 64
	IdleTimeout = 10 * time.Minute
)

// Stats counts what a listener met. Messages that arrive are Received;
// the ones from senders not allowed are Denied (a TCP connection counts
// once), those over MaxMessage TooBig, and broken octet counting Broken.
// What the connlog parser cannot read is counted by its caller.
type Stats struct {
	Received, Denied, TooBig, Broken atomic.Int64
}

// Listener is one `connlog syslog` line's share of a socket.
type Listener struct {
	sock *socket
	h    *holder
}

// holder is what a Listener hears with.
type holder struct {
	spec   Spec
	handle func(msg []byte)
	logf   func(format string, args ...any)
}

// socket is an open UDP or TCP socket. A reload starts the new
// configuration before it stops the old one, so a second Listen on the
// same address (as written, or the one port 0 picked) takes over the open
// socket rather than failing with "address in use"; the newest Listener
// hears, and the socket closes with the last one.
type socket struct {
	key   string
	udp   net.PacketConn
	tcp   net.Listener
	stats Stats

	mu      sync.Mutex
	holders []*holder
	conns   map[net.Conn]struct{}
	cur     atomic.Pointer[holder]
	wg      sync.WaitGroup

	logMu  sync.Mutex
	logged map[netip.Addr]time.Time
}

var registry = struct {
	sync.Mutex
	m map[string]*socket
}{m: map[string]*socket{}}

// Listen opens spec's socket (or joins the one open on the same address)
// and calls handle with each message from an allowed sender, in the
// receiving goroutine; the slice is reused once handle returns. Logf gets
// the few log lines; text from the network is quoted in them.
func Listen(spec Spec, handle func(msg []byte), logf func(format string, args ...any)) (*Listener, error) {
	h := &holder{spec: spec, handle: handle, logf: logf}
	key := spec.String()
	shared := !strings.HasSuffix(spec.Addr, ":0")
	registry.Lock()
	defer registry.Unlock()
	if s, ok := registry.m[key]; ok && shared {
		s.mu.Lock()
		s.holders = append(s.holders, h)
		s.cur.Store(h)
		s.mu.Unlock()
		return &Listener{sock: s, h: h}, nil
	}
	s := &socket{key: key, holders: []*holder{h}, conns: map[net.Conn]struct{}{}, logged: map[netip.Addr]time.Time{}}
	s.cur.Store(h)
	var err error
	if spec.Network == "udp" {
		s.udp, err = net.ListenPacket("udp", spec.Addr)
	} else {
		s.tcp, err = net.Listen("tcp", spec.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connlog syslog %s: %w", spec, err)
	}
	l := &Listener{sock: s, h: h}
	if !shared { // a reload names the port that was picked
		s.key = spec.Network + "://" + l.Addr().String()
	}
	registry.m[s.key] = s
	if spec.Network == "udp" {
		s.wg.Go(s.serveUDP)
	} else {
		s.wg.Go(s.serveTCP)
	}
	return l, nil
}

// Addr is the address listened on, with the port picked for port 0.
func (l *Listener) Addr() net.Addr {
	if l.sock.udp != nil {
		return l.sock.udp.LocalAddr()
	}
	return l.sock.tcp.Addr()
}

// Stats are the counters of the socket, shared with a Listener on the
// same address.
func (l *Listener) Stats() *Stats { return &l.sock.stats }

// Close leaves the socket, and closes it if no Listener is left; then it
// waits for its goroutines.
func (l *Listener) Close() {
	s := l.sock
	registry.Lock()
	s.mu.Lock()
	for i, h := range s.holders {
		if h == l.h {
			s.holders = append(s.holders[:i], s.holders[i+1:]...)
			break
		}
	}
	last := len(s.holders) == 0
	if !last {
		s.cur.Store(s.holders[len(s.holders)-1])
	} else if registry.m[s.key] == s {
		delete(registry.m, s.key)
	}
	s.mu.Unlock()
	registry.Unlock()
	if !last {
		return
	}
	if s.udp != nil {
		s.udp.Close()
	} else {
		s.tcp.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}
	s.wg.Wait()
}

func (s *socket) serveUDP() {
	buf := make([]byte, MaxMessage+1)
	for {
		n, from, err := s.udp.(*net.UDPConn).ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors and the like: the socket is fine
		}
		h := s.cur.Load()
		switch {
		case !h.spec.allowed(from.Addr()):
			s.deny(h, from.Addr())
		case n > MaxMessage:
			s.stats.TooBig.Add(1)
		default:
			s.stats.Received.Add(1)
			// Some senders end a datagram with a newline all the same.
			h.handle(bytes.TrimRight(buf[:n], "\r\n"))
		}
	}
}

func (s *socket) serveTCP() {
	sem := make(chan struct{}, MaxConns)
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
		if h := s.cur.Load(); !h.spec.allowed(from) {
			s.deny(h, from)
			c.Close()
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			s.cur.Load().logf("connlog syslog %s: %d connections already; closing the one from %s", s.key, MaxConns, from)
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() { <-sem }()
			s.serveConn(c)
		})
	}
}

// serveConn reads messages from one TCP connection.
func (s *socket) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	f := NewFramer(idleReader{c})
	for {
		msg, err := f.Next()
		switch {
		case errors.Is(err, ErrTooBig):
			s.stats.TooBig.Add(1)
			if f.counting {
				return
			}
		case err != nil:
			if errors.Is(err, errFraming) {
				s.stats.Broken.Add(1)
			}
			return
		default:
			s.stats.Received.Add(1)
			s.cur.Load().handle(msg)
		}
	}
}

// idleReader closes a connection silent for IdleTimeout.
type idleReader struct{ c net.Conn }

func (r idleReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(IdleTimeout))
	return r.c.Read(p)
}

// deny counts a message from a sender not allowed, and logs it once a
// minute per sender.
func (s *socket) deny(h *holder, from netip.Addr) {
	n := s.stats.Denied.Add(1)
	now := time.Now()
	s.logMu.Lock()
	last, seen := s.logged[from]
	if !seen || now.Sub(last) >= time.Minute {
		if len(s.logged) >= 4096 { // a spoofed flood: forget, do not grow
			clear(s.logged)
		}
		s.logged[from] = now
	}
	s.logMu.Unlock()
	if !seen || now.Sub(last) >= time.Minute {
		h.logf("connlog syslog %s: dropping messages from %s, not in allow (%d dropped so far)", s.key, from, n)
	}
}
