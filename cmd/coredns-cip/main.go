// Command coredns-cip is CoreDNS with a curated set of standard plugins and
// the cipvalidate plugin, plus sub-commands that work without a server.
//
//	coredns-cip [flags]            run the DNS server, like coredns
//	coredns-cip check [flags]      validate one IP with the Criminal IP API
//	coredns-cip fakeapi [flags]    serve a fake Criminal IP API for tests
//	coredns-cip blocks COMMAND     operate block decisions through the event API
//	coredns-cip backtrack [flags]  the original pipeline, offline, on an exported log
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
	"github.com/coredns/coredns/coremain"

	// The standard plugins of this build, one import each. Not
	// github.com/coredns/coredns/core/plugin: that imports every plugin
	// CoreDNS ships, and with them the AWS, Azure, Google Cloud, Kubernetes,
	// etcd and Nomad clients, which a site resolver does not need and which
	// would make the binary several times larger and slower to build. To add a
	// plugin, add its import here; its place in the chain comes from
	// dnsserver.Directives.
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/whoami"
)

const usage = `Usage:
  coredns-cip [flags]            run the DNS server (CoreDNS) with a Corefile
  coredns-cip check [flags]      validate one IP with the Criminal IP API
  coredns-cip fakeapi [flags]    serve a fake Criminal IP API on loopback, for tests
  coredns-cip blocks COMMAND     list blocks, unblock an IP, allowlist a value (event API client)
  coredns-cip backtrack [flags]  validate a host's destinations from an exported firewall log

Run "coredns-cip SUBCOMMAND -h" for a sub-command's flags.

Flags of the DNS server:
`

func main() {
	cipvalidate.RegisterDirective()

	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "check":
			os.Exit(runCheck(os.Args[2:]))
		case "fakeapi":
			os.Exit(runFakeAPI(os.Args[2:]))
		case "blocks":
			os.Exit(runBlocks(os.Args[2:]))
		case "backtrack":
			os.Exit(runBacktrack(os.Args[2:]))
		}
	}

	// coremain registered its flags on flag.CommandLine in its init; this
	// only changes what -h prints before them.
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	coremain.Run()
}
