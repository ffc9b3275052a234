// Package audit writes one line per decision coredns-cip takes — a
// verdict, a block, an allowlist entry, a rewrite, a hook's outcome — to a
// file or to standard output, and to syslog receivers, for operators, log
// shippers and SIEMs. Lines are the plugin's own JSON (the default), Elastic
// Common Schema JSON or ArcSight CEF (format.go); syslog destinations are
// asynchronous and never make a caller wait (syslog.go).
//
// Each line goes out in a single write(2) on a file opened with O_APPEND,
// so lines from concurrent writers, even other processes, never interleave,
// and nothing waits in a buffer to be lost in a crash.
//
// Rotation: before every write the path is compared with the open file
// (same inode); if logrotate, or an operator, moved the file away, the path
// is reopened and the line goes to the new file. Checking on every write
// rather than once a second costs one stat per decision, which is cheap
// because decisions are rare (they are not per query), and it means no
// line lands in a file that was already rotated away. Reopen does the same
// on demand, for a SIGHUP handler. logrotate's copytruncate also works:
// O_APPEND writes follow the truncation.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what an entry records.
type Kind string

// The kinds of entry.
const (
	KindVerdict      Kind = "verdict"       // a fresh suspicious verdict
	KindBlock        Kind = "block"         // a new block decision
	KindUnblock      Kind = "unblock"       // a block lifted by an operator or an allowlist entry
	KindExpire       Kind = "expire"        // a block past its TTL
	KindAllow        Kind = "allow"         // an allowlist entry added
	KindAllowRemoved Kind = "allow_removed" // an allowlist entry removed
	KindRewrite      Kind = "rewrite"       // a DNS answer rewritten (in monitor mode: would have been)
	KindFailClosed   Kind = "fail_closed"   // a DNS answer refused because its IP could not be validated
	KindHookOK       Kind = "hook_ok"       // a hook took a change
	KindHookFailed   Kind = "hook_failed"   // a hook gave up on a change
	KindEvent        Kind = "event"         // a security event posted to this node
	KindBudget       Kind = "budget"        // the API budget 80% spent, or exhausted (Detail says which)
)

// Entry is one decision. Empty fields are left out of the line.
type Entry struct {
	// Time is when the decision was taken; Write sets it to now if zero.
	// It is written in UTC.
	Time     time.Time `json:"time"`
	Kind     Kind      `json:"kind"`
	Decision string    `json:"decision,omitempty"`
	IP       string    `json:"ip,omitempty"`
	Client   string    `json:"client,omitempty"`
	Event    string    `json:"event,omitempty"`
	Ref      string    `json:"ref,omitempty"`
	Qname    string    `json:"qname,omitempty"`
	Reasons  []string  `json:"reasons,omitempty"`
	// TTL is how long the decision stands, in seconds.
	TTL   int64  `json:"ttl,omitempty"`
	Actor string `json:"actor,omitempty"`
	// Detail is free text: a sink's name and error, the action taken.
	Detail string `json:"detail,omitempty"`
	// Labels are an event's fields beyond its own (a SIEM's rule, host,
	// severity score), already bounded and sanitised by the admin API.
	Labels map[string]string `json:"labels,omitempty"`
}

// Log is an open audit log. It is safe for concurrent use. A nil *Log
// discards entries, so auditing can be optional without checks at every
// call site.
type Log struct {
	path string // empty when writing to a given io.Writer
	now  func() time.Time

	mu     sync.Mutex
	w      io.Writer
	file   *os.File    // w, when it is a file this Log opened
	info   os.FileInfo // of file, to recognise the path still naming it
	closed bool
	buf    bytes.Buffer
	enc    *json.Encoder

	errors atomic.Uint64

	format Format // of the file
	meta   Meta
	dests  []*syslogDest
	noFile bool // syslog destinations only
}

// Open opens the audit log at path, appending to it and creating it with
// mode 0600 (entries name clients). The path "-" or "stdout" means
// standard output, which is never rotated nor closed.
func Open(path string) (*Log, error) {
	return OpenSpec(Spec{Path: path})
}

