package cipvalidate

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/events"
	"github.com/coredns-cip/coredns-cip/internal/fleet"
	"github.com/coredns-cip/coredns-cip/internal/nftset"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// Defaults of the Corefile options; the README lists them.
const (
	defaultAPITimeout = 10 * time.Second
	defaultWindow     = 5 * time.Minute
	defaultRetain     = 15 * time.Minute
	defaultWatch      = 30 * time.Minute
	defaultPerClient  = 256
	defaultTotal      = 400_000
	defaultCacheSize  = 10_000
	defaultWorkers    = 4
	defaultQueueSize  = 4096
	defaultRewriteTTL = 30 // seconds; short, so a lifted verdict takes effect soon
	maxPendingWait    = 5 * time.Second
)

// Action is what an answer pointing at suspicious infrastructure becomes.
type Action string

// The actions of the `action` option.
const (
	ActionSinkhole Action = "sinkhole"
	ActionRefuse   Action = "refuse"
	ActionNXDomain Action = "nxdomain"
	ActionNoData   Action = "nodata"
)

// config is a parsed cipvalidate block.
type config struct {
	zones []string

	apiKey  criminalip.APIKey
	apiURL  string
	rate    float64
	burst   int
	timeout time.Duration

	window    time.Duration
	retain    time.Duration
	perClient int
	total     int
	watch     time.Duration

	tagNets    []netip.Prefix
	afterHours *tags.Schedule

	exclude      []netip.Prefix
	allowNets    []netip.Prefix
	allowDomains []string

	policy    risk.Policy
	cacheSize int
	ttls      verdicts.TTLs
	workers   int
	queueSize int

	enforceAll  bool
	action      Action
	sink4       netip.Addr
	sink6       netip.Addr
	monitor     bool
	pendingWait time.Duration
	failClosed  bool

	eventsAddr  string
	eventsToken string

	blockPolicy blocks.Policy
	staticAllow []blocks.Allow
	hooks       []hookSpec
	stateDir    string
	auditPath   string // "" none, "stdout", or a file

	redisURL    string // "" = a single node
	redisPrefix string
	redisNode   string

	portsNot      []uint16 // connection records to other ports are validated
	criticalPorts []uint16 // connection records to these ports are validated first
	connlogs      []connlogSpec
}

// connlogSpec is a `connlog PATH FORMAT` line.
type connlogSpec struct {
	path   string
	format connlog.Format
}

// hookSpec is a parsed `hook` line; sinks are built when the plugin starts.
type hookSpec struct {
	kind    string // nftables, exec, webhook
	nft     nftset.Config
	netns   string // nftables: network namespace name, "" = ours
	exec    *sink.Exec
	webhook *sink.Webhook
	line    string // for messages
}

func defaultConfig() config {
	return config{
		apiURL:      criminalip.DefaultBaseURL,
		timeout:     defaultAPITimeout,
		window:      defaultWindow,
		retain:      defaultRetain,
		perClient:   defaultPerClient,
		total:       defaultTotal,
		watch:       defaultWatch,
		policy:      risk.DefaultPolicy(),
		cacheSize:   defaultCacheSize,
		ttls:        verdicts.TTLs{Suspicious: 24 * time.Hour, Clean: time.Hour, Error: time.Minute},
		workers:     defaultWorkers,
		queueSize:   defaultQueueSize,
		enforceAll:  true,
		action:      ActionSinkhole,
		sink4:       netip.IPv4Unspecified(),
		sink6:       netip.IPv6Unspecified(),
		blockPolicy: blocks.Policy{TTL: blocks.DefaultTTL, Factor: 1, Max: blocks.DefaultTTL},
	}
}

