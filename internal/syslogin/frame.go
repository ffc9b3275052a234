// Package syslogin receives firewall connection logs as syslog: over UDP,
// one message a datagram, and over TCP with either RFC 6587 framing,
// octet counting ("LEN SP MSG") or a newline after each message, detected
// per connection by its first byte. Body strips the RFC 5424 or RFC 3164
// header (github.com/leodido/go-syslog) so the message can go to a
// connlog parser. Senders are checked against an allowlist, and every
// buffer is bounded: MaxMessage bytes a message, MaxConns connections,
// IdleTimeout of silence per connection.
package syslogin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/auto"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// MaxMessage bounds a message (without its framing): 64 KiB, which is
// also the most a UDP datagram holds and well past any firewall log line.
const MaxMessage = 64 << 10

// ErrTooBig is the error of a frame longer than MaxMessage.
var ErrTooBig = errors.New("syslog: message longer than 64 KiB")

// errFraming is the error of broken octet counting.
var errFraming = errors.New("syslog: octet counting")

// Framer splits a TCP stream into messages. The first byte of the stream
// decides its framing: a digit is octet counting, anything else newline
// framing (RFC 6587 3.4.1 and 3.4.2); a sender does not mix them.
type Framer struct {
	r        *bufio.Reader
	counting bool
	decided  bool
	buf      []byte
}

// NewFramer returns a Framer reading r.
func NewFramer(r io.Reader) *Framer {
	return &Framer{r: bufio.NewReaderSize(r, 4096)}
}

// Next returns the next message; the slice is reused by the next call. It
// returns ErrTooBig for an oversized message (the newline framing skips it
// and can go on; octet counting cannot resync and fails for good), an
// error for broken octet counting, and io.EOF at the end of the stream.
func (f *Framer) Next() ([]byte, error) {
	if !f.decided {
		b, err := f.r.Peek(1)
		if err != nil {
			return nil, err
		}
		f.counting, f.decided = b[0] >= '1' && b[0] <= '9', true
	}
	if f.counting {
		return f.octets()
	}
	return f.line()
}

// octets reads "LEN SP MSG", allowing the newline some senders put after
// MSG anyway.
func (f *Framer) octets() ([]byte, error) {
	n, digits := 0, 0
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			if digits == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%w: %w", errFraming, io.ErrUnexpectedEOF)
		}
		if digits == 0 && (c == '\n' || c == '\r') {
			continue
		}
		if c == ' ' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || (digits == 0 && c == '0') {
			return nil, fmt.Errorf("%w: %q where a length belongs", errFraming, c)
		}
		if n = n*10 + int(c-'0'); n > MaxMessage {
			return nil, ErrTooBig
		}
		digits++
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		return nil, fmt.Errorf("%w: %w", errFraming, io.ErrUnexpectedEOF)
	}
	return bytes.TrimSuffix(f.buf, []byte("\n")), nil
}

// line reads up to a newline (or NUL, which some senders use instead);
// at the end of the stream, an unterminated last line is a message too.
func (f *Framer) line() ([]byte, error) {
	f.buf = f.buf[:0]
	tooBig := false
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(f.buf) > 0 && !tooBig {
				return f.buf, nil
			}
			return nil, err
		}
		if c == '\n' || c == 0 {
			if tooBig {
				return nil, ErrTooBig
			}
			if len(f.buf) == 0 {
				continue
			}
			return bytes.TrimSuffix(f.buf, []byte("\r")), nil
		}
		if len(f.buf) == MaxMessage {
			tooBig = true // read on to the newline, keeping nothing
			continue
		}
		f.buf = append(f.buf, c)
	}
}

// headers holds parsers of RFC 5424 and RFC 3164 headers, which keep
// state while they parse.
var headers = sync.Pool{New: func() any { return auto.NewMachine() }}

// Body returns the MSG part of a syslog message, without its header. A
// message the header parsers refuse still has its <PRI> stripped: FortiGate
// sends "<189>date=... time=..." with no RFC 3164 header at all, and the
// connlog parsers read the rest as it is.
func Body(msg []byte) []byte {
	h := headers.Get().(syslog.Machine)
	m, err := h.Parse(msg)
	headers.Put(h)
	if err == nil {
		var body *string
		switch v := m.(type) {
		case *rfc3164.SyslogMessage:
			body = v.Message
		case *rfc5424.SyslogMessage:
			body = v.Message
		}
		if body != nil {
			return []byte(*body)
		}
	}
	return stripPRI(msg)
}

// stripPRI drops a leading "<N>" of one to three digits.
func stripPRI(msg []byte) []byte {
	if len(msg) < 3 || msg[0] != '<' {
		return msg
	}
	for i := 1; i < len(msg) && i <= 4; i++ {
		switch c := msg[i]; {
		case c == '>' && i > 1:
			return msg[i+1:]
		case c < '0' || c > '9':
			return msg
		}
	}
	return msg
}
