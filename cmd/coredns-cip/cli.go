package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/risk"
)

// Exit statuses of the API commands (decisions, events, allow, clients).
// blocks keeps its own: 0 done, 1 not found, 2 error.
const (
	exitAPIFailed    = 1 // the API refused (400, 409, 429 after retries) or failed (5xx), or is unreachable
	exitUsage        = 2 // bad flags or arguments, found before anything was sent
	exitAPINotFound  = 3 // 404: no such decision, event, entry or tagged client; nothing matched
	exitAPIForbidden = 4 // 401 or 403: no token, a wrong one, or one without the role
)

// apiExitStatuses is the exit-status text of the API commands' usage.
const apiExitStatuses = `Exit status: 0 done; 1 the API refused (400, 409, 429 after 3 retries) or
failed (5xx, unreachable); 2 bad usage (nothing was sent); 3 not found (404,
or no decision matched); 4 not authorised (401, 403: the token or its role).
`

// apiConnUsage is how the API commands find the API, for their usage.
const apiConnUsage = `The API address comes from --api, else $CIP_API (default http://127.0.0.1:8053);
the token from --token-file, else $CIP_TOKEN_FILE or $CIP_TOKEN (GETs need a
read token, changes an operator token). An https:// API is verified against
--ca, else $CIP_CA, else the system's CAs; mutual TLS takes --cert and --key.
Changes name whom the token acts for in the audit log: --actor, else $USER.
A 429 is retried after its Retry-After, up to 3 times.
`

// usageError is a mistake in a command's flags or arguments, found before
// anything is sent: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// apiExit prints err, if any, and returns the exit status it means.
func apiExit(stderr io.Writer, err error) int {
	var se *statusError
	var ue usageError
	switch {
	case err == nil:
		return exitClean
	case errors.Is(err, flag.ErrHelp):
		return exitClean
	case errors.Is(err, errReported):
		return exitUsage
	}
	fmt.Fprintf(stderr, "[ERROR] %v\n", err)
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se) && se.status == http.StatusNotFound:
		return exitAPINotFound
	case errors.As(err, &se) && (se.status == http.StatusUnauthorized || se.status == http.StatusForbidden):
		return exitAPIForbidden
	case errors.Is(err, errNothingMatched):
		return exitAPINotFound
	}
	return exitAPIFailed
}

// errNothingMatched is a delete by --ip or --range that found no active
// decision: exit status 3, as an unknown id.
var errNothingMatched = errors.New("no active decision matches")

// cliIO is what an API command reads and writes.
type cliIO struct {
	stdin          io.Reader
	interactive    bool // stdin is a terminal: --all may ask instead of needing --yes
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
}

// apiCmd is one command of a group (decisions list, allow add, ...).
type apiCmd struct {
	name, args, summary string
	nargs               int // positional arguments: exactly this many; -1: 0 or 1
	// setup defines the command's own flags on fs and returns what runs
	// it once they are parsed.
	setup func(fs *flag.FlagSet) func(ctx context.Context, c *apiSession, args []string) error
}

// apiGroup is a sub-command made of commands: decisions, events, allow,
// clients.
type apiGroup struct {
	name, about string
	cmds        []apiCmd
}

// apiSession is a command's connection to the API and its common flags.
type apiSession struct {
	api    *eventAPIClient
	actor  string // whom the token acts for, for the audit log
	output string // human, json or raw
	io     cliIO
}

// runAPIGroup runs the command args[0] of g with the rest of args.
func runAPIGroup(ctx context.Context, g apiGroup, args []string, cio cliIO) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(cio.stderr, groupUsage(g))
		if len(args) == 0 {
			return exitUsage
		}
		return exitClean
	}
	for _, cmd := range g.cmds {
		if cmd.name == args[0] {
			return apiExit(cio.stderr, runAPICmd(ctx, g, cmd, args[1:], cio))
		}
	}
	fmt.Fprint(cio.stderr, groupUsage(g))
	return apiExit(cio.stderr, usagef("%s: no command %q", g.name, args[0]))
}

func groupUsage(g apiGroup) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: coredns-cip %s COMMAND [ARGS] [flags]\n\n%s\nCommands:\n", g.name, g.about)
	for _, c := range g.cmds {
		fmt.Fprintf(&b, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(&b, "\nRun \"coredns-cip %s COMMAND -h\" for its flags.\n\n%s\n%s", g.name, apiConnUsage, apiExitStatuses)
	return b.String()
}

// runAPICmd parses the flags of cmd, which may come before, between or
// after its arguments, connects and runs it.
func runAPICmd(ctx context.Context, g apiGroup, cmd apiCmd, args []string, cio cliIO) error {
	synopsis := strings.TrimSpace(strings.Join([]string{g.name, cmd.name, cmd.args}, " "))
	usage := fmt.Sprintf("Usage: coredns-cip %s [flags]\n\n%s%s.\n\n%s\n%s\nFlags:\n",
		synopsis, strings.ToUpper(cmd.summary[:1]), cmd.summary[1:], apiConnUsage, apiExitStatuses)
	fs := newFlagSet(g.name+" "+cmd.name, usage, cio.stderr)
	apiFlag := fs.String("api", "", "event API base `URL`")
	files := addAPIFlags(fs, "")
	actor := fs.String("actor", "", "whom the token acts for, for the audit log (default $USER)")
	output := fs.String("o", "human", "output `format`: human (a table), json (the API's JSON), raw (CSV with a header)")
	run := cmd.setup(fs)
	var positional []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case cmd.nargs >= 0 && len(positional) != cmd.nargs, cmd.nargs < 0 && len(positional) > 1:
		return usagef("%s %s takes %s, got %q", g.name, cmd.name, argsWanted(cmd), positional)
	case *output != "human" && *output != "json" && *output != "raw":
		return usagef("-o: %q is not human, json or raw", *output)
	}
	api, err := newEventAPIClient(firstNonEmpty(*apiFlag, cio.getenv("CIP_API"), "http://127.0.0.1:8053"), files.files(), cio.getenv)
	if err != nil {
		return usageError{err.Error()}
	}
	s := &apiSession{api: api, actor: firstNonEmpty(*actor, cio.getenv("USER"), "cli"), output: *output, io: cio}
	return run(ctx, s, positional)
}

