package cipvalidate

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/budget"
	"github.com/coredns-cip/coredns-cip/internal/clientid"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/pace"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/syslogin"
	"github.com/coredns-cip/coredns-cip/internal/tags"

	"github.com/miekg/dns"
)

// Bounds of the numeric options; the README gives each with its option.
// They refuse what can only be a mistake (a rate of 1e-300 calls a second,
// a million workers) and keep every value where the code that uses it
// stays exact.
const (
	minRate = 0.001 // a call every 17 minutes; less is no rate at all
	// maxRate keeps the fleet limiter, which spaces calls in whole µs,
	// within 10% of the rate asked for.
	maxRate       = 100_000
	maxBurst      = 100_000
	maxWorkers    = 1024
	maxQueue      = 1_000_000   // per queue, of which there are two
	maxCacheSize  = 10_000_000  // verdicts
	maxPerClient  = 1_000_000   // window entries of one client
	maxTotal      = 100_000_000 // window entries: some 20 GiB resident (README)
	maxFactor     = 100         // escalation; a hundredfold takes 1h past 366d in two repeats
	maxAPITimeout = 5 * time.Minute
	maxDuration   = 366 * 24 * time.Hour // windows, TTLs and block times
	maxShared     = 1_000_000
)

// options is the table of the options of a cipvalidate block, in the
// README's order. Their parse functions write into cfg.
func (cfg *config) options() []option {
	return []option{
		{name: "api_key", usage: []string{"KEY"}, min: 1, max: 1, parse: cfg.parseAPIKey},
		{name: "api_key_file", usage: []string{"PATH"}, min: 1, max: 1, parse: cfg.parseAPIKeyFile},
		{name: "api_url", usage: []string{"URL"}, min: 1, max: 1, parse: cfg.parseAPIURL},
		{name: "rate", usage: []string{"N [BURST]"}, min: 1, max: 2, parse: cfg.parseRate},
		durationOpt("timeout", &cfg.timeout, maxAPITimeout),
		durationOpt("window", &cfg.window, maxDuration),
		{name: "retain", usage: []string{"DURATION [per_client N] [total N]"}, min: 1, max: 5, parse: cfg.parseRetain},
		durationOpt("watch", &cfg.watch, maxDuration),
		{name: "tag", usage: []string{"CIDR..."}, min: 1, max: -1, repeatable: true, parse: prefixesInto(&cfg.tagNets)},
		{name: "client_from", usage: []string{"ecs CIDR..."}, min: 2, max: -1, parse: func(a []string) (err error) { cfg.clientFrom, err = clientid.Parse(a); return err }},
		{name: "after_hours", usage: []string{"HH:MM-HH:MM [TZ]"}, min: 1, max: 2, parse: cfg.parseAfterHours},
		{name: "budget", usage: []string{"N per day|month [reset HH:MM [TZ]]"}, min: 3, max: 6, parse: func(a []string) (err error) { cfg.budget, err = budget.Parse(a); return err }},
		{name: "exclude", usage: []string{"CIDR..."}, min: 1, max: -1, repeatable: true, parse: prefixesInto(&cfg.exclude)},
		{name: "allow", usage: []string{"IP|CIDR|DOMAIN... [force]"}, min: 1, max: -1, repeatable: true, parse: cfg.parseAllow},
		{name: "factors", usage: []string{"FACTOR..."}, min: 1, max: -1, parse: policyWith(&cfg.policy, risk.Policy.WithFactors)},
		{name: "score_levels", usage: []string{"LEVEL..."}, min: 1, max: -1, parse: policyWith(&cfg.policy, risk.Policy.WithScoreLevels)},
		{name: "scope", usage: []string{"everyone|tagged|monitor FACTOR..."}, min: 2, max: -1, repeatable: true, parse: cfg.parseScope},
		{name: "shared", usage: []string{"N|off"}, min: 1, max: 1, parse: cfg.parseShared},
		{name: "cache", usage: []string{"SIZE [suspicious TTL] [clean TTL] [error TTL]"}, min: 1, max: 7, parse: cfg.parseCache},
		intOpt("workers", &cfg.workers, maxWorkers),
		intOpt("queue", &cfg.queueSize, maxQueue),
		{name: "validate_cpu", usage: []string{"FRACTION|off"}, min: 1, max: 1, parse: cfg.parseValidateCPU},
		choiceOpt("enforce", &cfg.enforceAll, "all|tagged", true, false),
		{name: "action", usage: []string{"sinkhole [IPV4] [IPV6] | refuse | nxdomain | nodata"}, min: 1, max: 3, parse: cfg.parseAction},
		choiceOpt("mode", &cfg.monitor, "enforce|monitor", false, true),
		{name: "pending", usage: []string{"allow | wait DURATION"}, min: 1, max: 2, parse: cfg.parsePending},
		choiceOpt("fail", &cfg.failClosed, "open|closed", false, true),
		{name: "events", usage: []string{"ADDRESS [tokens PATH] [token_file PATH] [tls CERT KEY [client_ca CA]]"}, min: 1, max: 10, parse: cfg.parseEvents},
		{name: "block_ttl", usage: []string{"DURATION [escalate FACTOR MAX]"}, min: 1, max: 4, parse: cfg.parseBlockTTL},
		{name: "hook", usage: []string{
			"nftables FAMILY TABLE SET4 SET6 [create] [scoped] [netns NAME]",
			"exec PATH ARGS...",
			"webhook URL [header NAME VALUE]... [header_file NAME PATH]... [template FILE] [secret_file PATH] [on block|unblock|allow|notice...] [scope everyone|tagged]",
			"slack|teams URL|url_file PATH [on block|unblock|allow|notice...] [scope everyone|tagged] [digest DURATION] [console_url URL]",
		}, min: 0, max: -1, repeatable: true, parse: cfg.parseHookLine}, // parseHook says what a bare hook lacks
		{name: "reconcile", usage: []string{"DURATION"}, min: 1, max: 1, parse: func(a []string) (err error) { cfg.reconcile, err = enforce.ParseReconcile(a[0]); return err }},
		{name: "state", usage: []string{"DIR [strict]"}, min: 1, max: 2, parse: func(args []string) error { return state.ParseOption(args, &cfg.stateDir, &cfg.stateStrict) }},
		durationOpt("history", &cfg.history, enforce.MaxHistory),
		{name: "audit", usage: []string{"PATH|stdout [format json|ecs|cef]", "syslog udp|tcp|tls://HOST:PORT [format json|ecs|cef] [ca FILE] [app NAME]"}, min: 1, max: 8, repeatable: true, parse: func(a []string) error {
			err := audit.ParseOption(a, &cfg.audit)
			cfg.auditPath = cfg.audit.Path
			return err
		}},
		{name: "connlog", usage: []string{"PATH FORMAT [alerts [SEVERITY]]", "syslog udp://ADDR|tcp://ADDR FORMAT [allow CIDR...] [alerts [SEVERITY]]"}, min: 2, max: -1, repeatable: true, parse: cfg.parseConnlog},
		{name: "ports", usage: []string{"not PORT..."}, min: 2, max: -1, parse: cfg.parsePortsNot},
		{name: "critical_ports", usage: []string{"PORT..."}, min: 1, max: -1, parse: portsInto(&cfg.criticalPorts)},
		{name: "redis", usage: []string{"URL [prefix P] [node NAME]"}, min: 1, max: 5, parse: cfg.parseRedis},
	}
}

