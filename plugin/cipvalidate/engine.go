package cipvalidate

import (
	"github.com/coredns-cip/coredns-cip/internal/enforce"
)

// engineConfig is what the decision engine takes from a cipvalidate block.
func (cfg *config) engineConfig() enforce.Config {
	connlogs := make([]enforce.ConnlogSpec, len(cfg.connlogs))
	for i, l := range cfg.connlogs {
		connlogs[i] = enforce.ConnlogSpec{Path: l.path, Format: l.format, Alerts: l.alerts, Syslog: l.syslog}
	}
	return enforce.Config{
		APIKey: cfg.apiKey, APIURL: cfg.apiURL, Rate: cfg.rate, Burst: cfg.burst, Timeout: cfg.timeout,
		Policy: cfg.policy, Workers: cfg.workers, QueueSize: cfg.queueSize, CPU: cfg.cpu,
		Window: cfg.window, Watch: cfg.watch, Retain: cfg.retain, PerClient: cfg.perClient, Total: cfg.total,
		TagNets: cfg.tagNets, AfterHours: cfg.afterHours, Budget: cfg.budget,
		CacheSize: cfg.cacheSize, TTLs: cfg.ttls,
		Exclude: cfg.exclude, AllowNets: cfg.allowNets, AllowDomains: cfg.allowDomains, StaticAllow: cfg.staticAllow,
		Shared: cfg.shared, BlockPolicy: cfg.blockPolicy, Hooks: cfg.hooks, Reconcile: cfg.reconcile, StateDir: cfg.stateDir, StateStrict: cfg.stateStrict, AuditPath: cfg.auditPath, Audit: cfg.audit, History: cfg.history,
		Redis:    enforce.FleetConfig{URL: cfg.redisURL, Prefix: cfg.redisPrefix, Node: cfg.redisNode},
		PortsNot: cfg.portsNot, CriticalPorts: cfg.criticalPorts, Connlogs: connlogs,
		Log:      log,
		Observer: observer{events: cfg.eventsAddr != ""},
	}
}