// parse reads one cipvalidate block; see README.md for the syntax.
func parse(c *caddy.Controller) (*config, error) {
	cfg := defaultConfig()
	seen := 0
	for c.Next() {
		if seen > 0 {
			return nil, plugin.ErrOnce
		}
		seen++
		zones, err := parseZones(c, c.RemainingArgs())
		if err != nil {
			return nil, err
		}
		cfg.zones = zones
		opts := map[string]bool{}
		for c.NextBlock() {
			opt := c.Val()
			if opts[opt] && opt != "tag" && opt != "exclude" && opt != "allow" && opt != "hook" && opt != "connlog" {
				return nil, c.Errf("%s: given twice", opt)
			}
			opts[opt] = true
			if err := parseOption(c, &cfg, opt, c.RemainingArgs()); err != nil {
				return nil, err
			}
		}
		if cfg.apiKey == "" {
			return nil, c.Err("api_key or api_key_file is required (the Criminal IP API key; {$CIP_API_KEY} reads it from the environment)")
		}
		cfg.blockPolicy.Monitor = cfg.monitor
		if cfg.auditPath == "" && cfg.stateDir != "" {
			cfg.auditPath = filepath.Join(cfg.stateDir, "audit.log")
		}
		if cfg.retain < cfg.window {
			return nil, c.Errf("retain %s is shorter than window %s: answers would be forgotten before an event can backtrack them", cfg.retain, cfg.window)
		}
	}
	return &cfg, nil
}

