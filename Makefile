# coredns-cip: `make demo` runs the offline walkthrough, `make test` the tests.
GO        ?= go
BIN       ?= bin/coredns-cip
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" at the deadline on a loaded
# machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 200000x
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The build's identity, for coredns-cip -version and the build_info metrics
# (README "Version"). Packagers (e.g. .goreleaser.yaml) set the same -X
# variables: github.com/coredns-cip/coredns-cip/internal/version.Version,
# .Commit, .BuildDate, and github.com/coredns/coredns/coremain.GitCommit
# (coredns_build_info's revision label).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDDATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VPKG      := github.com/coredns-cip/coredns-cip/internal/version
LDFLAGS   ?= -X $(VPKG).Version=$(VERSION) -X $(VPKG).Commit=$(COMMIT) -X $(VPKG).BuildDate=$(BUILDDATE) \
	-X github.com/coredns/coredns/coremain.GitCommit=$(COMMIT)
# The tests and lint use the curated plugin set (cmd/coredns-cip/plugins_curated.go):
# the full one compiles the cloud and Kubernetes SDKs, minutes on a small
# machine. test/fullbuild_test.go builds the full binary once.
TAGS      ?= curated
BUILDTAGS ?=

.PHONY: all build test unit helm fuzz demo bench lint clean loadtest fleetlatency latency

all: build

# The drop-in CoreDNS: every standard plugin plus cipvalidate. The curated
# build: make build BUILDTAGS=curated.
build:
	$(GO) build -tags '$(BUILDTAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/coredns-cip

# The CI entry point: static checks, every test with the race detector, and a
# short run of each fuzz target. -timeout: test/fullbuild_test.go compiles
# the standard plugin set twice (cmd/coredns-cip and the plugin.cfg route),
# minutes each on a small machine, past go test's default 10 minutes.
test: lint unit fuzz

unit: helm
	$(GO) test -race -count=1 -timeout 30m -tags $(TAGS) ./...

# Compiles Helm (tools/helm, ~5 CPU-minutes cold) into the build cache before
# the tests, so the chart test in deploy/helm only links it, well inside its
# package's test timeout.
helm:
	$(GO) build -C tools/helm -o /dev/null helm.sh/helm/v3/cmd/helm

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/criminalip
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEquivalent$$' -fuzztime $(FUZZTIME) ./internal/criminalip
	for f in FuzzJSON FuzzNetfilter FuzzFortiGate FuzzPaloAlto FuzzSuricata FuzzZeek; do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./internal/connlog || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzSyslog$$' -fuzztime $(FUZZTIME) ./internal/syslogin

# The demo runs the curated build, in a file of its own so that it does not
# replace the drop-in bin/coredns-cip.
DEMOBIN   ?= bin/coredns-cip-curated
# Static, as make package-test and the test binary build it (one compile of
# the curated set in CI, not three).
demo:
	$(MAKE) static BUILDTAGS=$(TAGS) STATIC=$(DEMOBIN)
	$(GO) run ./scripts/demo -bin $(DEMOBIN) -corefile corefile.example

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Paired load test, with and without cipvalidate, with dnsperf on loopback
# (about 13 minutes; knobs and method in bench/loadtest.sh and BENCHMARKS.md).
loadtest:
	GO=$(GO) BIN=$(BIN) bash bench/loadtest.sh
	$(MAKE) fleetlatency

# A block on one node of a fleet -> the other node's DNS answers and nftables
# set: p50/p99 over 200 blocks (root, redis-server and nft; BENCHMARKS.md).
fleetlatency:
	$(GO) test -run '^$$' -bench FleetBlockToPeer -benchtime 200x ./plugin/cipvalidate/

# Event to enforcement latency (nftables in a network namespace; root), also
# scenario l of loadtest. Knobs at the top of bench/latency.sh.
latency:
	GO=$(GO) BIN=$(BIN) bash bench/latency.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(GO) run $(STATICCHECK) -tags $(TAGS) ./...

clean:
	rm -rf bin

# Releases and packaging (docs/packaging.md). STATIC is a static binary, the
# one packaged and put in the image (with build16's LDFLAGS and BUILDTAGS).
STATIC  ?= bin/static/coredns-cip
IMAGE   ?= localhost/coredns-cip:dev
GORELEASER ?= github.com/goreleaser/goreleaser/v2@v2.17.0

.PHONY: static image package-test release-check

static:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(BUILDTAGS)' -ldflags '$(LDFLAGS)' -o $(STATIC) ./cmd/coredns-cip

# The container image, with buildah (no daemon; as root for setcap).
image: static
	rm -rf bin/image && sh contrib/packaging/stage-image.sh $(STATIC) bin/image
	buildah --storage-driver vfs bud --isolation chroot -f bin/image/Containerfile -t $(IMAGE) bin/image

# The .deb and .rpm from .goreleaser.yaml's file list, and the image, built
# and inspected (tools/packaging; root, buildah, podman, runc, rpm, dig).
# The curated binary: the packages' contents do not depend on the plugins.
package-test:
	$(MAKE) static BUILDTAGS=curated STATIC=bin/static-test/coredns-cip
	cd tools && COREDNS_CIP_BIN=$(CURDIR)/bin/static-test/coredns-cip $(GO) test -count=1 ./packaging/

# goreleaser's own check of .goreleaser.yaml. Not in CI: compiling goreleaser
# takes longer than the rest of CI on 2 cores (docs/packaging.md).
release-check:
	$(GO) run $(GORELEASER) check