// durationOpt is an option of one duration, from 1ns to max.
func durationOpt(name string, dst *time.Duration, max time.Duration) option {
	return option{name: name, usage: []string{"DURATION"}, min: 1, max: 1, parse: func(args []string) error {
		return durationInto(dst, max)(args[0])
	}}
}

// intOpt is an option of one whole number, from 1 to max.
func intOpt(name string, dst *int, max int) option {
	return option{name: name, usage: []string{"N"}, min: 1, max: 1, parse: func(args []string) error {
		return intInto(dst, 1, max)(args[0])
	}}
}

// choiceOpt is an option of one word out of words ("all|tagged"); the i-th
// word sets *dst to values[i].
func choiceOpt[T any](name string, dst *T, words string, values ...T) option {
	choices := strings.Split(words, "|")
	return option{name: name, usage: []string{words}, min: 1, max: 1, parse: func(args []string) error {
		i := slices.Index(choices, args[0])
		if i < 0 {
			return fmt.Errorf("%q is not %s or %s", args[0], strings.Join(choices[:len(choices)-1], ", "), choices[len(choices)-1])
		}
		*dst = values[i]
		return nil
	}}
}

// durationInto and intInto are setters for options and for the values of
// keywords (kv).
func durationInto(dst *time.Duration, max time.Duration) func(string) error {
	return func(s string) (err error) {
		*dst, err = optval.DurationUpTo(s, max)
		return err
	}
}

