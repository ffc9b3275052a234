package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/leodido/go-syslog/v4/rfc5424"
)

// Syslog sending. Audit entries are written on decision paths, some of
// them the DNS path, so a syslog destination never makes its caller wait:
// Send formats the frame and offers it to a bounded buffer; a goroutine
// per destination writes it out, reconnecting with a capped backoff. A
// frame that finds the buffer full, or that is in hand when the receiver
// cannot be reached, is dropped and counted (Dropped).
const (
	// SyslogBuffer is how many frames wait for a destination: about a
	// megabyte of typical entries, minutes of decisions at any real rate.
	SyslogBuffer = 1024
	// UDPMaxMessage is the largest datagram sent; longer frames are cut at
	// a UTF-8 boundary (the JSON or CEF body then ends early; use tcp or
	// tls for entries with large labels). 8 KiB is rsyslog's and
	// syslog-ng's default limit and well under UDP's.
	UDPMaxMessage = 8192
	// syslogFacility is RFC 5424's facility 13, "log audit".
	syslogFacility = 13
	dialTimeout    = 5 * time.Second
	writeTimeout   = 5 * time.Second
)

// syslogBackoff bounds the wait between reconnection attempts: doubling
// from the first to the second. Tests shorten it.
var syslogBackoff = [2]time.Duration{100 * time.Millisecond, 30 * time.Second}

// SyslogSpec is one syslog destination.
type SyslogSpec struct {
	URL    string // udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT
	Format Format // the message body; json when empty
	CA     string // tls only: the CA file; the system pool when empty
	App    string // APP-NAME; coredns-cip when empty
}

// syslogDest sends frames to one destination.
type syslogDest struct {
	spec    SyslogSpec
	network string // udp, tcp or tls
	addr    string
	tls     *tls.Config
	meta    Meta
	procID  string

	frames    chan []byte
	done      chan struct{}
	ctx       context.Context // cancelled by close, so a dial in progress ends
	cancel    context.CancelFunc
	stopped   sync.WaitGroup
	closeOnce sync.Once
	dropped   atomic.Uint64
	taken     atomic.Uint64 // dropped, when Dropped last looked
	sent      atomic.Uint64

	minBackoff, maxBackoff time.Duration
}

// parseSyslogURL checks a destination's scheme and address.
func parseSyslogURL(s string) (network, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return "", "", fmt.Errorf("syslog %q: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", s)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return "", "", fmt.Errorf("syslog %q: scheme must be udp, tcp or tls", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return "", "", fmt.Errorf("syslog %q: needs HOST:PORT", s)
	}
	return u.Scheme, u.Host, nil
}

