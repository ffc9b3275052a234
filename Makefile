# coredns-cip: `make demo` runs the offline walkthrough, `make test` the tests.
GO        ?= go
BIN       ?= bin/coredns-cip
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" at the deadline on a loaded
# machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 200000x
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test unit fuzz demo bench lint clean loadtest fleetlatency latency

all: build

build:
	$(GO) build -o $(BIN) ./cmd/coredns-cip

# The CI entry point: static checks, every test with the race detector, and a
# short run of each fuzz target.
test: lint unit fuzz

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/criminalip
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEquivalent$$' -fuzztime $(FUZZTIME) ./internal/criminalip
	for f in FuzzJSON FuzzNetfilter FuzzFortiGate FuzzPaloAlto FuzzSuricata FuzzZeek; do \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./internal/connlog || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzSyslog$$' -fuzztime $(FUZZTIME) ./internal/syslogin

demo: build
	$(GO) run ./scripts/demo -bin $(BIN) -corefile corefile.example

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Paired load test, with and without cipvalidate, with dnsperf on loopback
# (about 10 minutes; knobs and method in bench/loadtest.sh and BENCHMARKS.md).
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
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

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
