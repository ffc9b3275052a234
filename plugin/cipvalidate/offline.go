package cipvalidate

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"

	"github.com/coredns/caddy"
	"github.com/coredns/caddy/caddyfile"
	"github.com/coredns/coredns/core/dnsserver"
)

// Offline is what the command line (`coredns-cip backtrack`) takes from
// the cipvalidate block of a Corefile, so that offline work validates and
// enforces exactly as the running plugin does.
type Offline struct {
	APIKey        criminalip.APIKey
	APIURL        string
	Rate          float64
	Burst         int
	Timeout       time.Duration
	Policy        risk.Policy
	Exclude       []netip.Prefix
	Allow         []blocks.Allow
	BlockPolicy   blocks.Policy
	PortsNot      []uint16
	CriticalPorts []uint16

	hooks []hookSpec
}

// LoadOffline reads the first cipvalidate block of the Corefile at path
// (environment placeholders are expanded as CoreDNS does) and checks it as
// the plugin would. Errors name the file and line.
func LoadOffline(path string) (*Offline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	valid := append(slices.Clone(dnsserver.Directives), pluginName)
	blocksOf, err := caddyfile.Parse(path, f, valid)
	if err != nil {
		return nil, err
	}
	for _, sb := range blocksOf {
		toks, ok := sb.Tokens[pluginName]
		if !ok {
			continue
		}
		c := &caddy.Controller{Dispenser: caddyfile.NewDispenserTokens(path, toks), ServerBlockKeys: sb.Keys}
		cfg, err := parse(c)
		if err != nil {
			return nil, err
		}
		return &Offline{
			APIKey: cfg.apiKey, APIURL: cfg.apiURL, Rate: cfg.rate, Burst: cfg.burst, Timeout: cfg.timeout,
			Policy: cfg.policy, Exclude: cfg.exclude, Allow: cfg.staticAllow, BlockPolicy: cfg.blockPolicy,
			PortsNot: cfg.portsNot, CriticalPorts: cfg.criticalPorts, hooks: cfg.hooks,
		}, nil
	}
	return nil, fmt.Errorf("%s has no %s block", path, pluginName)
}

// Sinks builds the Corefile's hooks; close releases them.
func (o *Offline) Sinks() (sinks []sink.Sink, close func(), err error) {
	c := &CIPValidate{cfg: &config{hooks: o.hooks}}
	return c.buildSinks()
}

// Hooks describes the hooks, one per line of the Corefile.
func (o *Offline) Hooks() []string {
	out := make([]string, len(o.hooks))
	for i, h := range o.hooks {
		out[i] = h.line
	}
	return out
}
