package fakeapi

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

// TestEmbeddedMatchesShared keeps the compiled-in copy of the fixtures
// identical to the shared set, so the offline demo shows what tests check.
func TestEmbeddedMatchesShared(t *testing.T) {
	dir := fixtures.Dir(t)
	shared, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(embedded, "fixtures")
	if err != nil {
		t.Fatal(err)
	}
	copies, err := fs.Glob(sub, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != len(shared) {
		t.Errorf("%d embedded fixtures, %d shared; copy %s/*.json into internal/fakeapi/fixtures/", len(copies), len(shared), dir)
	}
	for _, p := range shared {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(sub, filepath.Base(p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("embedded %s differs from %s (%v)", filepath.Base(p), p, err)
		}
	}
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if s.Fixtures() != len(shared)-1 { // manifest.json is not a fixture
		t.Errorf("Embedded() loaded %d fixtures, want %d", s.Fixtures(), len(shared)-1)
	}
}
