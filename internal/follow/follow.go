// Package follow reads the lines appended to a file, as `tail -F` does: it
// keeps going when the file is rotated (the path names a new file: the old
// one is read to its end first) or truncated in place (copytruncate), and
// waits for a file that does not exist yet.
package follow

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"
)

// Options tune a Follower. Zero values take the defaults.
type Options struct {
	Poll      time.Duration // how often to look for new data at EOF; default 250ms
	FromStart bool          // read the file from its start; default: only what is appended
	MaxLine   int           // longer lines are cut to this many bytes; default 64 KiB
	Logf      func(format string, args ...any)
}

// Follower follows one path.
type Follower struct {
	path string
	opts Options

	opened atomic.Bool

	// Rotations, Truncations and LongLines count what Run met.
	Rotations, Truncations, LongLines atomic.Int64
}

// Opened reports whether Run has opened the file (and, when not reading
// from the start, found its end): lines appended from then on are read.
func (f *Follower) Opened() bool { return f.opened.Load() }

// New returns a follower of path.
func New(path string, opts Options) *Follower {
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = 64 << 10
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Follower{path: path, opts: opts}
}

// Run calls line for every complete line (without its newline; the slice
// is reused after line returns) until ctx ends, then returns ctx.Err().
func (f *Follower) Run(ctx context.Context, line func([]byte)) error {
	var (
		file    *os.File
		info    os.FileInfo
		offset  int64
		partial []byte
		missing bool
		first   = true
	)
	buf := make([]byte, 64<<10)
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	emit := func(b []byte) {
		if len(b) > f.opts.MaxLine {
			f.LongLines.Add(1)
			b = b[:f.opts.MaxLine]
		}
		line(bytes.TrimSuffix(b, []byte("\r")))
	}
	// drain reads what the open file holds now and emits complete lines.
	drain := func() error {
		for {
			n, err := file.Read(buf)
			if n > 0 {
				offset += int64(n)
				data := buf[:n]
				for {
					i := bytes.IndexByte(data, '\n')
					if i < 0 {
						if len(partial)+len(data) <= f.opts.MaxLine+1 {
							partial = append(partial, data...)
						}
						break
					}
					if len(partial) > 0 {
						partial = append(partial, data[:i]...)
						emit(partial)
						partial = partial[:0]
					} else {
						emit(data[:i])
					}
					data = data[i+1:]
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		if file == nil {
			fh, err := os.Open(f.path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if !missing {
					f.opts.Logf("follow: %s does not exist (yet); waiting for it", f.path)
					missing = true
				}
			case err != nil:
				return err
			default:
				missing = false
				file, offset = fh, 0
				info, _ = file.Stat()
				if first && !f.opts.FromStart && info != nil {
					offset, _ = file.Seek(0, io.SeekEnd)
				}
				f.opened.Store(true)
			}
			first = false
		}
		if file != nil {
			if err := drain(); err != nil {
				return err
			}
			cur, err := os.Stat(f.path)
			switch {
			case err != nil || info == nil || !os.SameFile(info, cur):
				// Rotated (or removed): the old file is done; its last
				// unterminated line, if any, is a line too.
				if err := drain(); err != nil {
					return err
				}
				if len(partial) > 0 {
					emit(partial)
					partial = partial[:0]
				}
				file.Close()
				file = nil
				f.Rotations.Add(1)
				f.opts.Logf("follow: %s was rotated; reading the new file", f.path)
				continue
			case cur.Size() < offset:
				f.Truncations.Add(1)
				f.opts.Logf("follow: %s was truncated; reading from its start", f.path)
				offset, _ = file.Seek(0, io.SeekStart)
				partial = partial[:0]
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.opts.Poll):
		}
	}
}