// newSyslogDest checks spec, loads its CA and starts its sender.
func newSyslogDest(spec SyslogSpec, meta Meta) (*syslogDest, error) {
	network, addr, err := parseSyslogURL(spec.URL)
	if err != nil {
		return nil, err
	}
	d := &syslogDest{spec: spec, network: network, addr: addr, meta: meta, procID: strconv.Itoa(os.Getpid()),
		frames: make(chan []byte, SyslogBuffer), done: make(chan struct{}),
		minBackoff: syslogBackoff[0], maxBackoff: syslogBackoff[1]}
	if d.spec.Format == "" {
		d.spec.Format = FormatJSON
	}
	if d.spec.App == "" {
		d.spec.App = vendor
	}
	if network == "tls" {
		host, _, _ := net.SplitHostPort(addr)
		d.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if spec.CA != "" {
			pem, err := os.ReadFile(spec.CA)
			if err != nil {
				return nil, fmt.Errorf("audit syslog ca: %w", err)
			}
			d.tls.RootCAs = x509.NewCertPool()
			if !d.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("audit syslog ca %s: no PEM certificate", spec.CA)
			}
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.stopped.Add(1)
	go d.run()
	return d, nil
}

// severity is the RFC 5424 severity of an entry: warning for what alerts,
// error for failures, notice for the rest.
func severity(k Kind) uint8 {
	if _, ok := alertKinds[k]; ok {
		return 4
	}
	if outcome(k) == "failure" {
		return 3
	}
	return 5
}

// frame builds e's RFC 5424 message (without transport framing).
func (d *syslogDest) frame(e Entry) ([]byte, error) {
	body, err := Encode(d.spec.Format, e, d.meta)
	if err != nil {
		return nil, err
	}
	m := &rfc5424.SyslogMessage{}
	m.SetPriority(syslogFacility*8 + severity(e.Kind))
	m.SetVersion(1)
	m.SetTimestamp(e.Time.UTC().Format("2006-01-02T15:04:05.999999Z07:00"))
	if d.meta.Host != "" {
		m.SetHostname(d.meta.Host)
	}
	m.SetAppname(d.spec.App)
	m.SetProcID(d.procID)
	m.SetMsgID(string(e.Kind))
	m.SetMessage(string(body))
	s, err := m.String()
	if err != nil {
		return nil, fmt.Errorf("audit syslog: %w", err)
	}
	return []byte(s), nil
}

// send offers e to the buffer; it never blocks.
func (d *syslogDest) send(e Entry) {
	f, err := d.frame(e)
	if err != nil {
		d.dropped.Add(1)
		return
	}
	select {
	case d.frames <- f:
	default:
		d.dropped.Add(1)
	}
}

// truncateUTF8 cuts b to at most n bytes without splitting a rune.
func truncateUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	// At most UTFMax-1 bytes of a cut rune remain at the end.
	for i := 1; i < utf8.UTFMax && len(b) > 0; i++ {
		if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

// run writes frames until close, reconnecting as needed.
func (d *syslogDest) run() {
	defer d.stopped.Done()
	var conn net.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	backoff := d.minBackoff
	for {
		var f []byte
		select {
		case <-d.done:
			return
		case f = <-d.frames:
		}
		if conn == nil {
			c, err := d.dial()
			if err != nil {
				// The receiver is down: what is in hand and what waits is
				// lost; count it, then wait before trying again.
				d.dropped.Add(1 + uint64(d.drain()))
				if !d.sleep(backoff) {
					return
				}
				backoff = min(2*backoff, d.maxBackoff)
				continue
			}
			conn = c
		}
		if err := d.write(conn, f); err != nil {
			d.dropped.Add(1)
			_ = conn.Close()
			conn = nil
			continue
		}
		d.sent.Add(1)
		backoff = d.minBackoff
	}
}

func (d *syslogDest) dial() (net.Conn, error) {
	dl := &net.Dialer{Timeout: dialTimeout}
	if d.tls != nil {
		return (&tls.Dialer{NetDialer: dl, Config: d.tls}).DialContext(d.ctx, "tcp", d.addr)
	}
	return dl.DialContext(d.ctx, d.network, d.addr)
}

// write frames f for the transport: one datagram over UDP, RFC 6587 /
// RFC 5425 octet counting ("LEN SP MSG") over TCP and TLS.
func (d *syslogDest) write(c net.Conn, f []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if d.network == "udp" {
		_, err := c.Write(truncateUTF8(f, UDPMaxMessage))
		return err
	}
	_, err := c.Write(append([]byte(strconv.Itoa(len(f))+" "), f...))
	return err
}

// drain empties the buffer, returning how many frames it held.
func (d *syslogDest) drain() int {
	n := 0
	for {
		select {
		case <-d.frames:
			n++
		default:
			return n
		}
	}
}

// sleep waits for t, or returns false when the destination is closed.
func (d *syslogDest) sleep(t time.Duration) bool {
	tm := time.NewTimer(t)
	defer tm.Stop()
	select {
	case <-d.done:
		return false
	case <-tm.C:
		return true
	}
}

// close stops the sender; frames still buffered are not sent.
func (d *syslogDest) close() {
	d.closeOnce.Do(func() { d.cancel(); close(d.done) })
	d.stopped.Wait()
}
