package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/state"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
)

const backtrackUsage = `Usage: coredns-cip backtrack --log FILE --format FORMAT --client IP --at TIME [options]

The original pipeline, offline: take the connections of one host from an
exported firewall log in the window before a security event, keep the
externally routable destinations, validate each once with the Criminal IP
API and the multi-factor rules (the destination port is a hint: 22 counts as
SSH exposure), print one verdict per destination and a summary, and decide
blocks for the suspicious ones with the decision engine of a Corefile's
cipvalidate block (unless --dry-run): its allowlist, block_ttl, scope, hooks,
state directory and audit log, so the blocks are audited, listed by
"coredns-cip blocks list" and the EDL once the server runs on that state, and
lifted like any other. The Corefile needs "state" for that, and the server
must not be running on it (its state directory is locked meanwhile).

FORMAT: json (src/dst/dport or ECS fields), netfilter (kernel LOG lines),
fortigate (key=value traffic logs), paloalto (PAN-OS traffic CSV),
suricata (EVE JSON flow and alert records), zeek (conn.log, TSV or JSON).

Selection, as the plugin's selective validation:
  --ports-not 80,443        ignore connections to these ports (non-web traffic only)
  --critical-ports 22,3389  validate these first and mark them
  --after-hours 20:00-07:00[,TZ]  only connections made in these hours

With --corefile, the API key and URL, rate, factors, score levels, exclude and
allow ranges, block_ttl, ports and hooks come from its cipvalidate block;
flags override the key and URL. Progress goes to stderr.

With --api URL, a running server decides instead: the selected connection
records are posted to its admin API (/v1/connections), then an event of
type "backtrack" for the client, --at and --window (/v1/events; --watch
also tags the client for that long), and the command waits up to
--deadline for every destination the server found to reach a final state.
The table is the server's findings: its verdicts, scopes and blocks, made
with its Corefile, hooks, state and audit log. No API key is needed; the
token comes from --token-file, else $CIP_TOKEN_FILE or $CIP_TOKEN. For an
https:// URL, --ca (else $CIP_CA) is the CA to trust and --cert and --key
the client certificate, as for "coredns-cip blocks".
--api excludes --corefile and --dry-run.

Exit status: 0 nothing suspicious, 1 suspicious destinations found, 2 error.

Options:
`

// destination is one unique destination of the client in the window.
type destination struct {
	IP       netip.Addr     `json:"ip"`
	Ports    []uint16       `json:"ports"`
	First    time.Time      `json:"first_seen"`
	Last     time.Time      `json:"last_seen"`
	Count    int            `json:"connections"`
	Critical bool           `json:"critical,omitempty"`
	Verdict  string         `json:"verdict"` // clean, suspicious, error
	Reasons  []risk.Reason  `json:"reasons,omitempty"`
	Score    string         `json:"score,omitempty"`
	Error    string         `json:"error,omitempty"`
	Decision string         `json:"decision,omitempty"`
	Scope    string         `json:"scope,omitempty"` // with --api: the server's scope of a suspicious finding
	portSet  map[uint16]int // port -> connections
}

type backtrackSummary struct {
	Lines          int     `json:"lines"`
	Parsed         int     `json:"parsed"`
	Broken         int     `json:"broken"`
	Skipped        int     `json:"skipped"` // headers, comments, other log types
	Matched        int     `json:"matched"` // the client's connections in the window
	NotPublic      int     `json:"not_public"`
	PortsNot       int     `json:"ports_not"`
	OutsideHours   int     `json:"outside_hours"`
	Excluded       int     `json:"excluded"`
	Destinations   int     `json:"destinations"`
	Suspicious     int     `json:"suspicious"`
	Clean          int     `json:"clean"`
	Errors         int     `json:"errors"`
	APICalls       int     `json:"api_calls"`
	Pushed         int     `json:"blocks_pushed"`
	ServerSkipped  int     `json:"server_skipped,omitempty"` // with --api: not validated by the server (excluded or allowlisted there)
	ParseSeconds   float64 `json:"parse_seconds"`
	LinesPerSecond float64 `json:"lines_per_second"`
}

