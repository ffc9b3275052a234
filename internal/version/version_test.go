package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		Main:     debug.Module{Path: "github.com/coredns/coredns", Version: "(devel)"},
		Deps:     []*debug.Module{{Path: modulePath, Version: "v0.16.0"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-12-07T05:00:00Z"}},
	}
	var i Info
	fromBuildInfo(&i, bi)
	if i.Version != "v0.16.0" || i.Commit != "0123456789abcdef0123456789abcdef01234567" || i.BuildDate != "2026-12-07T05:00:00Z" {
		t.Errorf("from the build info: %+v", i)
	}

	// The linker's values win over the build info.
	i = Info{Version: "v1.0.0", Commit: "feedbee", BuildDate: "2026-01-01T00:00:00Z"}
	fromBuildInfo(&i, bi)
	if i.Version != "v1.0.0" || i.Commit != "feedbee" || i.BuildDate != "2026-01-01T00:00:00Z" {
		t.Errorf("linker values overridden: %+v", i)
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v0.16.0", Commit: "abc1234def5678abc1234def5678abc1234def56", BuildDate: "2026-12-07T05:00:00Z",
		CoreDNS: "1.15.0", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "coredns-cip v0.16.0 (commit abc1234, built 2026-12-07T05:00:00Z) CoreDNS-1.15.0 linux/amd64 go1.26.8"
	if got := i.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := Get(); got.CoreDNS == "" || !strings.HasPrefix(got.GoVersion, "go") || got.Commit == "" {
		t.Errorf("Get() = %+v: empty fields", got)
	}
}