func intInto(dst *int, min, max int) func(string) error {
	return func(s string) (err error) {
		*dst, err = optval.Int(s, min, max)
		return err
	}
}

// prefixesInto adds CIDRs (or bare IPs) to *dst.
func prefixesInto(dst *[]netip.Prefix) func([]string) error {
	return func(args []string) error {
		for _, a := range args {
			p, err := optval.Prefix(a)
			if err != nil {
				return err
			}
			*dst = append(*dst, p)
		}
		return nil
	}
}

// portsInto sets *dst to the port numbers given.
func portsInto(dst *[]uint16) func([]string) error {
	return func(args []string) (err error) {
		*dst, err = optval.Ports(args)
		return err
	}
}

// policyWith applies a risk.Policy builder, whose errors list the valid
// choices, to *dst.
func policyWith(dst *risk.Policy, with func(risk.Policy, ...string) (risk.Policy, error)) func([]string) error {
	return func(args []string) (err error) {
		*dst, err = with(*dst, args...)
		return err
	}
}

// parseScope reads `scope everyone|tagged|monitor FACTOR...`: the named
// factors (groups, codes or all) reach that far.
func (cfg *config) parseScope(args []string) error {
	s, err := risk.ParseScope(args[0])
	if err != nil {
		return err
	}
	cfg.policy, err = cfg.policy.WithScope(s, args[1:]...)
	return err
}

// parseValidateCPU reads `validate_cpu FRACTION|off` (pace.ParseFraction).
func (cfg *config) parseValidateCPU(args []string) (err error) {
	if args[0] == "off" {
		cfg.cpu = -1
		return nil
	}
	cfg.cpu, err = pace.ParseFraction(args[0])
	return err
}

// parseShared reads `shared N|off`.
func (cfg *config) parseShared(args []string) error {
	if args[0] == "off" {
		cfg.shared = 0
		return nil
	}
	return intInto(&cfg.shared, 2, maxShared)(args[0])
}

func (cfg *config) parseAPIKey(args []string) error {
	if strings.TrimSpace(args[0]) == "" {
		return fmt.Errorf("is empty (if it is {$CIP_API_KEY}, is that variable set?)")
	}
	cfg.apiKey = criminalip.APIKey(args[0])
	return nil
}

func (cfg *config) parseAPIKeyFile(args []string) (err error) {
	cfg.apiKey, err = criminalip.LoadKeyFile(args[0])
	return err
}

func (cfg *config) parseAPIURL(args []string) error {
	// The client is the judge of a usable base URL; a throwaway one asks it.
	if _, err := criminalip.New(criminalip.Config{APIKey: "x", BaseURL: args[0]}); err != nil {
		return fmt.Errorf("%q must be http(s)://host[:port]", args[0])
	}
	cfg.apiURL = args[0]
	return nil
}