// parseOption applies one option line; errors name the option and, through
// c.Errf, the file and line.
func parseOption(c *caddy.Controller, cfg *config, opt string, args []string) error {
	fail := func(format string, a ...any) error {
		return c.Errf("%s: %s", opt, fmt.Sprintf(format, a...))
	}
	need := func(min, max int) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			switch {
			case min == max:
				return fail("takes %d argument(s), got %d", min, len(args))
			case max < 0:
				return fail("takes at least %d argument(s), got %d", min, len(args))
			default:
				return fail("takes %d to %d arguments, got %d", min, max, len(args))
			}
		}
		return nil
	}
	duration := func(s string) (time.Duration, error) {
		d, err := parseDuration(s)
		if err != nil || d <= 0 {
			return 0, fail("%q is not a positive duration such as 30s, 5m, 24h or 7d", s)
		}
		return d, nil
	}
	positive := func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, fail("%q is not a positive integer", s)
		}
		return n, nil
	}

	switch opt {
	case "api_key":
		if len(args) == 0 || strings.TrimSpace(args[0]) == "" {
			return fail("is empty (if it is {$CIP_API_KEY}, is that variable set?)")
		}
		if err := need(1, 1); err != nil {
			return err
		}
		cfg.apiKey = criminalip.APIKey(args[0])
	case "api_key_file":
		if err := need(1, 1); err != nil {
			return err
		}
		k, err := criminalip.LoadKeyFile(args[0])
		if err != nil {
			return fail("%v", err)
		}
		cfg.apiKey = k
	case "api_url":
		if err := need(1, 1); err != nil {
			return err
		}
		if _, err := criminalip.New(criminalip.Config{APIKey: "x", BaseURL: args[0]}); err != nil {
			return fail("%q must be http(s)://host[:port]", args[0])
		}
		cfg.apiURL = args[0]
	case "rate":
		if err := need(1, 2); err != nil {
			return err
		}
		r, err := strconv.ParseFloat(args[0], 64)
		if err != nil || r <= 0 {
			return fail("%q is not a positive number of requests per second", args[0])
		}
		cfg.rate = r
		cfg.burst = max(1, int(r))
		if len(args) == 2 {
			if cfg.burst, err = positive(args[1]); err != nil {
				return err
			}
		}
	case "timeout":
		if err := need(1, 1); err != nil {
			return err
		}
		d, err := duration(args[0])
		if err != nil {
			return err
		}
		cfg.timeout = d
	case "window", "watch":
		if err := need(1, 1); err != nil {
			return err
		}
		d, err := duration(args[0])
		if err != nil {
			return err
		}
		if opt == "window" {
			cfg.window = d
		} else {
			cfg.watch = d
		}
	case "retain":
		// retain DURATION [per_client N] [total N]
		if len(args) != 1 && len(args) != 3 && len(args) != 5 {
			return fail("syntax is retain DURATION [per_client N] [total N]")
		}
		d, err := duration(args[0])
		if err != nil {
			return err
		}
		cfg.retain = d
		for i := 1; i+1 < len(args); i += 2 {
			n, err := positive(args[i+1])
			if err != nil {
				return err
			}
			switch args[i] {
			case "per_client":
				cfg.perClient = n
			case "total":
				cfg.total = n
			default:
				return fail("unknown limit %q (per_client or total)", args[i])
			}
		}
	case "tag", "exclude":
		if err := need(1, -1); err != nil {
			return err
		}
		for _, a := range args {
			p, err := parsePrefix(a)
			if err != nil {
				return fail("%v", err)
			}
			if opt == "tag" {
				cfg.tagNets = append(cfg.tagNets, p)
			} else {
				cfg.exclude = append(cfg.exclude, p)
			}
		}
	case "after_hours":
		if err := need(1, 2); err != nil {
			return err
		}
		tz := ""
		if len(args) == 2 {
			tz = args[1]
		}
		s, err := tags.ParseSchedule(args[0], tz)
		if err != nil {
			return fail("%v", err)
		}
		cfg.afterHours = &s
	case "allow":
		if err := need(1, -1); err != nil {
			return err
		}
		for _, a := range args {
			if p, err := parsePrefix(a); err == nil {
				cfg.allowNets = append(cfg.allowNets, p)
				continue
			}
			if _, ok := dns.IsDomainName(a); !ok || strings.ContainsAny(a, "/:") {
				return fail("%q is neither an IP, a CIDR nor a domain name", a)
			}
			cfg.allowDomains = append(cfg.allowDomains, dns.CanonicalName(a))
		}
		for _, a := range args {
			entry, err := blocks.ParseAllow(a)
			if err != nil {
				return fail("%v", err)
			}
			cfg.staticAllow = append(cfg.staticAllow, entry)
		}
	case "factors":
		if err := need(1, -1); err != nil {
			return err
		}
		p, err := cfg.policy.WithFactors(args...)
		if err != nil {
			return fail("%v", err)
		}
		cfg.policy = p
	case "score_levels":
		if err := need(1, -1); err != nil {
			return err
		}
		p, err := cfg.policy.WithScoreLevels(args...)
		if err != nil {
			return fail("%v", err)
		}
		cfg.policy = p
	case "cache":
		// cache SIZE [suspicious TTL] [clean TTL] [error TTL]
		if len(args) == 0 || len(args)%2 != 1 || len(args) > 7 {
			return fail("syntax is cache SIZE [suspicious TTL] [clean TTL] [error TTL]")
		}
		n, err := positive(args[0])
		if err != nil {
			return err
		}
		cfg.cacheSize = n
		for i := 1; i+1 < len(args); i += 2 {
			d, err := duration(args[i+1])
			if err != nil {
				return err
			}
			switch args[i] {
			case "suspicious":
				cfg.ttls.Suspicious = d
			case "clean":
				cfg.ttls.Clean = d
			case "error":
				cfg.ttls.Error = d
			default:
				return fail("unknown outcome %q (suspicious, clean or error)", args[i])
			}
		}
	case "workers", "queue":
		if err := need(1, 1); err != nil {
			return err
		}
		n, err := positive(args[0])
		if err != nil {
			return err
		}
		if opt == "workers" {
			cfg.workers = n
		} else {
			cfg.queueSize = n
		}
	case "enforce":
		if err := need(1, 1); err != nil {
			return err
		}
		switch args[0] {
		case "all":
			cfg.enforceAll = true
		case "tagged":
			cfg.enforceAll = false
		default:
			return fail("%q is not all or tagged", args[0])
		}
	case "action":
		if err := need(1, 3); err != nil {
			return err
		}
		switch a := Action(args[0]); a {
		case ActionSinkhole:
			cfg.action = a
			for _, s := range args[1:] {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					return fail("sinkhole address %q is not an IP", s)
				}
				if ip.Is4() {
					cfg.sink4 = ip
				} else {
					cfg.sink6 = ip
				}
			}
		case ActionRefuse, ActionNXDomain, ActionNoData:
			if err := need(1, 1); err != nil {
				return err
			}
			cfg.action = a
		default:
			return fail("%q is not sinkhole, refuse, nxdomain or nodata", args[0])
		}
	case "mode":
		if err := need(1, 1); err != nil {
			return err
		}
		switch args[0] {
		case "enforce":
			cfg.monitor = false
		case "monitor":
			cfg.monitor = true
		default:
			return fail("%q is not enforce or monitor", args[0])
		}
	case "pending":
		if err := need(1, 2); err != nil {
			return err
		}
		switch {
		case args[0] == "allow" && len(args) == 1:
			cfg.pendingWait = 0
		case args[0] == "wait" && len(args) == 2:
			d, err := duration(args[1])
			if err != nil {
				return err
			}
			if d > maxPendingWait {
				return fail("wait %s is longer than %s; clients would time out", d, maxPendingWait)
			}
			cfg.pendingWait = d
		default:
			return fail("syntax is pending allow | wait DURATION")
		}
	case "fail":
		if err := need(1, 1); err != nil {
			return err
		}
		switch args[0] {
		case "open":
			cfg.failClosed = false
		case "closed":
			cfg.failClosed = true
		default:
			return fail("%q is not open or closed", args[0])
		}
	case "events":
		// events ADDRESS [token_file PATH]
		if len(args) != 1 && len(args) != 3 {
			return fail("syntax is events ADDRESS [token_file PATH]")
		}
		if _, _, err := net.SplitHostPort(args[0]); err != nil {
			return fail("%q is not HOST:PORT", args[0])
		}
		cfg.eventsAddr = args[0]
		if len(args) == 3 {
			if args[1] != "token_file" {
				return fail("unknown argument %q (token_file PATH)", args[1])
			}
			tok, err := events.LoadToken(args[2])
			if err != nil {
				return c.Errf("%v", err) // it says "events: token file ..."
			}
			cfg.eventsToken = tok
		}
	case "block_ttl":
		// block_ttl DURATION [escalate FACTOR MAX]
		if len(args) != 1 && len(args) != 4 {
			return fail("syntax is block_ttl DURATION [escalate FACTOR MAX]")
		}
		d, err := duration(args[0])
		if err != nil {
			return err
		}
		cfg.blockPolicy = blocks.Policy{TTL: d, Factor: 1, Max: d}
		if len(args) == 4 {
			if args[1] != "escalate" {
				return fail("unknown argument %q (escalate FACTOR MAX)", args[1])
			}
			f, err := strconv.ParseFloat(args[2], 64)
			if err != nil || f < 1 || f > 100 {
				return fail("escalation factor %q is not a number from 1 to 100", args[2])
			}
			m, err := duration(args[3])
			if err != nil {
				return err
			}
			if m < d {
				return fail("escalation maximum %s is shorter than the block time %s", m, d)
			}
			cfg.blockPolicy.Factor, cfg.blockPolicy.Max = f, m
		}
	case "hook":
		h, err := parseHook(args)
		if err != nil {
			return fail("%v", err)
		}
		h.line = strings.Join(args, " ")
		cfg.hooks = append(cfg.hooks, h)
	case "ports":
		// ports not PORT...
		if len(args) < 2 || args[0] != "not" {
			return fail("syntax is ports not PORT... (connection records to other ports are validated)")
		}
		ps, err := parsePorts(args[1:])
		if err != nil {
			return fail("%v", err)
		}
		cfg.portsNot = ps
	case "critical_ports":
		if err := need(1, -1); err != nil {
			return err
		}
		ps, err := parsePorts(args)
		if err != nil {
			return fail("%v", err)
		}
		cfg.criticalPorts = ps
	case "connlog":
		if err := need(2, 2); err != nil {
			return err
		}
		f, err := connlog.ParseFormat(args[1])
		if err != nil {
			return fail("%v", err)
		}
		path, err := filepath.Abs(args[0])
		if err != nil {
			return fail("%v", err)
		}
		cfg.connlogs = append(cfg.connlogs, connlogSpec{path: path, format: f})
	case "redis":
		// redis URL [prefix P] [node NAME]
		if len(args) != 1 && len(args) != 3 && len(args) != 5 {
			return fail("syntax is redis URL [prefix P] [node NAME]")
		}
		if _, err := fleet.ParseURL(args[0]); err != nil {
			return fail("%v", err)
		}
		cfg.redisURL = args[0]
		for i := 1; i+1 < len(args); i += 2 {
			switch args[i] {
			case "prefix":
				cfg.redisPrefix = args[i+1]
			case "node":
				cfg.redisNode = args[i+1]
			default:
				return fail("unknown argument %q (prefix P, node NAME)", args[i])
			}
		}
	case "state":
		if err := need(1, 1); err != nil {
			return err
		}
		if !filepath.IsAbs(args[0]) {
			abs, err := filepath.Abs(args[0])
			if err != nil {
				return fail("%v", err)
			}
			args[0] = abs
		}
		cfg.stateDir = args[0]
	case "audit":
		if err := need(1, 1); err != nil {
			return err
		}
		cfg.auditPath = args[0]
	default:
		return c.Errf("unknown property %q", opt)
	}
	return nil
}

