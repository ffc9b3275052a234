package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the "rpm" packager
	"go.yaml.in/yaml/v3"
)

// root is the repository, the tools module's parent.
var root = func() string { p, _ := filepath.Abs("../.."); return p }()

// binary is the static coredns-cip to package: $COREDNS_CIP_BIN (make
// package-test builds it once), else built here with the curated plugin set
// (what is packaged does not depend on it).
func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("COREDNS_CIP_BIN"); b != "" {
		return b
	}
	b := filepath.Join(t.TempDir(), "coredns-cip")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "curated", "-o", b, "./cmd/coredns-cip")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return b
}

// goreleaserNFPM is the part of .goreleaser.yaml's nfpms entry that decides
// what is in the packages.
type goreleaserNFPM struct {
	Bindir   string         `yaml:"bindir"`
	Contents files.Contents `yaml:"contents"`
	Scripts  struct {
		PostInstall string `yaml:"postinstall"`
	} `yaml:"scripts"`
}

// buildPackages builds the .deb and .rpm from .goreleaser.yaml's file list,
// as goreleaser would (the binary into bindir, mode 0755).
func buildPackages(t *testing.T) (deb, rpm string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		NFPMs []goreleaserNFPM `yaml:"nfpms"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil || len(cfg.NFPMs) != 1 {
		t.Fatalf(".goreleaser.yaml: want one nfpms entry, got %d (%v)", len(cfg.NFPMs), err)
	}
	n := cfg.NFPMs[0]
	contents := files.Contents{{
		Source: binary(t), Destination: n.Bindir + "/coredns-cip",
		FileInfo: &files.ContentFileInfo{Mode: 0o755},
	}}
	for _, c := range n.Contents {
		if c.Source != "" {
			c.Source = filepath.Join(root, c.Source)
		}
		contents = append(contents, c)
	}
	dir := t.TempDir()
	for _, format := range []string{"deb", "rpm"} {
		info := nfpm.WithDefaults(&nfpm.Info{
			Name: "coredns-cip", Arch: runtime.GOARCH, Platform: "linux",
			Version: "1.2.3", Release: "1",
			Maintainer:  "test <test@example.org>",
			Description: "coredns-cip test package",
			Overridables: nfpm.Overridables{
				Contents: contents,
				Scripts:  nfpm.Scripts{PostInstall: filepath.Join(root, n.Scripts.PostInstall)},
			},
		})
		if err := nfpm.PrepareForPackager(info, format); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		p, err := nfpm.Get(format)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "coredns-cip."+format)
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Package(info, f); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if format == "deb" {
			deb = out
		} else {
			rpm = out
		}
	}
	return deb, rpm
}

// want is what an installed package must hold: path -> mode and owner.
var want = map[string]string{
	"/usr/bin/coredns-cip":                                       "-rwxr-xr-x root/root",
	"/usr/lib/systemd/system/coredns-cip.service":                "-rw-r--r-- root/root",
	"/usr/lib/systemd/system/coredns-cip.service.d/package.conf": "-rw-r--r-- root/root",
	"/usr/share/coredns-cip/systemd/nftables.conf":               "-rw-r--r-- root/root",
	"/etc/coredns-cip/Corefile":                                  "-rw-r--r-- root/root",
	"/etc/coredns-cip/env":                                       "-rw------- root/root",
}

// conffiles are kept when an operator edited them (config|noreplace).
var conffiles = []string{"/etc/coredns-cip/Corefile", "/etc/coredns-cip/env"}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed (.ci/run installs it): %v", name, err)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPackages(t *testing.T) {
	deb, rpm := buildPackages(t)

	t.Run("deb", func(t *testing.T) {
		// dpkg-deb -c: "-rw-r--r-- root/root 123 2026-01-01 00:00 ./etc/coredns-cip/env"
		listing := run(t, "dpkg-deb", "-c", deb)
		for path, modeOwner := range want {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(modeOwner) + `\s.*\s\.` + regexp.QuoteMeta(path) + `$`)
			if !re.MatchString(listing) {
				t.Errorf("%s: want %s %s in:\n%s", deb, modeOwner, path, listing)
			}
		}
		if strings.Contains(listing, "./var/lib/coredns-cip") {
			t.Errorf("the state directory is the unit's StateDirectory=, not the package's:\n%s", listing)
		}
		dir := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, dir)
		got, _ := os.ReadFile(filepath.Join(dir, "conffiles"))
		if strings.Join(strings.Fields(string(got)), " ") != strings.Join(conffiles, " ") {
			t.Errorf("conffiles = %q, want %q", got, conffiles)
		}
		checkPostinst(t, filepath.Join(dir, "postinst"))
	})

	t.Run("rpm", func(t *testing.T) {
		// --dump: path size mtime digest mode owner group isconfig isdoc ...
		dump := run(t, "rpm", "-qp", "--dump", rpm)
		lines := map[string][]string{}
		for _, l := range strings.Split(strings.TrimSpace(dump), "\n") {
			f := strings.Fields(l)
			lines[f[0]] = f
		}
		for path, modeOwner := range want {
			f, ok := lines[path]
			if !ok {
				t.Errorf("%s: no %s in:\n%s", rpm, path, dump)
				continue
			}
			perm := map[string]string{"-rwxr-xr-x": "0100755", "-rw-r--r--": "0100644", "-rw-------": "0100600"}[strings.Fields(modeOwner)[0]]
			if f[4] != perm || f[5] != "root" || f[6] != "root" {
				t.Errorf("%s: mode %s owner %s:%s, want %s root:root", path, f[4], f[5], f[6], perm)
			}
		}
		cfg := strings.Fields(run(t, "rpm", "-qp", "--configfiles", rpm))
		if strings.Join(cfg, " ") != strings.Join(conffiles, " ") {
			t.Errorf("config files = %q, want %q", cfg, conffiles)
		}
		// config(noreplace): an edited file stays, the new one lands as .rpmnew.
		flags := run(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`, rpm)
		for _, c := range conffiles {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(c) + ` cn$`).MatchString(flags) {
				t.Errorf("%s is not config(noreplace):\n%s", c, flags)
			}
		}
		scripts := run(t, "rpm", "-qp", "--scripts", rpm)
		if !strings.Contains(scripts, "systemctl daemon-reload") {
			t.Errorf("rpm postinstall does not reload systemd:\n%s", scripts)
		}
	})
}

// checkPostinst runs the package's postinstall where systemd does not run
// (this test's machine, a container build): it must succeed and do nothing.
func checkPostinst(t *testing.T, script string) {
	t.Helper()
	body, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("no postinst: %v", err)
	}
	if !strings.Contains(string(body), "/run/systemd/system") || !strings.Contains(string(body), "systemctl daemon-reload") {
		t.Errorf("postinst does not reload systemd only when it runs:\n%s", body)
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		return // systemd runs here: running it would reload the host's
	}
	if out, err := exec.Command("sh", script, "configure").CombinedOutput(); err != nil {
		t.Errorf("postinst without systemd: %v\n%s", err, out)
	}
}
