package cipvalidate

import (
	"fmt"
	"os"
	"slices"

	"github.com/coredns-cip/coredns-cip/internal/enforce"

	"github.com/coredns/caddy"
	"github.com/coredns/caddy/caddyfile"
	"github.com/coredns/coredns/core/dnsserver"
)

// LoadConfig reads the first cipvalidate block of the Corefile at path
// (environment placeholders are expanded as CoreDNS does), checks it as
// the plugin would, and returns the engine's configuration, so that the
// command line validates and enforces exactly as the running plugin does.
// Errors name the file and line.
func LoadConfig(path string) (enforce.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return enforce.Config{}, err
	}
	defer f.Close()
	valid := append(slices.Clone(dnsserver.Directives), pluginName)
	blocksOf, err := caddyfile.Parse(path, f, valid)
	if err != nil {
		return enforce.Config{}, err
	}
	for _, sb := range blocksOf {
		toks, ok := sb.Tokens[pluginName]
		if !ok {
			continue
		}
		c := &caddy.Controller{Dispenser: caddyfile.NewDispenserTokens(path, toks), ServerBlockKeys: sb.Keys}
		cfg, err := parse(c)
		if err != nil {
			return enforce.Config{}, err
		}
		ec := cfg.engineConfig()
		ec.Log, ec.Observer = nil, nil
		return ec, nil
	}
	return enforce.Config{}, fmt.Errorf("%s has no %s block", path, pluginName)
}