// parseHook reads the arguments of a hook line:
//
//	hook nftables FAMILY TABLE SET4 SET6 [create] [scoped]
//	hook exec PATH ARGS...
//	hook webhook URL [secret_file PATH]
func parseHook(args []string) (hookSpec, error) {
	if len(args) == 0 {
		return hookSpec{}, fmt.Errorf("missing kind: nftables, exec or webhook")
	}
	h := hookSpec{kind: args[0]}
	switch args[0] {
	case "nftables":
		if len(args) < 5 {
			return h, fmt.Errorf("syntax is hook nftables FAMILY TABLE SET4 SET6 [create] [scoped] [netns NAME] (use - for no set)")
		}
		noneIfDash := func(s string) string {
			if s == "-" {
				return ""
			}
			return s
		}
		h.nft = nftset.Config{Family: args[1], Table: args[2], Set4: noneIfDash(args[3]), Set6: noneIfDash(args[4])}
		for i := 5; i < len(args); i++ {
			switch args[i] {
			case "create":
				h.nft.Create = true
			case "scoped":
				h.nft.Scoped = true
			case "netns":
				if i+1 >= len(args) || strings.ContainsAny(args[i+1], "/.") || args[i+1] == "" {
					return h, fmt.Errorf("nftables: netns needs a namespace NAME (as in /var/run/netns/NAME)")
				}
				h.netns = args[i+1]
				i++
			default:
				return h, fmt.Errorf("nftables: unknown flag %q (create, scoped or netns NAME)", args[i])
			}
		}
		if err := h.nft.Validate(); err != nil {
			return h, err
		}
	case "exec":
		if len(args) < 2 {
			return h, fmt.Errorf("syntax is hook exec PATH [ARG ...]")
		}
		e, err := sink.NewExec(args[1], args[2:], sink.ExecOptions{Logf: log.Infof})
		if err != nil {
			return h, err
		}
		h.exec = e
	case "webhook":
		if len(args) != 2 && len(args) != 4 {
			return h, fmt.Errorf("syntax is hook webhook URL [secret_file PATH]")
		}
		var secret []byte
		if len(args) == 4 {
			if args[2] != "secret_file" {
				return h, fmt.Errorf("webhook: unknown argument %q (secret_file PATH)", args[2])
			}
			var err error
			if secret, err = sink.LoadSecret(args[3]); err != nil {
				return h, err
			}
		}
		wh, err := sink.NewWebhook(args[1], secret, sink.WebhookOptions{})
		if err != nil {
			return h, err
		}
		h.webhook = wh
	default:
		return h, fmt.Errorf("unknown kind %q: nftables, exec or webhook", args[0])
	}
	return h, nil
}

// parsePorts reads port numbers 1-65535.
func parsePorts(args []string) ([]uint16, error) {
	out := make([]uint16, 0, len(args))
	for _, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q is not a port number (1-65535)", a)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// parseDuration is time.ParseDuration plus a leading number of days, as
// in 7d or 1d12h, since block times are counted in days.
func parseDuration(s string) (time.Duration, error) {
	days, rest, found := strings.Cut(s, "d")
	if !found {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 0 || n > 3650 {
		return 0, fmt.Errorf("bad day count in %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest == "" {
		return d, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil {
		return 0, err
	}
	return d + r, nil
}

// parsePrefix accepts a CIDR or a bare IP (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}
