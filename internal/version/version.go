// Package version holds what identifies a build of coredns-cip: its
// version, commit and build date, set by the linker (the Makefile's
// -ldflags -X, see LDFLAGS there), with the module's VCS stamp as the
// fallback. The command prints it (coredns-cip -version) and the plugin
// exports it as coredns_cipvalidate_build_info.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/coredns/coredns/coremain"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Set by -ldflags "-X github.com/coredns-cip/coredns-cip/internal/version.Version=..."
// (and .Commit, .BuildDate); empty in a plain go build.
var (
	// Version is the coredns-cip version, `git describe --tags --always --dirty`.
	Version string
	// Commit is the full commit hash the binary was built from.
	Commit string
	// BuildDate is when the binary was built, RFC 3339 in UTC.
	BuildDate string
)

// modulePath is this module's path, to find it in the build info when it is
// a dependency (a stock CoreDNS built with it, see scripts/build-with-coredns.sh).
const modulePath = "github.com/coredns-cip/coredns-cip"

// Info is the identity of the running binary.
type Info struct {
	Version   string // "unknown" when neither the linker nor the module says
	Commit    string // "unknown" when neither the linker nor the VCS stamp says
	BuildDate string // "unknown" likewise
	CoreDNS   string // CoreDNS's version, e.g. "1.15.0"
	GoVersion string // runtime.Version()
	Platform  string // GOOS/GOARCH
}

// Get returns the linker's values, completed from runtime/debug's build
// info: vcs.revision and vcs.time when go build stamped them (it does in a
// git checkout unless -buildvcs=false), and the module version when this
// module is a dependency.
func Get() Info {
	i := Info{
		Version: Version, Commit: Commit, BuildDate: BuildDate,
		CoreDNS: coremain.CoreVersion, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		fromBuildInfo(&i, bi)
	}
	for _, s := range []*string{&i.Version, &i.Commit, &i.BuildDate} {
		if *s == "" {
			*s = "unknown"
		}
	}
	return i
}

// fromBuildInfo fills the empty fields of i from bi.
func fromBuildInfo(i *Info, bi *debug.BuildInfo) {
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && i.Commit == "":
			i.Commit = s.Value
		case s.Key == "vcs.time" && i.BuildDate == "":
			i.BuildDate = s.Value
		}
	}
	if i.Version != "" {
		return
	}
	mod := &bi.Main
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			mod = d
		}
	}
	if mod.Path == modulePath && mod.Version != "" && mod.Version != "(devel)" {
		i.Version = mod.Version
	}
}

// String is the one line -version prints, e.g.
// "coredns-cip v0.16.0 (commit abc1234, built 2026-12-07T05:00:00Z) CoreDNS-1.15.0 linux/amd64 go1.26.8".
func (i Info) String() string {
	return fmt.Sprintf("coredns-cip %s (commit %s, built %s) CoreDNS-%s %s %s",
		i.Version, short(i.Commit), i.BuildDate, i.CoreDNS, i.Platform, i.GoVersion)
}

// short abbreviates a full commit hash as git does, to 7 characters.
func short(commit string) string {
	if len(commit) == 40 && !strings.ContainsFunc(commit, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }) {
		return commit[:7]
	}
	return commit
}

// buildInfo is coredns_cipvalidate_build_info: always 1, its labels say
// which build is running. promauto registers it with the default registry,
// which CoreDNS's prometheus plugin serves.
var buildInfo = func() *prometheus.GaugeVec {
	g := promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "coredns", Subsystem: "cipvalidate", Name: "build_info",
		Help: "Always 1; the labels identify the build: coredns-cip version, commit, build date, CoreDNS and Go versions.",
	}, []string{"version", "commit", "build_date", "coredns_version", "goversion"})
	v := Get()
	g.WithLabelValues(v.Version, v.Commit, v.BuildDate, v.CoreDNS, v.GoVersion).Set(1)
	return g
}()

// Collector is coredns_cipvalidate_build_info, for the plugin's list of its
// metrics.
func Collector() prometheus.Collector { return buildInfo }