func argsWanted(cmd apiCmd) string {
	switch {
	case cmd.nargs == 0:
		return "no arguments"
	case cmd.nargs < 0:
		return "at most one argument " + cmd.args
	}
	return cmd.args
}

// apiCmdFunc adapts a command without flags of its own to apiCmd.setup.
func apiCmdFunc(run func(ctx context.Context, c *apiSession, args []string) error) func(*flag.FlagSet) func(context.Context, *apiSession, []string) error {
	return func(*flag.FlagSet) func(context.Context, *apiSession, []string) error { return run }
}

// processIO is cliIO for the process: its streams and environment, and a
// terminal on stdin counts as interactive.
func processIO(stdout, stderr io.Writer, getenv func(string) string) cliIO {
	interactive := false
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		interactive = true
	}
	return cliIO{stdin: os.Stdin, interactive: interactive, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
}

// confirm asks question on stderr and reads a yes from stdin.
func confirm(cio cliIO, question string) bool {
	fmt.Fprintf(cio.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(cio.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// Checks of filter values that cost nothing locally; the API checks them
// again. Each error names the flag.

func checkIP(flagName, v string) error {
	if v == "" {
		return nil
	}
	if _, err := netip.ParseAddr(v); err != nil {
		return usagef("--%s: %q is not an IP address", flagName, v)
	}
	return nil
}

func checkCIDR(flagName, v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, usagef("--%s: %q is not a CIDR such as 45.83.0.0/24", flagName, v)
	}
	return p.Masked(), nil
}

// checkSince reads --since or --until: an RFC 3339 time, or a duration
// back from now such as 24h or 7d, as the API takes them.
func checkSince(flagName, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, v); err == nil {
		return nil
	}
	if d, err := optval.Duration(v); err == nil && d > 0 {
		return nil
	}
	return usagef("--%s: %q is neither an RFC 3339 time nor a duration back from now such as 24h or 7d", flagName, v)
}

func checkOneOf(flagName, v string, choices ...string) error {
	for _, c := range choices {
		if v == c || v == "" {
			return nil
		}
	}
	return usagef("--%s: %q is not one of %s", flagName, v, strings.Join(choices, ", "))
}

func checkFactor(v string) error {
	if v == "" {
		return nil
	}
	if _, err := (risk.Policy{}).WithFactors(v); err != nil {
		return usagef("--factor: %v", err)
	}
	return nil
}

// apiDuration reads a duration flag that may count days (30d, 1d12h)
// and writes it as Go writes durations ("720h"), which the API reads.
func apiDuration(flagName, v string, max time.Duration) (string, error) {
	d, err := optval.DurationUpTo(v, max)
	if err != nil {
		return "", usagef("--%s: %v", flagName, err)
	}
	return optval.TrimZeroUnits(d), nil
}

// allowUntil reads allow's --until: a duration that may count days, or an
// RFC 3339 time, passed on as the API reads it.
func allowUntil(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := time.Parse(time.RFC3339, v); err == nil {
		return v, nil
	}
	d, err := apiDuration("until", v, adminapi.MaxAllowFor)
	if err != nil {
		return "", usagef("--until: %q is neither an RFC 3339 time nor a duration up to %s such as 24h or 30d", v, optval.Short(adminapi.MaxAllowFor))
	}
	return d, nil
}

// pathID escapes a decision's or event's id as one path segment.
func pathID(id string) string { return url.PathEscape(id) }

// dayDuration is a duration flag that also counts days (7d, 1d12h), read
// by optval.Duration as the Corefile's options are, so that every duration
// the CLI takes is written the same way.
type dayDuration struct{ d *time.Duration }

func (f dayDuration) String() string {
	if f.d == nil || *f.d == 0 {
		return "" // flag's help leaves a zero default out
	}
	return optval.Short(*f.d)
}

func (f dayDuration) Set(s string) error {
	d, err := optval.Duration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// durationFlag is fs.Duration with days: a flag such as --watch 7d.
func durationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := value
	fs.Var(dayDuration{&d}, name, usage)
	return &d
}
