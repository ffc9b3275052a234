package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixed = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTest(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return fixed }
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// lines reads path and decodes each line as an Entry, failing on anything
// that is not exactly one JSON object per line.
func lines(t *testing.T, path string) []Entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeLines(t, data)
}

func decodeLines(t *testing.T, data []byte) []Entry {
	t.Helper()
	if len(data) == 0 {
		return nil
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("output does not end with a newline: %q", data)
	}
	var out []Entry
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var e Entry
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || dec.More() {
			t.Fatalf("line %d is not one JSON entry (%v): %q", i+1, err, line)
		}
		out = append(out, e)
	}
	return out
}

func TestLinesAreJSONWithTheFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	full := Entry{
		Time:     time.Date(2026, 2, 3, 4, 5, 6, 0, time.FixedZone("CET", 3600)),
		Kind:     KindBlock,
		Decision: "block",
		IP:       "203.0.113.7",
		Client:   "10.0.0.5",
		Event:    "travel",
		Ref:      "ev-42",
		Qname:    "evil.example.\n{\"kind\":\"forged\"}",
		Reasons:  []string{"tor", "vpn"},
		TTL:      3600,
		Actor:    "cipvalidate",
		Detail:   "nft set cip_block",
	}
	l.Write(full)
	l.Write(Entry{Kind: KindExpire, IP: "203.0.113.7"})

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeLines(t, raw)
	if len(got) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(got), raw)
	}
	want := full
	want.Time = full.Time.UTC()
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("line 1 = %+v\nwant     %+v", got[0], want)
	}
	if got[1].Kind != KindExpire || !got[1].Time.Equal(fixed) {
		t.Errorf("line 2 = %+v, want an expire stamped %v", got[1], fixed)
	}
	second := strings.Split(string(raw), "\n")[1]
	for _, absent := range []string{"decision", "reasons", "ttl", "qname"} {
		if strings.Contains(second, `"`+absent+`"`) {
			t.Errorf("empty field %q is written: %s", absent, second)
		}
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("the log has mode %v; others must not read it", st.Mode().Perm())
	}
}

func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","kind":"allow"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, path)
	l.Write(Entry{Kind: KindBlock})
	got := lines(t, path)
	if len(got) != 2 || got[0].Kind != KindAllow || got[1].Kind != KindBlock {
		t.Errorf("log = %+v, want the old allow then the new block", got)
	}
}

func TestRotationByMove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, path)
	l.Write(Entry{Kind: KindBlock, IP: "192.0.2.1"})
	rotated := filepath.Join(dir, "audit.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	l.Write(Entry{Kind: KindUnblock, IP: "192.0.2.1"})
	l.Write(Entry{Kind: KindBlock, IP: "192.0.2.2"})

	if old := lines(t, rotated); len(old) != 1 || old[0].Kind != KindBlock {
		t.Errorf("rotated file = %+v, want only the first block", old)
	}
	if cur := lines(t, path); len(cur) != 2 || cur[0].Kind != KindUnblock || cur[1].IP != "192.0.2.2" {
		t.Errorf("new file = %+v, want the two later entries", cur)
	}
	if l.Errors() != 0 {
		t.Errorf("Errors = %d", l.Errors())
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, path)
	l.Write(Entry{Kind: KindAllow})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Reopen did not create the file at the path: %v", err)
	}
	l.Write(Entry{Kind: KindBlock})
	if got := lines(t, path); len(got) != 1 || got[0].Kind != KindBlock {
		t.Errorf("after Reopen the file has %+v", got)
	}
}

func TestFailedWritesAreCountedAndRetried(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "audit.log")
	l := openTest(t, path)

	// The directory goes away: the path cannot be reopened.
	if err := os.Rename(logDir, filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	l.Write(Entry{Kind: KindBlock})
	if l.Errors() != 1 {
		t.Fatalf("Errors = %d after a write to a missing directory, want 1", l.Errors())
	}

	if err := os.Mkdir(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	l.Write(Entry{Kind: KindUnblock})
	if got := lines(t, path); len(got) != 1 || got[0].Kind != KindUnblock {
		t.Errorf("after the directory came back the log has %+v", got)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Write(Entry{Kind: KindBlock})
	if l.Errors() != 2 {
		t.Errorf("Errors = %d after a write to a closed log, want 2", l.Errors())
	}
}

func TestStdout(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = out
	t.Cleanup(func() { os.Stdout = saved })

	for _, name := range []string{"-", "stdout"} {
		l, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		l.Write(Entry{Kind: KindVerdict, Detail: name})
		if err := l.Reopen(); err != nil {
			t.Errorf("Reopen on %s: %v", name, err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close on %s: %v", name, err)
		}
	}
	// Close left standard output open.
	if _, err := fmt.Fprint(out, ""); err != nil {
		t.Errorf("standard output was closed: %v", err)
	}
	os.Stdout = saved

	got := lines(t, out.Name())
	if len(got) != 2 || got[0].Detail != "-" || got[1].Detail != "stdout" {
		t.Errorf("standard output got %+v", got)
	}
}

func TestConcurrentWritesStayWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, path)
	const writers, each = 20, 200
	long := strings.Repeat("x", 2000) // a line split in two writes would show
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				l.Write(Entry{Kind: KindVerdict, Client: fmt.Sprint(w), Ref: fmt.Sprint(i), Detail: long})
			}
		})
	}
	wg.Wait()

	got := lines(t, path)
	if len(got) != writers*each {
		t.Fatalf("got %d lines, want %d", len(got), writers*each)
	}
	seen := make(map[string]bool)
	for _, e := range got {
		if e.Detail != long {
			t.Fatalf("a line was cut: %+v", e)
		}
		seen[e.Client+"/"+e.Ref] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct entries, want %d", len(seen), writers*each)
	}
}

func TestNilLogDiscards(t *testing.T) {
	var l *Log
	l.Write(Entry{Kind: KindBlock})
	if l.Errors() != 0 || l.Reopen() != nil || l.Close() != nil {
		t.Error("a nil Log is not a silent no-op")
	}
}
