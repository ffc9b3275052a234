package cipvalidate

import (
	"strings"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

const pluginName = "cipvalidate"

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	key := strings.Join(c.ServerBlockKeys, " ")
	if cfg.redisNode != "" {
		key += " node=" + cfg.redisNode // several nodes in one process (tests)
	}
	cv := &CIPValidate{Zones: cfg.zones, cfg: cfg, key: key, server: dnsserver.GetConfig(c)}

	// Order on reload (caddy.Instance.Restart): the old instance's OnRestart,
	// the new instance's setup and OnStartup, then the old OnShutdown. The
	// event API listener is therefore closed in OnRestart, so the new one can
	// bind the same address, and reopened if the reload fails.
	c.OnStartup(cv.start)
	c.OnRestart(cv.stopEvents)
	c.OnRestartFailed(cv.startEvents)
	c.OnShutdown(cv.shutdown)

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		cv.Next = next
		return cv
	})
	return nil
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
