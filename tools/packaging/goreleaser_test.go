package packaging

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goreleaser/goreleaser/v2/pkg/config"
)

// TestGoreleaserConfig loads .goreleaser.yaml with goreleaser's own config
// package, strictly, as `goreleaser check` starts by doing: an unknown or
// misspelt key, a wrong type or a config version other than 2 fails here.
// The whole `goreleaser check` (which also applies defaults and reports
// deprecations) is `make release-check`: compiling goreleaser takes longer
// than the rest of CI on two cores; its config package compiles in seconds.
func TestGoreleaserConfig(t *testing.T) {
	p, err := config.Load(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if p.Version != 2 {
		t.Errorf("version %d, want 2", p.Version)
	}
	if len(p.Builds) != 1 {
		t.Fatalf("want one build, got %d", len(p.Builds))
	}
	b := p.Builds[0]
	if !slices.Equal(b.Goos, []string{"linux"}) || !slices.Equal(b.Goarch, []string{"amd64", "arm64"}) {
		t.Errorf("build targets %v/%v, want linux amd64 and arm64", b.Goos, b.Goarch)
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") {
		t.Errorf("build env %v: want a static binary (CGO_ENABLED=0)", b.Env)
	}
	ldflags := strings.Join(b.Ldflags, " ")
	for _, v := range []string{
		"github.com/coredns-cip/coredns-cip/internal/version.Version=",
		"github.com/coredns-cip/coredns-cip/internal/version.Commit=",
		"github.com/coredns-cip/coredns-cip/internal/version.BuildDate=",
		"github.com/coredns/coredns/coremain.GitCommit=",
	} {
		if !strings.Contains(ldflags, "-X "+v) {
			t.Errorf("ldflags %q lack -X %s (the build's identity)", ldflags, v)
		}
	}
	if len(p.SBOMs) == 0 || p.Checksum.Algorithm != "sha256" {
		t.Errorf("sboms %d, checksum %q: want an SBOM and sha256 checksums", len(p.SBOMs), p.Checksum.Algorithm)
	}
	if len(p.NFPMs) != 1 || !slices.Equal(p.NFPMs[0].Formats, []string{"deb", "rpm"}) {
		t.Fatalf("nfpms %+v, want one entry making deb and rpm", p.NFPMs)
	}
	conf := map[string]string{}
	for _, c := range p.NFPMs[0].Contents {
		conf[c.Destination] = c.Type
	}
	for _, dst := range []string{"/etc/coredns-cip/Corefile", "/etc/coredns-cip/env"} {
		if conf[dst] != "config|noreplace" {
			t.Errorf("%s: type %q, want config|noreplace (an upgrade keeps the operator's file)", dst, conf[dst])
		}
	}
	if _, ok := conf["/usr/lib/systemd/system/coredns-cip.service"]; !ok {
		t.Errorf("nfpms contents %v lack the systemd unit", conf)
	}
}
