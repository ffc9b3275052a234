package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/testclock"
	"github.com/coredns-cip/coredns-cip/internal/testlog"
	bolt "go.etcd.io/bbolt"
)

// testStart is where each test's clock starts.
var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.NoSync = true
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustLoad(t *testing.T, s *Store, kind Kind) []Record {
	t.Helper()
	recs, err := s.Load(kind)
	if err != nil {
		t.Fatalf("Load(%s): %v", kind, err)
	}
	return recs
}

func keys(recs []Record) []string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, r.Key)
	}
	return ks
}

func TestRoundTripEveryKind(t *testing.T) {
	clk := testclock.New(testStart)
	s := openTest(t, t.TempDir(), Options{Now: clk.Now})
	expires := clk.Now().Add(90*time.Minute + 123*time.Nanosecond)
	cases := map[Kind][]Record{
		KindBlocks: {
			{Key: "203.0.113.7", Expires: expires, Data: json.RawMessage(`{"reason":"tor"}`)},
			{Key: "198.51.100.0/24", Data: json.RawMessage(`{"reason":"manual"}`)},
		},
		KindAllow:    {{Key: "example.org", Data: json.RawMessage(`{"by":"ops"}`)}},
		KindTags:     {{Key: "10.0.0.5", Expires: expires, Data: json.RawMessage(`["travel"]`)}},
		KindVerdicts: {{Key: "203.0.113.9", Expires: expires, Data: json.RawMessage(`{"outcome":"suspicious"}`)}},
		KindHistory:  {{Key: "10.0.0.5|203.0.113.9", Expires: expires}},
	}
	for kind, recs := range cases {
		if err := s.Put(kind, recs...); err != nil {
			t.Fatalf("Put(%s): %v", kind, err)
		}
	}
	for kind, want := range cases {
		got := mustLoad(t, s, kind)
		want = slices.Clone(want)
		slices.SortFunc(want, func(a, b Record) int { return strings.Compare(a.Key, b.Key) })
		if len(got) != len(want) {
			t.Fatalf("Load(%s) = %v, want %v", kind, keys(got), keys(want))
		}
		for i := range want {
			if got[i].Key != want[i].Key || !got[i].Expires.Equal(want[i].Expires) || string(got[i].Data) != string(want[i].Data) {
				t.Errorf("Load(%s)[%d] = %+v, want %+v", kind, i, got[i], want[i])
			}
			if want[i].Expires.IsZero() != got[i].Expires.IsZero() {
				t.Errorf("Load(%s)[%d]: never-expiring came back as %v", kind, i, got[i].Expires)
			}
		}
	}
}