// parseRate reads `rate N [BURST]`; the burst defaults to N, at least 1.
func (cfg *config) parseRate(args []string) error {
	r, err := optval.Number(args[0], minRate, maxRate)
	if err != nil {
		return fmt.Errorf("%w requests per second", err)
	}
	cfg.rate, cfg.burst = r, max(1, int(r))
	if len(args) == 2 {
		if cfg.burst, err = optval.Int(args[1], 1, maxBurst); err != nil {
			return fmt.Errorf("burst %w", err)
		}
	}
	return nil
}

func (cfg *config) parseRetain(args []string) error {
	if err := durationInto(&cfg.retain, maxDuration)(args[0]); err != nil {
		return err
	}
	return keyValues(args[1:], "limit",
		kv("per_client", intInto(&cfg.perClient, 1, maxPerClient)),
		kv("total", intInto(&cfg.total, 1, maxTotal)))
}

func (cfg *config) parseAfterHours(args []string) error {
	tz := ""
	if len(args) == 2 {
		tz = args[1]
	}
	s, err := tags.ParseSchedule(args[0], tz)
	if err != nil {
		return err
	}
	cfg.afterHours = &s
	return nil
}

// parseAllow fills two lists from one line: the nets and domains the
// validator skips, and the static allowlist entries the block engine keeps.
// An entry broader than blocks.Allow.TooBroad allows needs `force` at the
// end of its line.
func (cfg *config) parseAllow(args []string) error {
	force := len(args) > 1 && args[len(args)-1] == "force"
	if force {
		args = args[:len(args)-1]
	}
	for _, a := range args {
		if p, err := optval.Prefix(a); err == nil {
			cfg.allowNets = append(cfg.allowNets, p)
			continue
		}
		if _, ok := dns.IsDomainName(a); !ok || strings.ContainsAny(a, "/:") {
			return fmt.Errorf("%q is neither an IP, a CIDR nor a domain name", a)
		}
		cfg.allowDomains = append(cfg.allowDomains, dns.CanonicalName(a))
	}
	for _, a := range args {
		entry, err := blocks.ParseAllow(a)
		if err != nil {
			return err
		}
		if err := entry.TooBroad(); err != nil && !force {
			return fmt.Errorf("%w; end the line with force to allow it anyway", err)
		}
		cfg.staticAllow = append(cfg.staticAllow, entry)
	}
	return nil
}

func (cfg *config) parseCache(args []string) error {
	if err := intInto(&cfg.cacheSize, 1, maxCacheSize)(args[0]); err != nil {
		return err
	}
	return keyValues(args[1:], "outcome",
		kv("suspicious", durationInto(&cfg.ttls.Suspicious, maxDuration)),
		kv("clean", durationInto(&cfg.ttls.Clean, maxDuration)),
		kv("error", durationInto(&cfg.ttls.Error, maxDuration)))
}

func (cfg *config) parseAction(args []string) error {
	switch a := Action(args[0]); a {
	case ActionSinkhole:
		cfg.action = a
		for _, s := range args[1:] {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("sinkhole address %q is not an IP", s)
			}
			if ip.Is4() {
				cfg.sink4 = ip
			} else {
				cfg.sink6 = ip
			}
		}
	case ActionRefuse, ActionNXDomain, ActionNoData:
		if len(args) > 1 {
			return syntaxError(fmt.Sprintf("takes 1 argument(s) with %s, got %d", a, len(args)))
		}
		cfg.action = a
	default:
		return fmt.Errorf("%q is not sinkhole, refuse, nxdomain or nodata", args[0])
	}
	return nil
}