// OpenSpec opens the file s names, if any, in its format, and starts a
// sender for each syslog destination.
func OpenSpec(s Spec) (*Log, error) {
	var l *Log
	switch s.Path {
	case "-", "stdout":
		l = newLog(os.Stdout)
	case "":
		l = newLog(nil)
		l.noFile = true
	default:
		l = newLog(nil)
		l.path = s.Path
		if err := l.open(); err != nil {
			return nil, err
		}
	}
	l.format, l.meta = s.format(), DefaultMeta()
	for _, ds := range s.Syslog {
		d, err := newSyslogDest(ds, l.meta)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		l.dests = append(l.dests, d)
	}
	return l, nil
}

func newLog(w io.Writer) *Log {
	l := &Log{w: w, now: time.Now}
	l.enc = json.NewEncoder(&l.buf)
	// Readable qnames and details; the escaping that keeps a line one line
	// (control characters, U+2028 and U+2029) stays on.
	l.enc.SetEscapeHTML(false)
	return l
}

// open (re)opens l.path. The caller holds l.mu, or is Open.
func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: stat %s: %w", l.path, err)
	}
	_ = l.closeFile()
	l.w, l.file, l.info = f, f, info
	return nil
}

// closeFile closes the open file, if any. The caller holds l.mu.
func (l *Log) closeFile() error {
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.w, l.file, l.info = nil, nil, nil
	return err
}

// rotated reports whether the path no longer names the open file. A stat
// error counts as moved: the path is gone, or unusable, and reopening will
// say which.
func (l *Log) rotated() bool {
	info, err := os.Stat(l.path)
	return err != nil || !os.SameFile(info, l.info)
}

// Write appends e as one line. It never fails the caller: an entry that
// cannot be written is counted in Errors, and the file is reopened on the
// next write.
func (l *Log) Write(e Entry) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	for _, d := range l.dests {
		d.send(e)
	}
	if l.noFile {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(e); err != nil {
		l.errors.Add(1)
	}
}

func (l *Log) write(e Entry) error {
	if l.closed {
		return errors.New("audit: log closed")
	}
	if l.path != "" && (l.file == nil || l.rotated()) {
		if err := l.open(); err != nil {
			return err
		}
	}
	l.buf.Reset()
	if l.format != FormatJSON {
		line, err := Encode(l.format, e, l.meta)
		if err != nil {
			return err
		}
		l.buf.Write(line)
		l.buf.WriteByte('\n')
	} else if err := l.enc.Encode(e); err != nil { // Encode ends the line with '\n'
		return err
	}
	if _, err := l.w.Write(l.buf.Bytes()); err != nil {
		// The descriptor may be what is broken (a lost NFS mount, a
		// revoked file): start again from the path next time.
		_ = l.closeFile()
		return err
	}
	return nil
}

// Dropped returns, for each syslog destination, how many entries were
// dropped since the previous call: the buffer was full or the receiver
// could not be reached. It is empty without syslog destinations.
func (l *Log) Dropped() map[string]uint64 {
	if l == nil || len(l.dests) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(l.dests))
	for _, d := range l.dests {
		total := d.dropped.Load()
		out[d.spec.URL] = total - d.taken.Swap(total)
	}
	return out
}

// Errors returns how many entries could not be written.
func (l *Log) Errors() uint64 {
	if l == nil {
		return 0
	}
	return l.errors.Load()
}

// Reopen closes the file and opens the path again, so that after a
// rotation the next entries go to the new file. On standard output it does
// nothing.
func (l *Log) Reopen() error {
	if l == nil || l.path == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("audit: log closed")
	}
	return l.open()
}

// Close closes the file; later entries are counted as errors. Standard
// output is left open.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	for _, d := range l.dests {
		d.close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if err := l.closeFile(); err != nil {
		return fmt.Errorf("audit: close %s: %w", l.path, err)
	}
	return nil
}
