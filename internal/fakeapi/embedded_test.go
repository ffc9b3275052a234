package fakeapi

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// sharedDir is the shared fixture set, ../shared/fixtures/criminalip beside
// the checkout, seen from this package's directory.
var sharedDir = filepath.Join("..", "..", "..", "shared", "fixtures", "criminalip")

// TestEmbeddedMatchesShared keeps the compiled-in copy of the fixtures, which
// every test and the offline demo use, identical to the shared set. It is the
// one test that needs ../shared, and skips without it.
func TestEmbeddedMatchesShared(t *testing.T) {
	if _, err := os.Stat(filepath.Join(sharedDir, "manifest.json")); err != nil {
		t.Skipf("../shared/fixtures/criminalip not beside the checkout: %v; the repository's copy in internal/fakeapi/fixtures is not compared", err)
	}
	shared, err := filepath.Glob(filepath.Join(sharedDir, "*.json"))
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
		t.Errorf("%d embedded fixtures, %d shared; copy %s/*.json into internal/fakeapi/fixtures/", len(copies), len(shared), sharedDir)
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

// TestEmbeddedHasManifest: the compiled-in set carries its manifest, which
// gives the tests their expectations and the fake the IP of each fixture.
func TestEmbeddedHasManifest(t *testing.T) {
	if _, err := fs.Stat(embedded, "fixtures/"+manifestName); err != nil {
		t.Fatalf("the embedded fixtures have no %s: %v", manifestName, err)
	}
}
