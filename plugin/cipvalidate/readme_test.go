package cipvalidate

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/testcerts"
	"github.com/coredns/coredns/core/dnsserver"

	_ "github.com/coredns/coredns/plugin/forward"
)

// TestReadme checks README.md the way CoreDNS checks its own plugins' READMEs
// (test/readme_test.go): the mandatory sections are there, in order, and every
// ~~~ corefile example starts a server.
func TestReadme(t *testing.T) {
	sections, corefiles := readReadme(t, "README.md")

	want := []string{"Name", "Description", "Syntax", "Event API", "Examples", "Scope", "Metrics", "Ready", "External Plugin", "See Also"}
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
		"cip-tokens":              "siem events sha256:" + strings.Repeat("ab", 32) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The event API's certificate, key and client CA (events ... tls).
	pki := testcerts.Write(t)
	for name, from := range map[string]string{"events.pem": pki.ServerCert, "events-key.pem": pki.ServerKey, "soc-ca.pem": pki.CA} {
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
		if err != nil {
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

// TestReadmeDocumentsEveryOption holds the README's Syntax section against
// the option table: each line of the syntax block is an option's name and
// one of its forms, each form of each option is a line there, and each
// option has a `name` description.
func TestReadmeDocumentsEveryOption(t *testing.T) {
	cfg := defaultConfig()
	table := cfg.options()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	syntax := text[strings.Index(text, "## Syntax"):strings.Index(text, "## Event API")]
	block := syntax[strings.Index(syntax, "~~~ txt\n")+len("~~~ txt\n"):]
	block = block[:strings.Index(block, "~~~")]

	documented := map[string]bool{} // "name form" lines of the syntax block
	for _, line := range strings.Split(block, "\n") {
		if form, ok := strings.CutPrefix(line, "    "); ok {
			documented[form] = true
		}
	}
	names := map[string]bool{}
	for _, opt := range table {
		if names[opt.name] {
			t.Errorf("option %q is twice in the table", opt.name)
		}
		names[opt.name] = true
		if len(opt.usage) == 0 || (opt.max >= 0 && opt.min > opt.max) {
			t.Errorf("option %q: usage %q, %d to %d arguments", opt.name, opt.usage, opt.min, opt.max)
		}
		for _, u := range opt.usage {
			if !documented[opt.name+" "+u] {
				t.Errorf("%q is not a line of the README's syntax block", opt.name+" "+u)
			}
			delete(documented, opt.name+" "+u)
		}
		if !strings.Contains(syntax, "* `"+opt.name+"`") && !strings.Contains(syntax, " `"+opt.name+"` ") {
			t.Errorf("option %q has no `%s` description in the README", opt.name, opt.name)
		}
	}
	for _, line := range slices.Sorted(maps.Keys(documented)) {
		t.Errorf("the README's syntax block has %q, which is no option's form in the table", line)
	}
	if len(table) < 30 {
		t.Errorf("the table has only %d options", len(table))
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

// TestReadmeTokensExample: the tokens file the README shows loads, with
// the roles and the limit it says.
func TestReadmeTokensExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	text = text[strings.Index(text, "### Tokens and roles"):]
	text = text[strings.Index(text, "~~~ txt\n")+len("~~~ txt\n"):]
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(text[:strings.Index(text, "~~~")]), 0o644); err != nil {
		t.Fatal(err)
	}
	toks, err := adminapi.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []adminapi.Token{
		adminapi.NewToken("siem", adminapi.RoleEvents, "example-siem-token"),
		adminapi.NewToken("paloalto", adminapi.RoleRead, "example-firewall-token"),
		adminapi.NewToken("alice", adminapi.RoleOperator, "example-alice-token"),
	}
	want[1].Rate = 1
	if !slices.Equal(toks, want) {
		t.Errorf("the README's tokens file loads as %+v, want %+v", toks, want)
	}
}
