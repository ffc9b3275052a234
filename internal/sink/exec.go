package sink

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultExecTimeout bounds one run of an Exec program.
const DefaultExecTimeout = 10 * time.Second

// outputLimit is how much of a failing program's output goes into its error
// and log line.
const outputLimit = 200

// ExecOptions tunes an Exec sink.
type ExecOptions struct {
	Timeout time.Duration                    // per run; default 10s
	Logf    func(format string, args ...any) // where a failing run's output goes; nil: nowhere
}

// Exec is a Sink that runs a program once per change, directly, without a
// shell: each argument is one argv entry whatever it contains, so an IP or a
// reason cannot smuggle in a command. Arguments may hold placeholders,
// replaced per change:
//
//	{action}    block or unblock
//	{ip}        the IP, or the CIDR of a range block
//	{ttl}       whole seconds left on the block, rounded up; 0 for unblock
//	{decision}  the decision id
//	{reasons}   the reasons, joined with "; "
//	{client}    the client of a pair block; empty when it is for everyone
//	{scope}     everyone (the IP for everyone) or tagged (the client -> IP pair)
//	{port}      the destination port a pair block is narrowed to; empty for every port
//	{clients}   every client that led to the decision, comma-separated
//	{event}     the event id
//	{ref}       the event's external reference
//
// The program also gets the parent's environment plus CIP_ACTION, CIP_IP,
// CIP_TTL, CIP_DECISION, CIP_CLIENT, CIP_SCOPE, CIP_PORT and CIP_CLIENTS.
//
// A run that exits non-zero or outlives the timeout fails the batch. The
// program runs in a process group of its own (on Unix), and a timeout or
// cancellation kills the whole group, so children it started do not outlive
// it. The Dispatcher retries a failed batch whole: changes before the failing
// one run again. The program must therefore be idempotent and tolerate
// repeats: blocking a blocked IP and unblocking an absent one must succeed.
// Note the Dispatcher's Timeout bounds a whole batch, so it must allow for
// BatchSize runs.
type Exec struct {
	path    string
	args    [][]argPart
	timeout time.Duration
	logf    func(format string, args ...any)
}

// argPart is a literal, or a placeholder when field is set.
type argPart struct {
	literal string
	field   func(c Change) string
}

var placeholders = map[string]func(c Change) string{
	"action":   func(c Change) string { return string(c.Action) },
	"ip":       Change.Target,
	"ttl":      func(c Change) string { return strconv.FormatInt(ttlSeconds(c), 10) },
	"decision": func(c Change) string { return c.Decision },
	"reasons":  func(c Change) string { return strings.Join(c.Reasons, "; ") },
	"client":   clientString,
	"scope":    func(c Change) string { return string(c.EffectiveScope()) },
	"port":     portString,
	"clients":  clientsString,
	"event":    func(c Change) string { return c.Event },
	"ref":      func(c Change) string { return c.Ref },
}

