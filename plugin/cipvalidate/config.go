package cipvalidate

import (
	"errors"
	"fmt"
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
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/syslogin"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
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
	// defaultShared: dedicated attacker infrastructure rarely has more
	// than a handful of domains pointing at it, a small company's server a
	// few sites and their subdomains; a CDN or hosting front has hundreds
	// to thousands. Twenty leaves room for the second kind.
	defaultShared     = 20
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
	clientFrom *clientid.Trusted // client_from: the forwarders whose ECS names the client
	afterHours *tags.Schedule
	budget     *budget.Config // budget: nil, calls are not counted

	exclude      []netip.Prefix
	allowNets    []netip.Prefix
	allowDomains []string

	policy    risk.Policy
	cacheSize int
	ttls      verdicts.TTLs
	workers   int
	queueSize int
	cpu       float64 // validate_cpu: 0 the default, < 0 off
	shared    int     // domains that make an IP shared; 0: off

	enforceAll  bool
	action      Action
	sink4       netip.Addr
	sink6       netip.Addr
	monitor     bool
	pendingWait time.Duration
	failClosed  bool

	eventsAddr   string
	eventsAccess adminapi.Access // tokens and TLS

	blockPolicy blocks.Policy
	staticAllow []blocks.Allow
	hooks       []enforce.HookSpec
	reconcile   time.Duration // 0: enforce.DefaultReconcile
	stateDir    string
	history     time.Duration // 0: enforce.DefaultHistory
	stateStrict bool          // refuse to start on an empty or corrupt state file
	auditPath   string        // "" none, "stdout", or a file
	audit       audit.Spec    // the file's format, syslog destinations

	redisURL    string // "" = a single node
	redisPrefix string
	redisNode   string

	portsNot      []uint16 // connection records to other ports are validated
	criticalPorts []uint16 // connection records to these ports are validated first
	connlogs      []connlogSpec
}

// connlogSpec is a `connlog PATH|syslog URL FORMAT ...` line.
type connlogSpec struct {
	path   string
	format connlog.Format
	alerts int            // connlog.ParseAlerts: 0 off
	syslog *syslogin.Spec // nil: follow path
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
		shared:      defaultShared,
		enforceAll:  true,
		action:      ActionSinkhole,
		sink4:       netip.IPv4Unspecified(),
		sink6:       netip.IPv6Unspecified(),
		blockPolicy: blocks.Policy{TTL: blocks.DefaultTTL, Factor: 1, Max: blocks.DefaultTTL},
	}
}

