package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/risk"
)

// defaultKeyFile is the original tool's default --keyfile, used only when it
// exists and neither --keyfile nor CIP_API_KEY is given.
const defaultKeyFile = "criminalip_api_key.json"

const checkUsage = `Usage: coredns-cip check --ip IP [--port N] [--product NAME] [options]

Validates one IP with the Criminal IP asset report API and the multi-factor
rules (reputation score, SSL anomalies, directory listing, mining,
VPN/Tor/proxy, SSH exposure), like the original cip_ip_report_check.py.

Output: one JSON object {"ip","port","suspicious","reasons":[{"factor","detail","scope"}],"score"}
(or, with --pretty, "[SUSPICIOUS] IP:PORT" and one line per reason with its scope, "[OK] IP"
otherwise). A reason's scope is how far coredns-cip enforces it by default: everyone, or tagged
(clients an event tagged); a reason from --port or --product is about the connection
("hint": true), and reaches tagged clients as a client -> IP:port block.

API key: --keyfile FILE (JSON {"api_key": "..."}), else $CIP_API_KEY, else
./criminalip_api_key.json if it exists. The key is never printed.

Exit status: 0 clean, 1 suspicious, 2 error (bad input, non-public IP, API failure).
A non-public IP (private, loopback, link-local, CGNAT, documentation,
multicast, reserved) is refused without calling the API.

Options:
`

// checkOpts is what check's flags ask for.
type checkOpts struct {
	addr     netip.Addr
	port     int
	product  string
	pretty   bool
	dumpJSON bool
	policy   risk.Policy
	api      criminalip.Config
}

// checkOutcome is what the API said about the IP and what the rules made of it.
type checkOutcome struct {
	report  *criminalip.Report
	verdict risk.Verdict
}

// checkResult is the default JSON output.
type checkResult struct {
	IP         string        `json:"ip"`
	Port       *int          `json:"port"`
	Suspicious bool          `json:"suspicious"`
	Reasons    []checkReason `json:"reasons"`
	Score      string        `json:"score"`
}

// checkReason is a reason and the scope it reaches.
type checkReason struct {
	risk.Reason
	Scope risk.Scope `json:"scope"`
}

// scoped gives each reason its scope under policy.
func scoped(policy risk.Policy, reasons []risk.Reason) []checkReason {
	out := make([]checkReason, len(reasons))
	for i, r := range reasons {
		out[i] = checkReason{Reason: r, Scope: policy.ScopeOf([]risk.Reason{r})}
	}
	return out
}

// check runs the check sub-command with args (those after "check") and
// returns its exit status.
func check(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := parseCheckFlags(args, stderr, getenv)
	if err != nil {
		return fail(stderr, err)
	}
	out, err := runCheck(ctx, opts)
	if err != nil {
		return fail(stderr, err)
	}
	if err := renderCheck(stdout, opts, out); err != nil {
		return fail(stderr, err)
	}
	if out.verdict.Suspicious {
		return exitSuspicious
	}
	return exitClean
}

