package cipvalidate

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

const pluginName = "cipvalidate"

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	cv, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		cv.Next = next
		return cv
	})

	return nil
}

// parse reads
//
//	cipvalidate [ZONES...] {
//	}
//
// The block takes no options yet; each one is reported as unknown.
func parse(c *caddy.Controller) (*CIPValidate, error) {
	cv := &CIPValidate{}

	i := 0
	for c.Next() {
		if i > 0 {
			return nil, plugin.ErrOnce
		}
		i++

		zones, err := parseZones(c, c.RemainingArgs())
		if err != nil {
			return nil, err
		}
		cv.Zones = zones

		if c.NextBlock() {
			return nil, c.Errf("unknown property %q", c.Val())
		}
	}
	return cv, nil
}

// parseZones normalises the zones given as arguments, or takes the server
// block's zones when there are none. Unlike plugin.OriginsFromArgsOrServerBlock
// it reports a zone it cannot parse instead of dropping it silently.
func parseZones(c *caddy.Controller, args []string) ([]string, error) {
	if len(args) == 0 {
		return plugin.OriginsFromArgsOrServerBlock(nil, c.ServerBlockKeys), nil
	}
	var zones []string
	for _, a := range args {
		z := plugin.Host(a).NormalizeExact()
		if len(z) == 0 {
			return nil, c.Errf("invalid zone %q", a)
		}
		zones = append(zones, z...)
	}
	return zones, nil
}