// backtrackOpts is what backtrack's flags ask for.
type backtrackOpts struct {
	logPath  string // - for stdin
	format   connlog.Format
	client   netip.Addr
	at       time.Time
	window   time.Duration
	loc      *time.Location
	sched    *tags.Schedule
	dryRun   bool
	asJSON   bool
	corefile string
	workers  int
	// server is the admin API of a running server that decides (--api),
	// or nil to decide here; watch and deadline are its event's watch and
	// how long to wait for its findings.
	server   *eventAPIClient
	watch    time.Duration
	deadline time.Duration
	// rules are the Corefile's, else the defaults, with the flags applied.
	rules enforce.Config
}

// backtrackResult is what a backtrack found, for renderBacktrack.
type backtrackResult struct {
	client        netip.Addr
	at            time.Time
	window        time.Duration
	list          []*destination // suspicious first, then errors, then clean
	sum           backtrackSummary
	note          string // what happened to the blocks; "" when nothing was to push
	criticalPorts bool   // --critical-ports or the Corefile gave some
	server        string // with --api: the server that decided
}

// backtrack runs the backtrack sub-command with args (those after
// "backtrack") and returns its exit status.
func backtrack(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := parseBacktrackFlags(args, stderr, getenv)
	if err != nil {
		return fail(stderr, err)
	}
	res, err := runBacktrack(ctx, opts, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	if err := renderBacktrack(stdout, res, opts.asJSON); err != nil {
		return fail(stderr, err)
	}
	if res.sum.Suspicious > 0 {
		return exitSuspicious
	}
	return exitClean
}

// parseBacktrackFlags checks the flags and reads the rules: the Corefile's
// when --corefile is given, overridden by the flags.
func parseBacktrackFlags(args []string, stderr io.Writer, getenv func(string) string) (backtrackOpts, error) {
	fs := newFlagSet("backtrack", backtrackUsage, stderr)
	logPath := fs.String("log", "", "exported connection log `FILE` (- for stdin)")
	formatFlag := fs.String("format", "", "log `FORMAT`: json, netfilter, fortigate, paloalto, suricata, zeek")
	clientFlag := fs.String("client", "", "the `IP` of the host the event is about")
	atFlag := fs.String("at", "", "event `TIME` (RFC 3339, or 2006-01-02 15:04:05 in --tz); default now")
	window := durationFlag(fs, "window", 5*time.Minute, "how far before --at to look: a `duration` such as 5m or 1d")
	portsNot := fs.String("ports-not", "", "comma-separated `ports` whose connections are ignored (e.g. 80,443)")
	critical := fs.String("critical-ports", "", "comma-separated `ports` validated first and marked")
	afterHours := fs.String("after-hours", "", "only connections in `HH:MM-HH:MM[,TZ]`")
	tz := fs.String("tz", "", "time `zone` of log times without one (default local)")
	dryRun := fs.Bool("dry-run", false, "validate and report, push nothing")
	pretty := fs.Bool("pretty", false, "a table (the default when neither --pretty nor --json is given)")
	asJSON := fs.Bool("json", false, "one JSON object with the destinations and the summary")
	corefile := fs.String("corefile", "", "Corefile whose cipvalidate block gives the API, rules and hooks")
	keyFile := fs.String("keyfile", "", "API key `file`, JSON {\"api_key\": \"...\"}")
	apiURL := fs.String("api-url", "", "Criminal IP API base `URL`")
	workers := fs.Int("workers", 4, "API calls in parallel (the rate limit still applies)")
	rateFlag := fs.Float64("rate", 0, "API calls per second (default: the Corefile's rate, else 2; -1 for no limit)")
	server := fs.String("api", "", "admin API base `URL` of a running server that decides instead")
	files := addAPIFlags(fs, "with --api: ")
	watch := durationFlag(fs, "watch", 0, "with --api: how long the event keeps the client tagged, a `duration` such as 30m or 7d (0: backtrack only)")
	deadline := durationFlag(fs, "deadline", 2*time.Minute, "with --api: how long (a `duration`) to wait for the server's findings")
	if err := parseFlags(fs, args); err != nil {
		return backtrackOpts{}, err
	}
	if fs.NArg() > 0 {
		return backtrackOpts{}, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	switch {
	case *logPath == "":
		return backtrackOpts{}, errors.New("--log is required")
	case *formatFlag == "":
		return backtrackOpts{}, errors.New("--format is required (json, netfilter, fortigate, paloalto)")
	case *clientFlag == "":
		return backtrackOpts{}, errors.New("--client is required")
	case *window <= 0:
		return backtrackOpts{}, errors.New("--window must be positive")
	case *pretty && *asJSON:
		return backtrackOpts{}, errors.New("--pretty and --json exclude each other")
	case *workers < 1:
		return backtrackOpts{}, errors.New("--workers must be at least 1")
	case *server != "" && *corefile != "":
		return backtrackOpts{}, errors.New("--api and --corefile exclude each other: with --api the server's Corefile decides")
	case *server != "" && *dryRun:
		return backtrackOpts{}, errors.New("--api and --dry-run exclude each other: the server decides and enforces; leave out --api to validate here without pushing")
	case *watch < 0:
		return backtrackOpts{}, errors.New("--watch must not be negative")
	case *deadline <= 0:
		return backtrackOpts{}, errors.New("--deadline must be positive")
	}
	opts := backtrackOpts{logPath: *logPath, window: *window, dryRun: *dryRun, asJSON: *asJSON, corefile: *corefile, workers: *workers,
		watch: *watch, deadline: *deadline}
	if err := opts.parseEvent(*formatFlag, *clientFlag, *tz, *atFlag, *afterHours); err != nil {
		return backtrackOpts{}, err
	}
	var err error
	if *server != "" {
		if opts.server, err = newEventAPIClient(*server, files.files(), getenv); err != nil {
			return backtrackOpts{}, err
		}
	}
	if opts.rules, err = backtrackRules(*corefile); err != nil {
		return backtrackOpts{}, fmt.Errorf("--corefile: %v", err)
	}
	if *portsNot != "" {
		if opts.rules.PortsNot, err = portList(*portsNot); err != nil {
			return backtrackOpts{}, fmt.Errorf("--ports-not: %v", err)
		}
	}
	if *critical != "" {
		if opts.rules.CriticalPorts, err = portList(*critical); err != nil {
			return backtrackOpts{}, fmt.Errorf("--critical-ports: %v", err)
		}
	}
	if *apiURL != "" {
		opts.rules.APIURL = *apiURL
	}
	if *rateFlag != 0 {
		opts.rules.Rate, opts.rules.Burst = *rateFlag, max(1, int(*rateFlag))
	}
	if opts.server == nil && (*keyFile != "" || opts.rules.APIKey == "") {
		if opts.rules.APIKey, err = resolveKey(*keyFile, getenv); err != nil {
			return backtrackOpts{}, err
		}
	}
	return opts, nil
}

// parseEvent reads the flags that say which log lines are the event's:
// --format, --client, --tz, --at and --after-hours.
func (o *backtrackOpts) parseEvent(format, client, tz, at, afterHours string) error {
	var err error
	if o.format, err = connlog.ParseFormat(format); err != nil {
		return fmt.Errorf("--format: %v", err)
	}
	addr, err := netip.ParseAddr(client)
	if err != nil {
		return fmt.Errorf("--client: %q is not an IP address", client)
	}
	o.client = addr.Unmap()
	o.loc = time.Local
	if tz != "" {
		if o.loc, err = time.LoadLocation(tz); err != nil {
			return fmt.Errorf("--tz: %v", err)
		}
	}
	o.at = time.Now()
	if at != "" {
		if o.at, err = parseEventTime(at, o.loc); err != nil {
			return fmt.Errorf("--at: %v", err)
		}
	}
	if afterHours != "" {
		span, zone, _ := strings.Cut(afterHours, ",")
		s, err := tags.ParseSchedule(span, zone)
		if err != nil {
			return fmt.Errorf("--after-hours: %v", err)
		}
		o.sched = &s
	}
	return nil
}

// backtrackRules returns the rules of the Corefile's cipvalidate block, or
// the defaults without a Corefile.
func backtrackRules(corefile string) (enforce.Config, error) {
	if corefile == "" {
		return enforce.Config{Policy: risk.DefaultPolicy(), APIURL: criminalip.DefaultBaseURL, BlockPolicy: blocks.Policy{TTL: blocks.DefaultTTL}}, nil
	}
	return cipvalidate.LoadConfig(corefile)
}

// runBacktrack parses and selects, validates each destination once, and
// pushes blocks unless asked not to. Progress goes to progress.
func runBacktrack(ctx context.Context, opts backtrackOpts, progress io.Writer) (backtrackResult, error) {
	if opts.server != nil {
		return runBacktrackServer(ctx, opts, progress)
	}
	off := opts.rules
	var calls atomic.Int64
	apiClient, err := criminalip.New(criminalip.Config{APIKey: off.APIKey, BaseURL: off.APIURL, Rate: off.Rate, Burst: off.Burst, Timeout: off.Timeout,
		Observe: func(criminalip.Attempt) { calls.Add(1) }})
	if err != nil {
		return backtrackResult{}, err
	}
	defer apiClient.Close()

	// 1. Parse and select.
	sum, list, _, err := scanLog(opts, progress)
	if err != nil {
		return backtrackResult{}, err
	}
	// 2. Validate each destination once, critical ports first.
	validateAll(ctx, apiClient, off.Policy, list, opts.workers, progress)
	for _, d := range list {
		switch d.Verdict {
		case "suspicious":
			sum.Suspicious++
		case "clean":
			sum.Clean++
		default:
			sum.Errors++
		}
	}
	sum.APICalls = int(calls.Load())
	// Suspicious first, then errors, then clean; critical ports first.
	rank := map[string]int{"suspicious": 0, "error": 1, "clean": 2}
	slices.SortStableFunc(list, func(a, b *destination) int { return rank[a.Verdict] - rank[b.Verdict] })

	// 3. Push blocks, unless asked not to.
	res := backtrackResult{client: opts.client, at: opts.at, window: opts.window, list: list, criticalPorts: len(off.CriticalPorts) > 0}
	switch {
	case opts.dryRun:
		res.note = "dry run: nothing pushed"
	case opts.corefile == "":
		res.note = "no --corefile: no hooks to push blocks to"
	case off.StateDir == "" && sum.Suspicious > 0:
		res.note = "the Corefile's cipvalidate block has no state directory: nothing pushed (a block must be recorded to be audited, listed and lifted)"
	case sum.Suspicious > 0:
		n, hooks, err := pushBlocks(ctx, off, opts.client, list, progress)
		if err != nil {
			return backtrackResult{}, fmt.Errorf("pushing blocks: %v", err)
		}
		sum.Pushed = n
		res.note = fmt.Sprintf("%d block(s) pushed through %s", n, strings.Join(hooks, "; "))
	}
	res.sum = sum
	return res, nil
}

// scanLog reads the log and returns the client's unique destinations in the
// window, critical ports first, then by first connection, and with --api
// the selected connection records themselves.
func scanLog(opts backtrackOpts, progress io.Writer) (backtrackSummary, []*destination, []adminapi.Connection, error) {
	in := io.Reader(os.Stdin)
	if opts.logPath != "-" {
		f, err := os.Open(opts.logPath)
		if err != nil {
			return backtrackSummary{}, nil, nil, fmt.Errorf("--log: %v", err)
		}
		defer f.Close()
		in = f
	}
	parser, err := connlog.NewParser(opts.format, connlog.Options{Location: opts.loc, Now: func() time.Time { return opts.at }})
	if err != nil {
		return backtrackSummary{}, nil, nil, err
	}
	off := opts.rules
	sel := selection{client: opts.client, from: opts.at.Add(-opts.window), to: opts.at, off: off, sched: opts.sched, allow: blocks.New(blocks.Policy{}, off.StaticAllow),
		keep: opts.server != nil}
	start := time.Now()
	sum, dests, samples, err := sel.scan(in, parser, progress)
	if err != nil {
		return backtrackSummary{}, nil, nil, fmt.Errorf("--log: %v", err)
	}
	sum.ParseSeconds = time.Since(start).Seconds()
	if sum.ParseSeconds > 0 {
		sum.LinesPerSecond = float64(sum.Lines) / sum.ParseSeconds
	}
	fmt.Fprintf(progress, "\rparsed %d lines in %.2fs (%.0f lines/s): %d broken, %d skipped; %d connections of %s in [%s, %s], %d unique public destinations\n",
		sum.Lines, sum.ParseSeconds, sum.LinesPerSecond, sum.Broken, sum.Skipped, sum.Matched, opts.client,
		sel.from.Format(time.RFC3339), opts.at.Format(time.RFC3339), len(dests))
	for _, s := range samples {
		fmt.Fprintf(progress, "  broken %s\n", s)
	}

	list := make([]*destination, 0, len(dests))
	for _, d := range dests {
		for p := range d.portSet {
			d.Ports = append(d.Ports, p)
			if slices.Contains(off.CriticalPorts, p) {
				d.Critical = true
			}
		}
		slices.Sort(d.Ports)
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b *destination) int {
		if a.Critical != b.Critical {
			if a.Critical {
				return -1
			}
			return 1
		}
		return a.First.Compare(b.First)
	})
	sum.Destinations = len(list)
	return sum, list, sel.records, nil
}

// renderBacktrack prints the destinations and the summary: one JSON object,
// or a table and a summary line.
func renderBacktrack(w io.Writer, res backtrackResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Client       netip.Addr       `json:"client"`
			At           time.Time        `json:"at"`
			Window       string           `json:"window"`
			Destinations []*destination   `json:"destinations"`
			Summary      backtrackSummary `json:"summary"`
		}{res.client, res.at, res.window.String(), res.list, res.sum})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERDICT\tDESTINATION\tPORTS\tCONNS\tFIRST SEEN\tLAST SEEN\tREASONS")
	for _, d := range res.list {
		reasons := verdicts.Verdict{Reasons: d.Reasons}.ReasonList()
		if d.Error != "" {
			reasons = append(reasons, d.Error)
		}
		if d.Scope != "" {
			reasons = append(reasons, "scope "+d.Scope)
		}
		ports := make([]string, len(d.Ports))
		for i, p := range d.Ports {
			ports[i] = strconv.Itoa(int(p))
		}
		mark := strings.ToUpper(d.Verdict)
		if d.Critical {
			mark += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", mark, d.IP, strings.Join(ports, ","), d.Count,
			d.First.Format("15:04:05"), d.Last.Format("15:04:05"), strings.Join(reasons, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sum := res.sum
	fmt.Fprintf(w, "\n%d destinations: %d suspicious, %d clean, %d errors", sum.Destinations, sum.Suspicious, sum.Clean, sum.Errors)
	if sum.ServerSkipped > 0 {
		fmt.Fprintf(w, ", %d skipped", sum.ServerSkipped)
	}
	if res.server == "" {
		fmt.Fprintf(w, "; %d API calls", sum.APICalls)
	}
	fmt.Fprintf(w, "; %s\n", firstNonEmpty(res.note, "done"))
	if res.criticalPorts {
		fmt.Fprintln(w, "(* on a critical port)")
	}
	return nil
}

// validateAll fills in each destination's verdict, a few at a time, with a
// progress line on stderr.
func validateAll(ctx context.Context, c *criminalip.Client, policy risk.Policy, list []*destination, workers int, stderr io.Writer) {
	jobs := make(chan *destination)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done, susp, errs := 0, 0, 0
	progress := func() {
		fmt.Fprintf(stderr, "\rvalidating: %d/%d (%d suspicious, %d errors)", done, len(list), susp, errs)
	}
	for range workers {
		wg.Go(func() {
			for d := range jobs {
				rep, err := c.Report(ctx, d.IP)
				if err != nil {
					d.Verdict, d.Error = "error", err.Error()
				} else {
					v := policy.Evaluate(rep, risk.Hints{Port: int(enforce.PortHint(d.Ports))})
					d.Reasons, d.Score = v.Reasons, v.Score
					d.Verdict = "clean"
					if v.Suspicious {
						d.Verdict, d.Decision = "suspicious", verdicts.NewDecisionID()
					}
				}
				mu.Lock()
				done++
				if d.Verdict == "suspicious" {
					susp++
				} else if d.Verdict == "error" {
					errs++
				}
				progress()
				mu.Unlock()
			}
		})
	}
	for _, d := range list {
		select {
		case jobs <- d:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if len(list) > 0 {
		fmt.Fprintln(stderr)
	}
}

// pushBlocks decides a block of each suspicious destination with the
// decision engine, on the Corefile's rules, hooks, state directory and
// audit log (not its fleet or connection logs, which belong to a running
// server), waits for the hooks, and returns how many blocks it decided and
// the hooks they went through.
func pushBlocks(ctx context.Context, rules enforce.Config, client netip.Addr, list []*destination, stderr io.Writer) (int, []string, error) {
	if len(rules.Hooks) == 0 {
		return 0, nil, errors.New("the Corefile's cipvalidate block has no hook lines")
	}
	cfg := rules
	cfg.Redis, cfg.Connlogs = enforce.FleetConfig{}, nil
	// The command line pushes what it found even under `mode monitor`, as
	// it always has: --dry-run is how it pushes nothing.
	cfg.BlockPolicy.Monitor = false
	failures := &hookFailures{}
	cfg.Log = failures
	eng := enforce.New("coredns-cip backtrack", cfg)
	if err := eng.Start(); err != nil {
		if errors.Is(err, state.ErrLocked) {
			return 0, nil, fmt.Errorf("%w; stop the server, or post the records and the event to its admin API", err)
		}
		return 0, nil, err
	}
	defer eng.Stop()
	now := time.Now()
	n := 0
	for _, dst := range list {
		if dst.Verdict != "suspicious" {
			continue
		}
		// The verdict is the report's; the port is the connection's, and the
		// engine makes it part of the finding (a client -> IP:port block).
		report := slices.DeleteFunc(slices.Clone(dst.Reasons), func(r risk.Reason) bool { return r.Hint })
		v := verdicts.Verdict{IP: dst.IP, Outcome: verdicts.Suspicious, Reasons: report, Score: dst.Score,
			Decision: dst.Decision, Checked: now, Expires: now.Add(verdicts.DefaultSuspiciousTTL)}
		job := validate.Job{IP: dst.IP, Client: client, Hints: risk.Hints{Port: int(enforce.PortHint(dst.Ports))}}
		eng.DecideBy(v, job, "coredns-cip backtrack", "offline backtrack")
		n++
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := eng.StopHooks(stopCtx); err != nil {
		return n, nil, err
	}
	if failed := failures.lines(); len(failed) > 0 {
		fmt.Fprintf(stderr, "hooks failed: %s\n", strings.Join(failed, "; "))
		return n, nil, fmt.Errorf("%d hook batch(es) failed", len(failed))
	}
	hooks := make([]string, len(rules.Hooks))
	for i, h := range rules.Hooks {
		hooks[i] = h.Line
	}
	return n, hooks, nil
}

// hookFailures is the engine's log for pushBlocks: it keeps the hooks'
// final failures and drops the rest (the table says what was decided).
type hookFailures struct {
	mu     sync.Mutex
	failed []string
}

func (h *hookFailures) Debugf(string, ...any)   {}
func (h *hookFailures) Infof(string, ...any)    {}
func (h *hookFailures) Warningf(string, ...any) {}

// Errorf receives "hook SINK: ERROR (after N attempts)".
func (h *hookFailures) Errorf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed = append(h.failed, strings.TrimPrefix(fmt.Sprintf(format, args...), "hook "))
}

func (h *hookFailures) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.failed)
}

// parseEventTime accepts RFC 3339 or "2006-01-02 15:04:05" in loc.
func parseEventTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006/01/02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor 2006-01-02 15:04:05", s)
}

// portList reads a comma-separated list of ports.
func portList(s string) ([]uint16, error) { return optval.Ports(splitList(s)) }

func inPrefixes(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func isAllowed(m *blocks.Manager, ip netip.Addr) bool {
	_, ok := m.Allowed(ip, nil, time.Now())
	return ok
}

// selection is what a log scan keeps: the client's connections in
// [from, to] to public destinations that the rules do not rule out.
type selection struct {
	client   netip.Addr
	from, to time.Time
	off      enforce.Config
	sched    *tags.Schedule
	allow    *blocks.Manager
	keep     bool                  // keep the selected records, for --api
	records  []adminapi.Connection // the selected records, when keep
}

// scan reads the log and gathers the destinations, with a progress line.
func (sel *selection) scan(in io.Reader, parser *connlog.Parser, stderr io.Writer) (backtrackSummary, map[netip.Addr]*destination, []string, error) {
	var sum backtrackSummary
	dests := map[netip.Addr]*destination{}
	var samples []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	for sc.Scan() {
		sum.Lines++
		if sum.Lines%200_000 == 0 {
			fmt.Fprintf(stderr, "\rparsing: %d lines", sum.Lines)
		}
		rec, err := parser.Parse(sc.Bytes())
		if err != nil {
			if errors.Is(err, connlog.ErrSkip) {
				sum.Skipped++
				continue
			}
			sum.Broken++
			if len(samples) < 3 {
				samples = append(samples, fmt.Sprintf("line %d: %v", sum.Lines, err))
			}
			continue
		}
		sum.Parsed++
		if rec.Src.Unmap() != sel.client || rec.Time.IsZero() || rec.Time.Before(sel.from) || rec.Time.After(sel.to) {
			continue
		}
		sum.Matched++
		dst := rec.Dst.Unmap()
		switch {
		case !publicip.Is(dst):
			sum.NotPublic++
			continue
		case rec.DPort != 0 && slices.Contains(sel.off.PortsNot, rec.DPort):
			sum.PortsNot++
			continue
		case sel.sched != nil && !sel.sched.Active(rec.Time):
			sum.OutsideHours++
			continue
		case inPrefixes(sel.off.Exclude, dst) || isAllowed(sel.allow, dst):
			sum.Excluded++
			continue
		}
		if sel.keep {
			sel.records = append(sel.records, adminapi.Connection{Time: rec.Time, Src: sel.client, Dst: dst, DPort: rec.DPort, Proto: rec.Proto})
		}
		d := dests[dst]
		if d == nil {
			d = &destination{IP: dst, First: rec.Time, Last: rec.Time, portSet: map[uint16]int{}}
			dests[dst] = d
		}
		d.Count++
		if rec.DPort != 0 {
			d.portSet[rec.DPort]++
		}
		if rec.Time.Before(d.First) {
			d.First = rec.Time
		}
		if rec.Time.After(d.Last) {
			d.Last = rec.Time
		}
	}
	if err := sc.Err(); err != nil {
		return sum, nil, nil, fmt.Errorf("line %d: %w", sum.Lines+1, err)
	}
	return sum, dests, samples, nil
}
