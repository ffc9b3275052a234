// Command coredns-cip is CoreDNS with its standard plugins (plugins_full.go;
// a curated few with -tags curated, plugins_curated.go) and the cipvalidate
// plugin, plus sub-commands that work without a server.
//
//	coredns-cip [flags]            run the DNS server, like coredns
//	coredns-cip check [flags]      validate one IP with the Criminal IP API
//	coredns-cip fakeapi [flags]    serve a fake Criminal IP API for tests
//	coredns-cip decisions COMMAND  list, show, lift and add block decisions (event API)
//	coredns-cip events COMMAND     list and show security events (event API)
//	coredns-cip allow COMMAND      list, add and remove allowlist entries (event API)
//	coredns-cip clients COMMAND    list and untag tagged clients (event API)
//	coredns-cip blocks COMMAND     the older commands of the same API, kept as aliases
//	coredns-cip backtrack [flags]  the original pipeline, offline, on an exported log
//	coredns-cip token COMMAND      make a token for the event API's tokens file
//	coredns-cip version            the versions of coredns-cip and CoreDNS (also -version)
//	coredns-cip help [COMMAND]     the commands, or a sub-command's flags
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/coredns-cip/coredns-cip/internal/version"
	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
	"github.com/coredns/coredns/coremain"
)

// Exit statuses shared by the sub-commands (fakeapi and blocks document
// their own meaning of 1; the event API's commands, decisions, events,
// allow and clients, have theirs in cli.go).
const (
	exitClean      = 0
	exitSuspicious = 1
	exitError      = 2
)

// command is one sub-command. run gets the arguments after its name.
type command struct {
	name    string
	args    string // after the name in the commands list
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int
	// interruptible commands see SIGINT and SIGTERM as ctx's cancellation;
	// the others are killed by them, as any program.
	interruptible bool
}

// commands are the sub-commands, in the order the usage lists them.
var commands = []command{
	{"check", "[flags]", "validate one IP with the Criminal IP API", check, true},
	{"fakeapi", "[flags]", "serve a fake Criminal IP API on loopback, for tests", fakeAPI, true},
	{"decisions", "COMMAND", "list, show, delete (lift), add block decisions (event API client)", decisionsCmd, false},
	{"events", "COMMAND", "list and show the security events received (event API client)", eventsCmd, false},
	{"allow", "COMMAND", "list, add and delete allowlist entries (event API client)", allowCmd, false},
	{"clients", "COMMAND", "list the clients tagged by events, untag one (event API client)", clientsCmd, false},
	{"blocks", "COMMAND", "aliases: list, unblock IP, allow VALUE, allowlist (event API client)", blocksCmd, false},
	{"backtrack", "[flags]", "validate a host's destinations from an exported firewall log", backtrack, true},
	{"token", "COMMAND", "make a token for the event API's tokens file (new NAME ROLE, hash)", tokenCmd, false},
}

func main() {
	cipvalidate.RegisterDirective()

	// coremain registered its flags on flag.CommandLine in its init; this
	// only changes what -h prints before them.
	flag.Usage = func() { printUsage(flag.CommandLine.Output()) }

	// coredns_build_info's revision label; the Makefile sets both, a plain
	// go build leaves GitCommit empty and the VCS stamp fills it.
	if coremain.GitCommit == "" {
		coremain.GitCommit = version.Get().Commit
	}
	if wantsVersion(os.Args[1:]) {
		fmt.Println(version.Get())
		os.Exit(exitClean)
	}
	if len(os.Args) > 1 {
		if code, ok := runSubcommand(os.Args[1], os.Args[2:]); ok {
			os.Exit(code)
		}
	}
	coremain.Run()
}

// wantsVersion reports whether args ask for the version: "version", or
// -version among the server's flags. It replaces CoreDNS's -version, which
// prints CoreDNS's version only.
func wantsVersion(args []string) bool {
	if len(args) > 0 && args[0] == "version" {
		return true
	}
	// A sub-command's flags are its own.
	if len(args) > 0 && (args[0] == "help" || slices.ContainsFunc(commands, func(c command) bool { return c.name == args[0] })) {
		return false
	}
	for _, a := range args {
		switch a {
		case "-version", "--version", "-version=true", "--version=true":
			return true
		}
	}
	return false
}

// runSubcommand runs the sub-command name, if there is one of that name,
// with the process's streams and environment.
func runSubcommand(name string, args []string) (code int, ok bool) {
	if name == "help" {
		return help(args, os.Stdout, os.Stderr), true
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		ctx := context.Background()
		if c.interruptible {
			var stop context.CancelFunc
			ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
		}
		return c.run(ctx, args, os.Stdout, os.Stderr, os.Getenv), true
	}
	return 0, false
}

// help prints the commands and the server's flags, or with a command's name,
// that command's usage.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stdout)
		return exitClean
	}
	for _, c := range commands {
		if c.name == args[0] && len(args) == 1 {
			// A sub-command prints its usage to its stderr.
			return c.run(context.Background(), []string{"-h"}, stdout, stdout, func(string) string { return "" })
		}
	}
	return fail(stderr, fmt.Errorf("help: no command %q (%s)", strings.Join(args, " "), commandNames()))
}

// printUsage prints the commands list and the flags of the DNS server.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage:")
	line := func(synopsis, summary string) {
		fmt.Fprintf(w, "  %-29s  %s\n", "coredns-cip "+synopsis, summary)
	}
	line("[flags]", "run the DNS server (CoreDNS) with a Corefile")
	for _, c := range commands {
		line(c.name+" "+c.args, c.summary)
	}
	line("version", "the version of coredns-cip and of CoreDNS (also -version)")
	line("help [COMMAND]", "this text, or a sub-command's flags")
	fmt.Fprint(w, `
Run "coredns-cip SUBCOMMAND -h" for a sub-command's flags.

Flags of the DNS server:
`)
	defer flag.CommandLine.SetOutput(flag.CommandLine.Output())
	flag.CommandLine.SetOutput(w)
	flag.PrintDefaults()
}

func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// errReported is a flag error that the flag package has already printed,
// with the usage.
var errReported = errors.New("bad flags")

// fail ends a sub-command on err and returns its exit status: 0 when err is
// a request for help (the usage is printed), 2 otherwise, printing err as
// "[ERROR] ..." unless the flag package has.
func fail(stderr io.Writer, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitClean
	case !errors.Is(err, errReported):
		fmt.Fprintf(stderr, "[ERROR] %v\n", err)
	}
	return exitError
}

// newFlagSet returns the flag set of a sub-command: errors and the usage,
// then the flags, go to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args with fs, whose output is stderr. Its errors are
// flag.ErrHelp and errReported, for fail.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp
	default:
		return errReported
	}
}
