// Package state keeps what the DNS path decided — blocks, allowlist entries,
// tags, suspicious verdicts — in a file under the directory named by
// `state DIR`, so that a restart, even after kill -9, comes back with the
// same decisions and their remaining TTLs. Expired records are dropped.
//
// The file is a bbolt database. bbolt is a copy-on-write B+tree whose commit
// writes the new pages, fsyncs, then switches one of two checksummed meta
// pages and fsyncs again: a crash at any point leaves either the old or the
// new transaction, never a torn one. An fsynced append-only journal would
// be the other choice; bbolt was preferred because
//   - there is no compaction to write: a journal of upserts and deletes grows
//     until it is rewritten, and the rewrite is its own crash-safety problem;
//   - a transaction spans many records, so a batch of blocks lands whole;
//   - the file stays bounded: freed pages are reused, so its size follows
//     the live records, not the history of changes.
//
// The cost is one fsync (two, in fact) per commit, so writes are batched:
// Store.Put takes many records in one transaction, and Writer coalesces
// changes from the DNS path and commits them in the background. A change
// that is acknowledged (a 2xx of the admin API, an audit line saying a block
// was made) is waited for with Writer.Sync, whose callers share commits
// (group commit), so that waiting costs one fsync per batch, not per change.
//
// The store is generic over record kinds (a bbolt bucket each) and treats a
// record's data as opaque JSON, so it imports none of the packages whose
// state it keeps. Expiry is absolute wall-clock time: a remaining TTL after a
// restart is Expires minus the clock then.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the database file inside the state directory.
const FileName = "coredns-cip.db"

// DefaultLockTimeout is how long Open waits for another process to release
// the file before giving up.
const DefaultLockTimeout = 5 * time.Second

// ErrLocked is returned (wrapped) by Open when another process holds the
// database file: two servers sharing one state directory would each
// overwrite the other's decisions, so the second one must not start on it.
var ErrLocked = errors.New("state: database file is locked by another process")

// Kind names a kind of record; each kind is a bucket of its own.
type Kind string

// The kinds of record coredns-cip keeps.
const (
	KindBlocks   Kind = "blocks"
	KindAllow    Kind = "allow"
	KindTags     Kind = "tags"
	KindVerdicts Kind = "verdicts"
	KindHistory  Kind = "history"
)

// Record is one durable entry.
type Record struct {
	// Key identifies the record within its kind: an IP, a CIDR, a domain,
	// "client|ip". Records are loaded in key (byte) order.
	Key string
	// Expires is when the record stops counting; zero means never.
	Expires time.Time
	// Data is the caller's JSON, stored and returned as is.
	Data json.RawMessage
}

// expired reports whether r no longer counts at now.
func (r Record) expired(now time.Time) bool {
	return !r.Expires.IsZero() && !r.Expires.After(now)
}

// Options tune Open. The zero value is the production setting.
type Options struct {
	// Logf receives warnings the store recovers from by itself (a corrupt
	// file moved aside, a failed clean-up). Nil discards them.
	Logf func(format string, args ...any)
	// Now is the clock expiry is judged against. Nil means time.Now.
	Now func() time.Time
	// NoSync skips fsync on commit. For tests only: it gives up durability
	// against power loss.
	NoSync bool
	// LockTimeout is how long Open waits for another process holding the
	// file. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Strict refuses to start on an empty or corrupt file instead of moving
	// it aside and starting with empty state.
	Strict bool
}

// Store is an open state directory. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	now  func() time.Time
	logf func(format string, args ...any)
}

