package audit

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/coredns-cip/coredns-cip/internal/testcerts"
)

// receiver is a local syslog server that parses what it gets as RFC 5424.
type receiver struct {
	t    *testing.T
	mu   sync.Mutex
	msgs []*rfc5424.SyslogMessage
	errs []error
	addr string
	stop func()
}

func (r *receiver) add(m syslog.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.msgs = append(r.msgs, m.(*rfc5424.SyslogMessage))
}

// waitFor waits until a message's body contains s and returns it.
func (r *receiver) waitFor(s string) *rfc5424.SyslogMessage {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, m := range r.msgs {
			if m.Message != nil && strings.Contains(*m.Message, s) {
				r.mu.Unlock()
				return m
			}
		}
		errs := r.errs
		r.mu.Unlock()
		if len(errs) > 0 {
			r.t.Fatalf("receiver could not parse a frame: %v", errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("no message with %q at the receiver", s)
	return nil
}

func udpReceiver(t *testing.T) *receiver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, addr: pc.LocalAddr().String(), stop: func() { _ = pc.Close() }}
	t.Cleanup(r.stop)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.add(rfc5424.NewParser().Parse(append([]byte(nil), buf[:n]...)))
		}
	}()
	return r
}

// streamReceiver listens on addr ("127.0.0.1:0" for any port) over TCP,
// or TLS when cfg is set, and parses octet-counted frames.
func streamReceiver(t *testing.T, addr string, cfg *tls.Config) *receiver {
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cfg != nil {
			ln, err = tls.Listen("tcp", addr, cfg)
		} else {
			ln, err = net.Listen("tcp", addr)
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	r.stop = func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	}
	t.Cleanup(r.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go octetcounting.NewParser(syslog.WithListener(func(res *syslog.Result) { r.add(res.Message, res.Error) })).Parse(c)
		}
	}()
	return r
}

