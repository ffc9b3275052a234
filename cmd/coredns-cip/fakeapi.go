package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/coredns-cip/coredns-cip/internal/fakeapi"
)

const fakeAPIUsage = `Usage: coredns-cip fakeapi [--fixtures DIR] [--listen ADDR] [--key KEY]
                          [--unknown clean|notfound] [--delay D]

Serves a fake Criminal IP API for tests and demos: GET /v1/asset/ip/report
answers with the fixture for the asked IP, byte for byte, and with a clean
report (or 404 with --unknown notfound) for any other IP. Point the plugin's
API URL (or check's --api-url) at the printed address. Without --fixtures it
serves the fixture set compiled into the binary.

On start it prints one line to stdout, then serves until SIGINT or SIGTERM:
    fakeapi listening on http://HOST:PORT (N fixtures)

Admin endpoints, to drive it from scripts:
    GET  /_fake/stats                  {"calls":N,"by_ip":{"IP":n}}
    POST /_fake/fault?mode=M[&count=N][&retry_after=S][&delay=D]
         M: 429 quota200 5xx 500 malformed badkey badkey200 slow huge hangup
         count: next N requests (default 1, -1 until cleared)
    POST /_fake/clear                  drop queued faults
    POST /_fake/reset                  zero the counters
    POST /_fake/delay?d=D              delay every answer by D

Exit status: 0 after a signal, 1 if serving fails, 2 for bad flags or fixtures.

Flags:
`

// runFakeAPI runs the fakeapi sub-command with args (those after "fakeapi")
// and returns the exit status.
func runFakeAPI(args []string) int {
	fs := flag.NewFlagSet("fakeapi", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fakeAPIUsage)
		fs.PrintDefaults()
	}
	fixtures := fs.String("fixtures", "", "`DIR` holding the *.json fixtures and an optional manifest.json (default: the embedded set)")
	listen := fs.String("listen", "127.0.0.1:0", "`ADDR` to listen on; port 0 picks a free port")
	key := fs.String("key", "", "the only x-api-key `KEY` to accept (default: any non-empty key)")
	unknown := fs.String("unknown", "clean", "answer for IPs without a fixture: `clean|notfound`")
	delay := fs.Duration("delay", 0, "delay every answer by `D`, such as 200ms")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // fs.Parse has printed the error and the usage
	}

	usageError := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "coredns-cip fakeapi: "+format+"\n", a...)
		fmt.Fprintln(os.Stderr, "Run 'coredns-cip fakeapi -h' for usage.")
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected argument %q", fs.Arg(0))
	case *unknown != "clean" && *unknown != "notfound":
		return usageError("--unknown must be clean or notfound, not %q", *unknown)
	case *delay < 0:
		return usageError("--delay must not be negative, got %s", *delay)
	}

	load := fakeapi.Embedded
	if *fixtures != "" {
		load = func() (*fakeapi.Server, error) { return fakeapi.Load(*fixtures) }
	}
	srv, err := load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "coredns-cip: %v\n", err)
		return 2
	}
	srv.Key = *key
	srv.UnknownNotFound = *unknown == "notfound"
	srv.SetDelay(*delay)

	// Catch signals before announcing the URL, so a script may signal as
	// soon as it has read it.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	baseURL, stop, err := srv.Start(*listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "coredns-cip: %v\n", err)
		return 1
	}
	fmt.Printf("fakeapi listening on %s (%d fixtures)\n", baseURL, srv.Fixtures())

	<-ctx.Done()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "coredns-cip: %v\n", err)
		return 1
	}
	return 0
}