// Open opens (creating if needed) the store in dir: the directory is created
// with mode 0700 and the file DIR/coredns-cip.db with mode 0600, since they
// hold client addresses.
//
// If another process, or another open Store in this one (a reload must close
// the old Store first), holds the file, Open fails after opts.LockTimeout with
// an error wrapping ErrLocked. If the file is corrupt, it is renamed to
// coredns-cip.db.corrupt-<unix seconds>, a warning goes to opts.Logf, and the
// store starts empty: losing remembered decisions is better than refusing
// to serve DNS. Open checks the whole file for consistency, which takes time
// in proportion to its size.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{now: opts.Now, logf: opts.Logf}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: create directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	boltOpts := &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync}
	if boltOpts.Timeout <= 0 {
		boltOpts.Timeout = DefaultLockTimeout
	}

	var db *bolt.DB
	var err error
	if st, serr := os.Stat(path); serr == nil && st.Size() == 0 {
		// bbolt would make an empty file a new database: the state it held
		// (blocks, allowlist, tags) would be gone without a word.
		err = &corruptError{errors.New("the file is empty")}
	} else {
		db, err = openChecked(path, boltOpts)
	}
	var corrupt *corruptError
	if errors.As(err, &corrupt) && opts.Strict {
		return nil, fmt.Errorf("state: %s is corrupt (%v); refusing to start (state ... strict): restore it, or move it aside to start with empty state", path, corrupt.err)
	}
	if errors.As(err, &corrupt) {
		aside := path + ".corrupt-" + strconv.FormatInt(s.now().Unix(), 10)
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("state: %s is corrupt (%v) and could not be moved aside: %w", path, corrupt.err, rerr)
		}
		s.logf("state: %s is corrupt (%v); moved it to %s and starting with empty state", path, corrupt.err, aside)
		db, err = openChecked(path, boltOpts)
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s still held after %v (is another coredns-cip running?)", ErrLocked, path, boltOpts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s.db = db
	return s, nil
}

// corruptError marks an open failure caused by the file's content, as
// opposed to the file system or the lock: only those justify moving the
// file aside.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return e.err.Error() }

// openChecked opens path and verifies the whole tree. bbolt trusts its file:
// a damaged page makes it panic, or fault on memory past the end of a
// truncated file, and both would take DNS down later. Doing every read here,
// with faults turned into panics and panics into errors, moves that failure
// to startup where it can be handled.
func openChecked(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// A panic inside bolt.Open leaks its descriptor and mapping; the
			// file is about to be renamed, and the lock is per inode, so the
			// fresh file is unaffected.
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, &corruptError{fmt.Errorf("reading it failed: %v", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	switch {
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, &corruptError{err}
	case err != nil:
		return nil, err
	}
	if err := db.View(verify); err != nil {
		_ = db.Close()
		return nil, &corruptError{err}
	}
	return db, nil
}

// verify reads every page reachable from the root, then runs bbolt's own
// consistency check, which covers the free list. The order matters: Check
// reads pages on a goroutine of its own, where a fault is fatal, so it runs
// only once every page is known to be readable.
func verify(tx *bolt.Tx) error {
	st, err := os.Stat(tx.DB().Path())
	if err != nil {
		return err
	}
	if st.Size() < tx.Size() {
		return fmt.Errorf("file is %d bytes but its data reaches %d (truncated?)", st.Size(), tx.Size())
	}
	// Walking every bucket with a cursor reads every branch and leaf page.
	err = tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
		return b.ForEach(func(_, _ []byte) error { return nil })
	})
	if err != nil {
		return err
	}
	var first error
	for err := range tx.Check() {
		// Drain the channel: Check's goroutine blocks until it is read.
		if first == nil {
			first = err
		}
	}
	return first
}

// Put stores recs under kind in one transaction, replacing records with the
// same keys. It returns once the transaction is durable.
func (s *Store) Put(kind Kind, recs ...Record) error {
	ops := make([]op, len(recs))
	for i, r := range recs {
		ops[i] = op{kind: kind, rec: r}
	}
	return s.apply(ops)
}

// Delete removes the records with the given keys from kind, in one
// transaction. Missing keys are not an error.
func (s *Store) Delete(kind Kind, keys ...string) error {
	ops := make([]op, len(keys))
	for i, k := range keys {
		ops[i] = op{kind: kind, rec: Record{Key: k}, del: true}
	}
	return s.apply(ops)
}

// op is one change, as Put and Delete make and Writer queues.
type op struct {
	kind Kind
	rec  Record
	del  bool
}

// validate rejects what bbolt would reject at commit, so that a Writer can
// refuse one bad change instead of failing its whole batch.
func (o op) validate() error {
	switch {
	case o.kind == "":
		return errors.New("state: empty kind")
	case o.rec.Key == "":
		return fmt.Errorf("state: %s: empty key", o.kind)
	case len(o.rec.Key) > bolt.MaxKeySize:
		return fmt.Errorf("state: %s: key of %d bytes is too long", o.kind, len(o.rec.Key))
	}
	return nil
}