// parseCheckFlags checks the flags and finds the API key; nothing is sent
// to the API for flags it refuses.
func parseCheckFlags(args []string, stderr io.Writer, getenv func(string) string) (checkOpts, error) {
	fs := newFlagSet("check", checkUsage, stderr)
	ipFlag := fs.String("ip", "", "destination `IP` to validate (required)")
	port := fs.Int("port", 0, "destination `port` (hint: 22 counts as SSH exposure)")
	product := fs.String("product", "", "product `name` seen on the port (hint: OpenSSH on a non-22 port counts)")
	pretty := fs.Bool("pretty", false, "human-readable output instead of JSON")
	dumpJSON := fs.Bool("dump-json", false, "also print the full API report (debug)")
	keyFile := fs.String("keyfile", "", "API key `file`, JSON {\"api_key\": \"...\"}")
	apiURL := fs.String("api-url", criminalip.DefaultBaseURL, "Criminal IP API base `URL`")
	timeout := durationFlag(fs, "timeout", criminalip.DefaultTimeout, "timeout per API call (a `duration`)")
	attempts := fs.Int("attempts", criminalip.DefaultMaxAttempts, "API calls at most, retries of transient errors and 429 included")
	factors := fs.String("factors", "", "comma-separated factors that count (score,ssl,vuln,mining,anonymity,ssh or codes); default all")
	levels := fs.String("score-levels", "", "comma-separated score levels that count; default dangerous,critical")
	if err := parseFlags(fs, args); err != nil {
		return checkOpts{}, err
	}
	if fs.NArg() > 0 {
		return checkOpts{}, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	if *ipFlag == "" {
		return checkOpts{}, errors.New("--ip is required")
	}
	addr, err := publicip.Check(*ipFlag)
	if err != nil {
		return checkOpts{}, fmt.Errorf("--ip: %v; not sent to the API", err)
	}
	if *port < 0 || *port > 65535 {
		return checkOpts{}, fmt.Errorf("--port: %d is not a port number (1-65535)", *port)
	}
	if *attempts < 1 {
		return checkOpts{}, errors.New("--attempts: must be at least 1")
	}
	policy := risk.DefaultPolicy()
	if *factors != "" {
		if policy, err = policy.WithFactors(splitList(*factors)...); err != nil {
			return checkOpts{}, fmt.Errorf("--factors: %v", err)
		}
	}
	if *levels != "" {
		if policy, err = policy.WithScoreLevels(splitList(*levels)...); err != nil {
			return checkOpts{}, fmt.Errorf("--score-levels: %v", err)
		}
	}
	key, err := resolveKey(*keyFile, getenv)
	if err != nil {
		return checkOpts{}, err
	}
	return checkOpts{
		addr: addr, port: *port, product: *product, pretty: *pretty, dumpJSON: *dumpJSON, policy: policy,
		api: criminalip.Config{
			APIKey:      key,
			BaseURL:     *apiURL,
			Timeout:     *timeout,
			MaxAttempts: *attempts,
			Rate:        -1, // one IP: the limiter has nothing to pace
		},
	}, nil
}

// runCheck asks the API about the IP and evaluates the report.
func runCheck(ctx context.Context, opts checkOpts) (checkOutcome, error) {
	apiClient, err := criminalip.New(opts.api)
	if err != nil {
		return checkOutcome{}, err
	}
	defer apiClient.Close()
	rep, err := apiClient.Report(ctx, opts.addr)
	if err != nil {
		return checkOutcome{}, err
	}
	return checkOutcome{report: rep, verdict: opts.policy.Evaluate(rep, risk.Hints{Port: opts.port, Product: opts.product})}, nil
}

// renderCheck prints the verdict: the report first with --dump-json, then
// the pretty lines or the JSON object.
func renderCheck(w io.Writer, opts checkOpts, out checkOutcome) error {
	if opts.dumpJSON {
		if err := dumpReport(w, out.report.Raw); err != nil {
			return fmt.Errorf("--dump-json: %v", err)
		}
	}
	v := out.verdict
	if opts.pretty {
		printPretty(w, opts.addr.String(), opts.port, v, scoped(opts.policy, v.Reasons))
		return nil
	}
	res := checkResult{IP: opts.addr.String(), Suspicious: v.Suspicious, Reasons: scoped(opts.policy, v.Reasons), Score: v.Score}
	if opts.port != 0 {
		res.Port = &opts.port
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("writing output: %v", err)
	}
	return nil
}

// resolveKey finds the API key: --keyfile, then CIP_API_KEY, then the
// original tool's default file if present.
func resolveKey(keyFile string, getenv func(string) string) (criminalip.APIKey, error) {
	if keyFile != "" {
		return criminalip.LoadKeyFile(keyFile)
	}
	if k := strings.TrimSpace(getenv("CIP_API_KEY")); k != "" {
		return criminalip.APIKey(k), nil
	}
	if _, err := os.Stat(defaultKeyFile); err == nil {
		return criminalip.LoadKeyFile(defaultKeyFile)
	}
	return "", errors.New(`no API key: pass --keyfile FILE (JSON {"api_key": "..."}) or set CIP_API_KEY`)
}

func printPretty(w io.Writer, ip string, port int, v risk.Verdict, reasons []checkReason) {
	target := ip
	if port != 0 {
		target = net.JoinHostPort(ip, strconv.Itoa(port))
	}
	if !v.Suspicious {
		score := v.Score
		if score == "" {
			score = "none"
		}
		fmt.Fprintf(w, "[OK] %s\n - no risk factor matched (score: %s)\n", target, score)
		return
	}
	fmt.Fprintf(w, "[SUSPICIOUS] %s\n", target)
	for _, r := range reasons {
		fmt.Fprintf(w, " - %s [%s]\n", r.Reason, r.Scope)
	}
}

// dumpReport prints the report as received, indented, keys in API order.
func dumpReport(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
