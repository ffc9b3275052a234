//go:build !curated

package main

// The default build is a drop-in CoreDNS: every plugin CoreDNS's plugin.cfg
// lists, in CoreDNS's order (dnsserver.Directives, from its zdirectives.go),
// with cipvalidate inserted before cache by cipvalidate.RegisterDirective.
// It compiles in the AWS, Azure, Google Cloud, Kubernetes, etcd and Nomad
// clients too, which is why the tests build with -tags curated
// (plugins_curated.go) and only test/fullbuild_test.go builds this set.
import _ "github.com/coredns/coredns/core/plugin"