// apply commits ops in one transaction, in order.
func (s *Store) apply(ops []op) error {
	if len(ops) == 0 {
		return nil
	}
	for _, o := range ops {
		if err := o.validate(); err != nil {
			return err
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range ops {
			b, err := tx.CreateBucketIfNotExists([]byte(o.kind))
			if err != nil {
				return err
			}
			if o.del {
				err = b.Delete([]byte(o.rec.Key))
			} else {
				err = b.Put([]byte(o.rec.Key), encode(o.rec))
			}
			if err != nil {
				return fmt.Errorf("%s %q: %w", o.kind, o.rec.Key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: write: %w", err)
	}
	return nil
}

// Load returns the records of kind that have not expired, in key order.
// Expired records it finds are deleted afterwards; a failure to delete them
// is only logged, since the live records were read and Sweep retries.
// Records in a format this version does not know are skipped and kept, in
// case a newer version wrote them.
func (s *Store) Load(kind Kind) ([]Record, error) {
	now := s.now()
	var recs []Record
	var expired []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r, err := decode(k, v)
			if err != nil {
				s.logf("state: skipping %s %q: %v", kind, k, err)
				return nil
			}
			if r.expired(now) {
				expired = append(expired, r.Key)
				return nil
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: load %s: %w", kind, err)
	}
	if len(expired) > 0 {
		if _, err := s.deleteExpired(map[Kind][]string{kind: expired}, now); err != nil {
			s.logf("state: dropping expired %s: %v", kind, err)
		}
	}
	return recs, nil
}

// Sweep deletes the expired records of every kind and returns how many it
// deleted. Finding nothing to delete costs no write.
func (s *Store) Sweep() (int, error) {
	now := s.now()
	expired := make(map[Kind][]string)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if r, err := decode(k, v); err == nil && r.expired(now) {
					expired[Kind(name)] = append(expired[Kind(name)], r.Key)
				}
				return nil
			})
		})
	})
	if err != nil {
		return 0, fmt.Errorf("state: sweep: %w", err)
	}
	if len(expired) == 0 {
		return 0, nil
	}
	n, err := s.deleteExpired(expired, now)
	if err != nil {
		return 0, fmt.Errorf("state: sweep: %w", err)
	}
	return n, nil
}

// deleteExpired deletes the listed keys that are still expired at now. The
// check is repeated inside the write transaction because a Put may have
// renewed a key since it was read.
func (s *Store) deleteExpired(keys map[Kind][]string, now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		for kind, ks := range keys {
			b := tx.Bucket([]byte(kind))
			if b == nil {
				continue
			}
			for _, k := range ks {
				v := b.Get([]byte(k))
				if v == nil {
					continue
				}
				if r, err := decode([]byte(k), v); err != nil || !r.expired(now) {
					continue
				}
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// Close closes the file. Close a Writer on this store first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// The value layout: a format version, the expiry as Unix seconds and
// nanoseconds (the zero time round-trips as itself), then the data. Binary
// rather than JSON so that Sweep judges expiry without parsing the data.
const (
	formatV1  = 1
	headerLen = 1 + 8 + 4
)

func encode(r Record) []byte {
	v := make([]byte, headerLen, headerLen+len(r.Data))
	v[0] = formatV1
	binary.BigEndian.PutUint64(v[1:9], uint64(r.Expires.Unix()))
	binary.BigEndian.PutUint32(v[9:13], uint32(r.Expires.Nanosecond()))
	return append(v, r.Data...)
}

// decode copies k and v out of the memory map, which is only valid during
// the transaction.
func decode(k, v []byte) (Record, error) {
	if len(v) < headerLen || v[0] != formatV1 {
		return Record{}, errors.New("unknown record format")
	}
	r := Record{Key: string(k)}
	sec := int64(binary.BigEndian.Uint64(v[1:9]))
	nsec := int64(binary.BigEndian.Uint32(v[9:13]))
	if t := time.Unix(sec, nsec).UTC(); !t.IsZero() {
		r.Expires = t
	}
	if len(v) > headerLen {
		r.Data = append(json.RawMessage(nil), v[headerLen:]...)
	}
	return r, nil
}

// ParseOption reads the arguments of the Corefile line `state DIR
// [strict]` into dir, made absolute (a relative one would follow the
// server's working directory), and strict.
func ParseOption(args []string, dir *string, strict *bool) error {
	if len(args) == 0 || len(args) > 2 {
		return fmt.Errorf("takes DIR [strict], got %d arguments", len(args))
	}
	if len(args) == 2 && args[1] != "strict" {
		return fmt.Errorf("unknown argument %q (strict)", args[1])
	}
	abs, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	*dir, *strict = abs, len(args) == 2
	return nil
}