func openSyslog(t *testing.T, specs ...SyslogSpec) *Log {
	t.Helper()
	l, err := OpenSpec(Spec{Syslog: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func checkFrame(t *testing.T, m *rfc5424.SyslogMessage, app string) {
	t.Helper()
	if m.Appname == nil || *m.Appname != app || m.MsgID == nil || *m.MsgID != "block" ||
		m.Priority == nil || *m.Priority != syslogFacility*8+4 || m.Timestamp == nil || !m.Timestamp.Equal(fixed) {
		t.Errorf("frame header: app %v msgid %v pri %v ts %v", deref(m.Appname), deref(m.MsgID), m.Priority, m.Timestamp)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestSyslogUDPECS(t *testing.T) {
	r := udpReceiver(t)
	l := openSyslog(t, SyslogSpec{URL: "udp://" + r.addr, Format: FormatECS})
	l.Write(hostile)
	m := r.waitFor(`"action":"block"`)
	checkFrame(t, m, "coredns-cip")
	var body map[string]any
	if err := json.Unmarshal([]byte(*m.Message), &body); err != nil {
		t.Fatalf("ECS body: %v: %s", err, *m.Message)
	}
	if field(body, "destination", "ip") != "203.0.113.7" || field(body, "source", "ip") != "192.0.2.10" ||
		field(body, "event", "kind") != "alert" || field(body, "ecs", "version") != ECSVersion {
		t.Errorf("ECS body: %s", *m.Message)
	}
}

func TestSyslogUDPTruncatesAtRuneBoundary(t *testing.T) {
	r := udpReceiver(t)
	l := openSyslog(t, SyslogSpec{URL: "udp://" + r.addr})
	big := hostile
	big.Detail = "marker " + strings.Repeat("é", UDPMaxMessage)
	l.Write(big)
	m := r.waitFor("marker")
	if n := len(*m.Message); n > UDPMaxMessage || n < UDPMaxMessage-200 {
		t.Errorf("message of %d bytes", n)
	}
	if !strings.HasSuffix(*m.Message, "é") {
		t.Errorf("cut inside a rune: %q", (*m.Message)[len(*m.Message)-4:])
	}
}

func TestSyslogTCPCEF(t *testing.T) {
	r := streamReceiver(t, "127.0.0.1:0", nil)
	l := openSyslog(t, SyslogSpec{URL: "tcp://" + r.addr, Format: FormatCEF, App: "dns-audit"})
	l.Write(hostile)
	l.Write(Entry{Time: fixed, Kind: KindAllow, IP: "192.0.2.99", Actor: "ops"})
	m := r.waitFor("CEF:0|coredns-cip|coredns-cip|")
	checkFrame(t, m, "dns-audit")
	rec := parseCEF(t, *m.Message)
	if rec.Ext["dst"] != "203.0.113.7" || rec.Ext["dhost"] != hostile.Qname || rec.Ext["msg"] != "line1\r\nline2 dst=1.1.1.1 \\=  " {
		t.Errorf("CEF body %q -> %v", *m.Message, rec.Ext)
	}
	if rec := parseCEF(t, *r.waitFor("192.0.2.99").Message); rec.Ext["suser"] != "ops" {
		t.Errorf("second frame: %v", rec.Ext)
	}
}

func TestSyslogTLS(t *testing.T) {
	certs := testcerts.Write(t)
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	r := streamReceiver(t, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	l := openSyslog(t, SyslogSpec{URL: "tls://" + r.addr, Format: FormatECS, CA: certs.CA})
	l.Write(hostile)
	m := r.waitFor(`"action":"block"`)
	checkFrame(t, m, "coredns-cip")

	// Without the CA the system pool does not know the server: nothing is
	// delivered and every entry is counted.
	l2 := openSyslog(t, SyslogSpec{URL: "tls://" + r.addr, Format: FormatECS})
	l2.Write(Entry{Time: fixed, Kind: KindBlock, IP: "203.0.113.200"})
	waitDropped(t, l2, 1)
}

// waitDropped waits until l has counted at least n drops in all, and
// returns the count.
func waitDropped(t *testing.T, l *Log, n uint64) uint64 {
	t.Helper()
	var total uint64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range l.Dropped() {
			total += d
		}
		if total >= n {
			return total
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d dropped, want %d", total, n)
	return 0
}

// A receiver that goes away costs entries, counted, and never the
// caller's time; when it comes back, delivery resumes.
func TestSyslogReceiverDownAndBack(t *testing.T) {
	old := syslogBackoff
	syslogBackoff = [2]time.Duration{10 * time.Millisecond, 50 * time.Millisecond}
	t.Cleanup(func() { syslogBackoff = old })

	r := streamReceiver(t, "127.0.0.1:0", nil)
	addr := r.addr
	l := openSyslog(t, SyslogSpec{URL: "tcp://" + addr})
	l.Write(Entry{Time: fixed, Kind: KindBlock, IP: "203.0.113.1"})
	r.waitFor("203.0.113.1")
	r.stop()

	// Far more entries than the buffer holds: every Write returns (a
	// blocking one would hang the test), and what could not go is counted.
	for range 3 * SyslogBuffer {
		l.Write(Entry{Time: fixed, Kind: KindBlock, IP: "203.0.113.2"})
	}
	waitDropped(t, l, SyslogBuffer)

	r2 := streamReceiver(t, addr, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.Write(Entry{Time: fixed, Kind: KindBlock, IP: "203.0.113.3"})
		r2.mu.Lock()
		n := len(r2.msgs)
		r2.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delivery did not resume after the receiver came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r2.waitFor("203.0.113.3")
}

func TestSyslogAndFileTogether(t *testing.T) {
	r := udpReceiver(t)
	path := t.TempDir() + "/a.log"
	l, err := OpenSpec(Spec{Path: path, Syslog: []SyslogSpec{{URL: "udp://" + r.addr, Format: FormatCEF}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write(hostile)
	r.waitFor("CEF:0")
	if got := lines(t, path); len(got) != 1 || got[0].IP != hostile.IP {
		t.Errorf("file: %+v", got)
	}
}

func TestSyslogBadCA(t *testing.T) {
	_, err := OpenSpec(Spec{Syslog: []SyslogSpec{{URL: "tls://127.0.0.1:1", CA: t.TempDir() + "/none.pem"}}})
	if err == nil || !strings.Contains(err.Error(), "audit syslog ca") {
		t.Errorf("err %v", err)
	}
}
