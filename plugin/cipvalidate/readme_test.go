package cipvalidate

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns/coredns/core/dnsserver"

	_ "github.com/coredns/coredns/plugin/forward"
)

// TestReadme checks README.md the way CoreDNS checks its own plugins' READMEs
// (test/readme_test.go): the mandatory sections are there, in order, and every
// ~~~ corefile example starts a server.
func TestReadme(t *testing.T) {
	sections, corefiles := readReadme(t, "README.md")

	want := []string{"Name", "Description", "Syntax", "Examples", "Metrics", "Ready", "External Plugin", "See Also"}
	if !slices.Equal(sections, want) {
		t.Errorf("README sections %q, want %q", sections, want)
	}
	if len(corefiles) == 0 {
		t.Fatal("README has no ~~~ corefile example")
	}

	RegisterDirective()
	// Examples use relative zone file names and the default port; serve them
	// from a temporary directory on a port the kernel chooses.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db.example.org"), []byte(exampleZone), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	port := dnsserver.Port
	dnsserver.Port = "0"
	t.Cleanup(func() { dnsserver.Port = port })

	for _, corefile := range corefiles {
		coretest.Start(t, corefile)
	}
}

// readReadme returns the "## " section titles of a README and its
// ~~~ corefile blocks.
func readReadme(t *testing.T, path string) (sections, corefiles []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var block *strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case line == "~~~ corefile":
			block = new(strings.Builder)
		case block != nil && line == "~~~":
			corefiles = append(corefiles, block.String())
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			sections = append(sections, strings.TrimPrefix(line, "## "))
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return sections, corefiles
}