func (cfg *config) parsePending(args []string) error {
	switch {
	case args[0] == "allow" && len(args) == 1:
		cfg.pendingWait = 0
	case args[0] == "wait" && len(args) == 2:
		d, err := optval.DurationUpTo(args[1], maxDuration)
		if err != nil {
			return err
		}
		if d > maxPendingWait {
			return fmt.Errorf("wait %s is longer than %s; clients would time out", d, maxPendingWait)
		}
		cfg.pendingWait = d
	default:
		return syntaxError(fmt.Sprintf("cannot read %q", strings.Join(args, " ")))
	}
	return nil
}

func (cfg *config) parseEvents(args []string) error {
	if _, _, err := net.SplitHostPort(args[0]); err != nil {
		return fmt.Errorf("%q is not HOST:PORT", args[0])
	}
	cfg.eventsAddr = args[0]
	var f adminapi.AccessFiles
	path := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	err := keyValues(args[1:], "argument", kv("token_file", path(&f.TokenFile)), kv("tokens", path(&f.Tokens)),
		keyword{key: "tls", values: 2, set: func(v []string) error { f.Cert, f.Key = v[0], v[1]; return nil }},
		kv("client_ca", path(&f.ClientCA)))
	if err == nil { // Load's errors start with "events: ", which explain keeps
		cfg.eventsAccess, err = f.Load()
	}
	return err
}

// parseBlockTTL reads `block_ttl DURATION [escalate FACTOR MAX]`.
func (cfg *config) parseBlockTTL(args []string) error {
	d, err := optval.DurationUpTo(args[0], maxDuration)
	if err != nil {
		return err
	}
	cfg.blockPolicy = blocks.Policy{TTL: d, Factor: 1, Max: d}
	return keyValues(args[1:], "argument", keyword{key: "escalate", values: 2, set: func(v []string) error {
		f, err := optval.Number(v[0], 1, maxFactor)
		if err != nil {
			return fmt.Errorf("escalation factor %w", err)
		}
		m, err := optval.DurationUpTo(v[1], maxDuration)
		if err != nil {
			return fmt.Errorf("escalation maximum %w", err)
		}
		if m < d {
			return fmt.Errorf("escalation maximum %s is shorter than the block time %s", m, d)
		}
		cfg.blockPolicy.Factor, cfg.blockPolicy.Max = f, m
		return nil
	}})
}

func (cfg *config) parseHookLine(args []string) error {
	h, err := parseHook(args)
	if err != nil {
		return err
	}
	if h.Line == "" { // a webhook's line hides its header values
		h.Line = strings.Join(args, " ")
	}
	cfg.hooks = append(cfg.hooks, h)
	return nil
}

func (cfg *config) parseConnlog(args []string) (err error) {
	l := connlogSpec{}
	format, rest := args[1], args[2:]
	if args[0] == "syslog" {
		l.syslog = new(syslogin.Spec)
		if *l.syslog, format, rest, err = syslogin.ParseSpec(args[1:]); err != nil {
			return err
		}
		l.path = "syslog " + l.syslog.String()
	} else if l.path, err = filepath.Abs(args[0]); err != nil {
		return err
	}
	if l.format, err = connlog.ParseFormat(format); err != nil {
		return err
	}
	if l.alerts, err = connlog.ParseAlerts(l.format, rest); err != nil {
		return err
	}
	cfg.connlogs = append(cfg.connlogs, l)
	return nil
}

// parsePortsNot reads `ports not PORT...`: the "not" is there so that the
// line reads as what it does, validating connections to the other ports.
func (cfg *config) parsePortsNot(args []string) error {
	if args[0] != "not" {
		return syntaxError(fmt.Sprintf("the first argument is %q, not the word not", args[0]))
	}
	return portsInto(&cfg.portsNot)(args[1:])
}

func (cfg *config) parseRedis(args []string) error {
	if _, err := fleet.ParseURL(args[0]); err != nil {
		return err
	}
	cfg.redisURL = args[0]
	return keyValues(args[1:], "argument",
		kv("prefix", func(s string) error { cfg.redisPrefix = s; return nil }),
		kv("node", func(s string) error { cfg.redisNode = s; return nil }))
}
