package cipvalidate

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
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

	want := []string{"Name", "Description", "Syntax", "Event API", "Examples", "Metrics", "Ready", "External Plugin", "See Also"}
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
	for name, content := range map[string]string{
		"db.example.org":          exampleZone,
		"criminalip_api_key.json": `{"api_key": "readme-key"}`,
		"cip-token":               "readme-token\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	t.Setenv("CIP_API_KEY", "readme-key")
	// Files the examples name under /etc/coredns are in dir; event APIs
	// listen on a free loopback port.
	events := regexp.MustCompile(`events \S+`)
	port := dnsserver.Port
	dnsserver.Port = "0"
	t.Cleanup(func() { dnsserver.Port = port })

	for _, corefile := range corefiles {
		corefile = strings.ReplaceAll(corefile, "/etc/coredns/", dir+"/")
		corefile = events.ReplaceAllString(corefile, "events 127.0.0.1:0")
		coretest.Start(t, corefile)
	}
}

// TestReadmeDocumentsEveryOption checks that every option parseOption
// accepts is in the README's syntax block and described in a bullet.
func TestReadmeDocumentsEveryOption(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	body = body[strings.Index(body, "func parseOption("):]
	body = body[:strings.Index(body, "\n}\n")]
	var opts []string
	for _, m := range regexp.MustCompile(`(?m)^\tcase ((?:"[a-z_]+"(?:, )?)+):`).FindAllStringSubmatch(body, -1) {
		for _, q := range regexp.MustCompile(`"([a-z_]+)"`).FindAllStringSubmatch(m[1], -1) {
			opts = append(opts, q[1])
		}
	}
	if len(opts) < 20 {
		t.Fatalf("found only %d options in parseOption: %v", len(opts), opts)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	syntax := text[strings.Index(text, "## Syntax"):strings.Index(text, "## Event API")]
	for _, opt := range opts {
		if !regexp.MustCompile(`(?m)^    ` + opt + `( |$)`).MatchString(syntax) {
			t.Errorf("option %q is not in the README's syntax block", opt)
		}
		if !strings.Contains(syntax, "`"+opt+"`") {
			t.Errorf("option %q has no `%s` description in the README", opt, opt)
		}
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