func TestPutReplacesAndDeleteRemoves(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	if err := s.Put(KindBlocks, Record{Key: "a", Data: json.RawMessage(`1`)}, Record{Key: "b", Data: json.RawMessage(`2`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindBlocks, Record{Key: "a", Data: json.RawMessage(`3`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(KindBlocks, "b", "missing"); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, s, KindBlocks)
	if len(got) != 1 || got[0].Key != "a" || string(got[0].Data) != "3" {
		t.Errorf("Load = %+v, want only a=3", got)
	}
}

func TestPutRejectsEmptyKey(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	if err := s.Put(KindBlocks, Record{Key: "ok"}, Record{Key: ""}); err == nil {
		t.Fatal("Put with an empty key succeeded")
	}
	if got := mustLoad(t, s, KindBlocks); len(got) != 0 {
		t.Errorf("a rejected Put stored %v; it must be all or nothing", keys(got))
	}
}

func TestLoadDropsAndDeletesExpired(t *testing.T) {
	clk := testclock.New(testStart)
	s := openTest(t, t.TempDir(), Options{Now: clk.Now})
	now := clk.Now()
	err := s.Put(KindBlocks,
		Record{Key: "short", Expires: now.Add(time.Minute)},
		Record{Key: "long", Expires: now.Add(time.Hour)},
		Record{Key: "forever"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(mustLoad(t, s, KindBlocks)); !slices.Equal(got, []string{"forever", "long", "short"}) {
		t.Fatalf("before expiry Load = %v", got)
	}

	clk.Advance(time.Minute) // exactly at Expires counts as expired
	if got := keys(mustLoad(t, s, KindBlocks)); !slices.Equal(got, []string{"forever", "long"}) {
		t.Fatalf("after a minute Load = %v, want [forever long]", got)
	}
	// Load deleted it: nothing left for Sweep.
	if n, err := s.Sweep(); err != nil || n != 0 {
		t.Errorf("Sweep after Load = %d, %v; want 0", n, err)
	}
}

func TestSweepDeletesExpiredOfEveryKind(t *testing.T) {
	clk := testclock.New(testStart)
	dir := t.TempDir()
	s := openTest(t, dir, Options{Now: clk.Now})
	now := clk.Now()
	for _, kind := range []Kind{KindBlocks, KindTags, KindVerdicts} {
		err := s.Put(kind,
			Record{Key: "old", Expires: now.Add(time.Second)},
			Record{Key: "new", Expires: now.Add(time.Hour)},
		)
		if err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	n, err := s.Sweep()
	if err != nil || n != 3 {
		t.Fatalf("Sweep = %d, %v; want 3", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened with a clock from before the expiry, the swept records are
	// still gone: Sweep deleted them rather than hiding them.
	s = openTest(t, dir, Options{Now: testclock.New(testStart).Now})
	for _, kind := range []Kind{KindBlocks, KindTags, KindVerdicts} {
		if got := keys(mustLoad(t, s, kind)); !slices.Equal(got, []string{"new"}) {
			t.Errorf("%s after Sweep = %v, want [new]", kind, got)
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindAllow, Record{Key: "10.1.2.3", Data: json.RawMessage(`{"note":"ok"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, FileName): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s has mode %v, want at most %v", path, got, want)
		}
	}

	s = openTest(t, dir, Options{})
	got := mustLoad(t, s, KindAllow)
	if len(got) != 1 || got[0].Key != "10.1.2.3" || string(got[0].Data) != `{"note":"ok"}` {
		t.Errorf("after reopen Load = %+v", got)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	s, err := Open(dir, Options{NoSync: true, LockTimeout: 100 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatal("a second Open of a held store succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not wrap ErrLocked", err)
	}
	for _, want := range []string{filepath.Join(dir, FileName), "another coredns-cip running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// damage functions turn a valid database file into a corrupt one.
var damage = map[string]func(t *testing.T, path string){
	"not a database": func(t *testing.T, path string) {
		writeFile(t, path, []byte(strings.Repeat("this is not a bolt database\n", 3000)))
	},
	"short garbage": func(t *testing.T, path string) {
		writeFile(t, path, []byte("garbage"))
	},
	"truncated": func(t *testing.T, path string) {
		if err := os.Truncate(path, int64(4*os.Getpagesize())); err != nil {
			t.Fatal(err)
		}
	},
	"truncated before the free list": func(t *testing.T, path string) {
		// The lost page is still inside the memory map, so reading it
		// faults (SIGBUS) instead of reading zeros.
		id, size := findPage(t, path, "freelist")
		if err := os.Truncate(path, int64(id*size)); err != nil {
			t.Fatal(err)
		}
	},
	"data pages overwritten": func(t *testing.T, path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		page := os.Getpagesize()
		for i := 2 * page; i < len(data); i++ {
			data[i] = byte(i*7 + 3)
		}
		writeFile(t, path, data)
	},
	"a tree page zeroed": func(t *testing.T, path string) {
		id, size := findPage(t, path, "branch")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		clear(data[id*size : (id+1)*size])
		writeFile(t, path, data)
	},
	"keys scrambled in a leaf": func(t *testing.T, path string) {
		// The page header and element index stay valid; the first keys,
		// which follow the index, are no longer in order.
		id, size := findPage(t, path, "leaf")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		start := id*size + leafIndexEnd(data[id*size:])
		for i := start; i < start+64; i++ {
			data[i] = 0xff
		}
		writeFile(t, path, data)
	},
}

// leafIndexEnd returns where the keys and values of a bbolt leaf page
// start: after the 16-byte page header and one 16-byte element per entry,
// whose count is at byte 10.
func leafIndexEnd(page []byte) int {
	count := int(page[10]) | int(page[11])<<8
	return 16 + 16*count
}

// findPage returns the id of a page of type typ in the database at path, and
// the page size.
func findPage(t *testing.T, path, typ string) (id, size int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for i := 2; ; i++ {
			info, err := tx.Page(i)
			if err != nil || info == nil {
				return fmt.Errorf("no %s page: %v", typ, err)
			}
			if info.Type == typ {
				id = i
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, db.Info().PageSize
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptFileIsMovedAside(t *testing.T) {
	for name, spoil := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			s, err := Open(dir, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var recs []Record
			for i := range 2000 {
				recs = append(recs, Record{Key: fmt.Sprintf("203.0.%d.%d", i/256, i%256), Data: json.RawMessage(`{"reason":"some padding to fill pages"}`)})
			}
			if err := s.Put(KindBlocks, recs...); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			spoil(t, path)
			spoiled, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			clk := testclock.New(testStart)
			var log testlog.Recorder
			s = openTest(t, dir, Options{Now: clk.Now, Logf: log.Logf})
			if got := mustLoad(t, s, KindBlocks); len(got) != 0 {
				t.Errorf("the store did not start empty: %d records", len(got))
			}
			if err := s.Put(KindBlocks, Record{Key: "fresh"}); err != nil {
				t.Errorf("Put on the fresh store: %v", err)
			}
			aside := fmt.Sprintf("%s.corrupt-%d", path, clk.Now().Unix())
			kept, err := os.ReadFile(aside)
			if err != nil {
				t.Fatalf("the corrupt file was not moved aside: %v", err)
			}
			if string(kept) != string(spoiled) {
				t.Error("the file moved aside is not the corrupt one")
			}
			if !log.Contains("corrupt") || !log.Contains(aside) {
				t.Errorf("warning %q does not say the file was corrupt and where it went", log.String())
			}
		})
	}
}

func TestWriterCoalesces(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	w := s.NewWriter(time.Hour)
	defer w.Close()
	for i := range 1000 {
		w.Put(KindVerdicts, Record{Key: "203.0.113.1", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := mustLoad(t, s, KindVerdicts)
	if len(got) != 1 || string(got[0].Data) != `{"n":999}` {
		t.Errorf("Load = %+v, want one record with the last value", got)
	}

	w.Put(KindVerdicts, Record{Key: "203.0.113.2"})
	w.Delete(KindVerdicts, "203.0.113.2")
	w.Delete(KindVerdicts, "203.0.113.1")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s, KindVerdicts); len(got) != 0 {
		t.Errorf("after the deletes Load = %v, want none", keys(got))
	}
}

// eventually polls cond until it holds or a generous deadline passes; the
// deadline only bounds a hang, it is not what the test measures.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriterCommitsInTheBackground(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})

	ticking := s.NewWriter(time.Millisecond)
	defer ticking.Close()
	ticking.Put(KindTags, Record{Key: "10.0.0.1"})
	eventually(t, "a commit on the tick", func() bool { return len(mustLoad(t, s, KindTags)) == 1 })

	full := s.NewWriter(time.Hour)
	defer full.Close()
	for i := range flushAt {
		full.Put(KindBlocks, Record{Key: fmt.Sprint(i)})
	}
	eventually(t, "a commit of a full batch", func() bool { return len(mustLoad(t, s, KindBlocks)) == flushAt })
}

func TestWriterCloseFlushesAndStops(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	before := runtime.NumGoroutine()
	w := s.NewWriter(time.Hour)
	w.Put(KindAllow, Record{Key: "a"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := keys(mustLoad(t, s, KindAllow)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after Close Load = %v, want [a]", got)
	}
	eventually(t, "the writer goroutine ending", func() bool { return runtime.NumGoroutine() <= before })

	w.Put(KindAllow, Record{Key: "late"})
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if w.Dropped() != 1 {
		t.Errorf("Dropped = %d after a Put on a closed writer, want 1", w.Dropped())
	}
	if got := keys(mustLoad(t, s, KindAllow)); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a Put after Close was stored: %v", got)
	}
}

func TestWriterKeepsChangesWhenCommitsFail(t *testing.T) {
	dir := t.TempDir()
	var log testlog.Recorder
	s, err := Open(dir, Options{NoSync: true, Logf: log.Logf})
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter(time.Hour)
	defer w.Close()
	w.Put(KindBlocks, Record{Key: "kept"})
	w.Put(KindBlocks, Record{Key: ""})
	if w.Dropped() != 1 {
		t.Errorf("Dropped = %d after an empty key, want 1", w.Dropped())
	}

	if err := s.Close(); err != nil { // every commit now fails
		t.Fatal(err)
	}
	if err := w.Flush(); err == nil {
		t.Fatal("Flush on a closed store succeeded")
	}
	for i := 1; i < maxPending; i++ {
		w.Put(KindBlocks, Record{Key: fmt.Sprint(i)})
	}
	w.Put(KindBlocks, Record{Key: "one too many"})
	if got := w.Dropped(); got != 2 {
		t.Errorf("Dropped = %d with a full queue, want 2", got)
	}
	if !log.Contains("writes failing") {
		t.Errorf("the failing commit was not logged: %q", log.String())
	}
}

// TestCrashKeepsFlushedRecords kills a process that writes through a Writer
// with SIGKILL, while it commits, and checks that what it had flushed is
// there and the file is intact.
func TestCrashKeepsFlushedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "STATE_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q, %v; want ready", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	var log testlog.Recorder
	s := openTest(t, dir, Options{Now: testclock.New(testStart).Now, Logf: log.Logf})
	if len(log.Lines()) != 0 {
		t.Errorf("reopening after the crash warned: %s", log.String())
	}
	got := mustLoad(t, s, KindBlocks)
	have := make(map[string]Record, len(got))
	for _, r := range got {
		have[r.Key] = r
	}
	for i := range helperRecords {
		want := helperRecord(i)
		r, ok := have[want.Key]
		if !ok {
			t.Fatalf("flushed record %s is missing after the crash", want.Key)
		}
		if !r.Expires.Equal(want.Expires) || string(r.Data) != string(want.Data) {
			t.Fatalf("flushed record %s came back as %+v, want %+v", want.Key, r, want)
		}
	}
}

const helperRecords = 500

func helperRecord(i int) Record {
	return Record{
		Key:     fmt.Sprintf("flushed-%04d", i),
		Expires: testStart.Add(time.Duration(i+1) * time.Hour),
		Data:    json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
	}
}

// TestHelperProcess is the process TestCrashKeepsFlushedRecords kills. It
// writes with fsync on, as in production.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("STATE_HELPER_DIR")
	if dir == "" {
		t.Skip("only run by TestCrashKeepsFlushedRecords")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := s.NewWriter(time.Hour)
	for i := range helperRecords {
		w.Put(KindBlocks, helperRecord(i))
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Keep committing, and say ready only once commits are under way, so
	// the kill lands in the middle of them. Stop if orphaned, should the
	// parent die before killing this process.
	parent := os.Getppid()
	for i := 0; os.Getppid() == parent; i++ {
		w.Put(KindBlocks, Record{Key: fmt.Sprintf("later-%d", i%5000), Data: json.RawMessage(`{"later":true}`)})
		if i%100 == 0 {
			_ = w.Flush()
		}
		if i == 2000 {
			fmt.Println("ready")
		}
	}
	os.Exit(1)
}

// An empty database file is not taken for a new, empty database: it is
// moved aside with a warning, or, strict, refused.
func TestOpenEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{Strict: true}); err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("strict Open of an empty file: %v, want a refusal", err)
	}
	logs := &testlog.Recorder{}
	s, err := Open(dir, Options{Logf: logs.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !logs.Contains("is corrupt (the file is empty); moved it to") {
		t.Errorf("no warning about the empty file: %q", logs.String())
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Errorf("moved-aside files %v, want one", aside)
	}
}