// placeholderRE matches what looks like a placeholder; other braces, as in
// "{}" or JSON, are left alone.
var placeholderRE = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_]*\}`)

// NewExec returns an Exec sink running the program at path with args.
// path must be absolute and name an executable file; every placeholder in
// args must be one of those Exec documents.
func NewExec(path string, args []string, opts ExecOptions) (*Exec, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("sink exec: %q: path is not absolute", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sink exec: %w", err) // names the path and why
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sink exec: %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("sink exec: %s: not executable (mode %v)", path, fi.Mode().Perm())
	}
	e := &Exec{path: path, timeout: opts.Timeout, logf: opts.Logf}
	if e.timeout <= 0 {
		e.timeout = DefaultExecTimeout
	}
	for i, a := range args {
		parts, err := parseArg(a)
		if err != nil {
			return nil, fmt.Errorf("sink exec: %s: argument %d %q: %w", path, i+1, a, err)
		}
		e.args = append(e.args, parts)
	}
	return e, nil
}

func parseArg(a string) ([]argPart, error) {
	var parts []argPart
	last := 0
	for _, m := range placeholderRE.FindAllStringIndex(a, -1) {
		name := a[m[0]+1 : m[1]-1]
		f, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {%s}", name)
		}
		if m[0] > last {
			parts = append(parts, argPart{literal: a[last:m[0]]})
		}
		parts = append(parts, argPart{field: f})
		last = m[1]
	}
	if last < len(a) || len(parts) == 0 {
		parts = append(parts, argPart{literal: a[last:]})
	}
	return parts, nil
}

// Name returns "exec:" and the program's path.
func (e *Exec) Name() string { return "exec:" + e.path }

// Apply runs the program for each change in order and stops at the first
// failure.
func (e *Exec) Apply(ctx context.Context, batch []Change) error {
	for i, c := range batch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sink %s: %d of %d changes not run: %w", e.Name(), len(batch)-i, len(batch), err)
		}
		if err := e.run(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (e *Exec) run(parent context.Context, c Change) error {
	ctx, cancel := context.WithTimeout(parent, e.timeout)
	defer cancel()

	args := make([]string, len(e.args))
	for i, parts := range e.args {
		var b strings.Builder
		for _, p := range parts {
			if p.field != nil {
				b.WriteString(p.field(c))
			} else {
				b.WriteString(p.literal)
			}
		}
		args[i] = b.String()
	}
	cmd := exec.CommandContext(ctx, e.path, args...)
	cmd.Env = append(os.Environ(),
		"CIP_ACTION="+string(c.Action),
		"CIP_IP="+c.Target(),
		"CIP_TTL="+strconv.FormatInt(ttlSeconds(c), 10),
		"CIP_DECISION="+c.Decision,
		"CIP_CLIENT="+clientString(c),
		"CIP_SCOPE="+string(c.EffectiveScope()),
		"CIP_PORT="+portString(c),
		"CIP_CLIENTS="+clientsString(c),
	)
	out := &headWriter{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	killGroupOnCancel(cmd)
	// Should something outside the group (a child that made a group or
	// session of its own) still hold the output open after the kill, stop
	// waiting for it shortly after.
	cmd.WaitDelay = time.Second

	err := cmd.Run()
	if err == nil {
		return nil
	}
	status := err.Error() // "exit status 3", "signal: killed", or why it did not start
	if ctx.Err() != nil {
		status = fmt.Sprintf("killed: %v", ctx.Err())
		if parent.Err() == nil {
			status = fmt.Sprintf("timed out after %v, killed", e.timeout)
		}
		err = fmt.Errorf("%w: %w", err, ctx.Err())
	}
	output := out.String()
	if e.logf != nil {
		e.logf("sink %s: %s %s: %s: output %q", e.Name(), c.Action, c.Target(), status, output)
	}
	return &execError{sink: e.Name(), change: c, status: status, output: output, err: err}
}

// execError is a failed run. It unwraps to the *exec.ExitError, or the
// context's error on a timeout.
type execError struct {
	sink, status, output string
	change               Change
	err                  error
}

func (e *execError) Error() string {
	return fmt.Sprintf("sink %s: %s %s: %s: output %q", e.sink, e.change.Action, e.change.Target(), e.status, e.output)
}

func (e *execError) Unwrap() error { return e.err }

// headWriter keeps the first limit bytes written to it and discards the
// rest, so a chatty program cannot fill memory.
type headWriter struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (w *headWriter) Write(p []byte) (int, error) {
	if room := w.limit - w.buf.Len(); room < len(p) {
		w.truncated = true
		w.buf.Write(p[:max(room, 0)])
	} else {
		w.buf.Write(p)
	}
	return len(p), nil
}

// String returns the output kept, trimmed, marked when cut short.
func (w *headWriter) String() string {
	s := strings.TrimSpace(w.buf.String())
	if w.truncated {
		s += "..."
	}
	return s
}

// ttlSeconds is the time left on a block in whole seconds, rounded up so a
// block about to end is not mistaken for none; 0 for an unblock.
func ttlSeconds(c Change) int64 {
	if c.Action == Unblock || c.TTL <= 0 {
		return 0
	}
	return int64((c.TTL + time.Second - 1) / time.Second)
}

func clientString(c Change) string {
	if !c.Client.IsValid() {
		return ""
	}
	return c.Client.String()
}

func portString(c Change) string {
	if c.Port == 0 {
		return ""
	}
	return strconv.Itoa(int(c.Port))
}

func clientsString(c Change) string {
	return strings.Join(clientStrings(c), ",")
}

// clientStrings is c.Clients as text; never nil, so JSON shows [].
func clientStrings(c Change) []string {
	out := make([]string, 0, len(c.Clients))
	for _, a := range c.Clients {
		out = append(out, a.String())
	}
	return out
}