// parse reads one cipvalidate block; see README.md for the syntax and
// options.go for the options. Argument counts and repetition are checked
// here, for every option, so that an option's parse function only reads
// its own arguments.
func parse(c *caddy.Controller) (*config, error) {
	cfg := defaultConfig()
	table := make(map[string]option)
	for _, opt := range cfg.options() {
		table[opt.name] = opt
	}
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
		given := map[string]bool{}
		for c.NextBlock() {
			name := c.Val()
			opt, ok := table[name]
			switch {
			case !ok:
				return nil, c.Errf("unknown property %q", name)
			case given[name] && !opt.repeatable:
				return nil, c.Errf("%s: given twice", name)
			}
			given[name] = true
			args := c.RemainingArgs()
			if len(args) < opt.min || (opt.max >= 0 && len(args) > opt.max) {
				return nil, c.Errf("%s: %s, got %d; syntax is %s", name, opt.counts(), len(args), opt.syntax())
			}
			if err := opt.parse(args); err != nil {
				return nil, c.Err(opt.explain(err))
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

// option is one line of a cipvalidate block. The README's Syntax section
// documents each as name + " " + usage; readme_test.go holds one to the
// other.
type option struct {
	name       string
	usage      []string // the forms of the arguments; only hook has several
	min, max   int      // argument counts; max < 0: no limit
	repeatable bool     // may be given more than once, adding to the earlier lines
	parse      func(args []string) error
}

// counts says how many arguments the option takes.
func (o option) counts() string {
	switch {
	case o.min == o.max:
		return fmt.Sprintf("takes %d argument(s)", o.min)
	case o.max < 0:
		return fmt.Sprintf("takes at least %d argument(s)", o.min)
	default:
		return fmt.Sprintf("takes %d to %d arguments", o.min, o.max)
	}
}

// syntax is the option's documented syntax, its forms separated by " | ".
func (o option) syntax() string {
	forms := make([]string, len(o.usage))
	for i, u := range o.usage {
		forms[i] = o.name + " " + u
	}
	return strings.Join(forms, " | ")
}

// explain turns an error of the option's parse function into the message
// users see: it names the option once (errors from other packages may
// already start with it) and, for arguments of the wrong shape, shows what
// would be valid.
func (o option) explain(err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, o.name+": ") {
		msg = o.name + ": " + msg
	}
	var shape syntaxError
	if errors.As(err, &shape) {
		msg += "; syntax is " + o.syntax()
	}
	return msg
}

// syntaxError is an argument list of the wrong shape: an unknown keyword, a
// keyword without its value. parse adds the option's syntax to it.
type syntaxError string

func (e syntaxError) Error() string { return string(e) }

// keyword is one `key value...` pair in the tail of an option line, such
// as `per_client N` or `escalate FACTOR MAX`.
type keyword struct {
	key    string
	values int // how many values follow the key
	set    func(values []string) error
}

// kv is a keyword with one value. Its errors start with the key: the value
// alone would not say which of the pairs is wrong.
func kv(key string, set func(string) error) keyword {
	return keyword{key: key, values: 1, set: func(v []string) error {
		if err := set(v[0]); err != nil {
			return fmt.Errorf("%s %w", key, err)
		}
		return nil
	}}
}

// keyValues applies the `key value...` pairs of args, in any order, each
// key at most once. what is the keys' name in messages: "unknown limit".
func keyValues(args []string, what string, keywords ...keyword) error {
	given := make(map[string]bool, len(keywords))
	for len(args) > 0 {
		i := slices.IndexFunc(keywords, func(k keyword) bool { return k.key == args[0] })
		if i < 0 {
			return syntaxError(fmt.Sprintf("unknown %s %q", what, args[0]))
		}
		k := keywords[i]
		switch {
		case given[k.key]:
			return syntaxError(k.key + " given twice")
		case len(args) <= k.values && k.values == 1:
			return syntaxError(k.key + " has no value")
		case len(args) <= k.values:
			return syntaxError(fmt.Sprintf("%s takes %d values, got %d", k.key, k.values, len(args)-1))
		}
		given[k.key] = true
		if err := k.set(args[1 : 1+k.values]); err != nil {
			return err
		}
		args = args[1+k.values:]
	}
	return nil
}

// parseHook reads the arguments of a hook line:
//
//	hook nftables FAMILY TABLE SET4 SET6 [create] [scoped]
//	hook exec PATH ARGS...
//	hook webhook URL [header NAME VALUE]... [header_file NAME PATH]... [template FILE] [secret_file PATH] [on ACTION...] [scope S]
//	hook slack|teams URL|url_file PATH [on ACTION...] [scope S] [digest D] [console_url URL]
func parseHook(args []string) (enforce.HookSpec, error) {
	if len(args) == 0 {
		return enforce.HookSpec{}, fmt.Errorf("missing kind: nftables, exec, webhook, slack or teams")
	}
	h := enforce.HookSpec{Kind: enforce.HookKind(args[0])}
	switch args[0] {
	case "nftables":
		return enforce.ParseNFTablesHook(args, log.Warningf)
	case "slack", "teams":
		return enforce.ParseChatHook(args, log.Warningf)
	case "exec":
		if len(args) < 2 {
			return h, fmt.Errorf("syntax is hook exec PATH [ARG ...]")
		}
		e, err := sink.NewExec(args[1], args[2:], sink.ExecOptions{Logf: log.Infof})
		if err != nil {
			return h, err
		}
		h.Exec = e
	case "webhook":
		return enforce.ParseWebhookHook(args)
	default:
		return h, fmt.Errorf("unknown kind %q: nftables, exec, webhook, slack or teams", args[0])
	}
	return h, nil
}
