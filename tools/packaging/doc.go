// Package packaging holds the tests of coredns-cip's release artefacts: the
// .deb and .rpm built with nfpm from .goreleaser.yaml's file list, and the
// container image (contrib/packaging/Containerfile). It is in the tools
// module so that nfpm stays out of the server's dependency graph; run it with
// `make package-test` (docs/packaging.md).
package packaging
