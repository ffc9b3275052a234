package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

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

// fakeAPIOpts is what fakeapi's flags ask for.
type fakeAPIOpts struct {
	fixtures string // "" for the embedded set
	listen   string
	key      string
	notFound bool
	delay    time.Duration
}

// fakeAPI runs the fakeapi sub-command with args (those after "fakeapi")
// until ctx is done, and returns the exit status. Its errors keep their own
// format and statuses (see the usage), which scripts may rely on.
func fakeAPI(ctx context.Context, args []string, stdout, stderr io.Writer, _ func(string) string) int {
	opts, err := parseFakeAPIFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2 // fs.Parse has printed the error and the usage
	case err != nil:
		fmt.Fprintf(stderr, "coredns-cip fakeapi: %v\n", err)
		fmt.Fprintln(stderr, "Run 'coredns-cip fakeapi -h' for usage.")
		return 2
	}
	srv, err := loadFakeAPI(opts)
	if err != nil {
		fmt.Fprintf(stderr, "coredns-cip: %v\n", err)
		return 2
	}
	if err := serveFakeAPI(ctx, srv, opts.listen, stdout); err != nil {
		fmt.Fprintf(stderr, "coredns-cip: %v\n", err)
		return 1
	}
	return 0
}

func parseFakeAPIFlags(args []string, stderr io.Writer) (fakeAPIOpts, error) {
	fs := newFlagSet("fakeapi", fakeAPIUsage, stderr)
	fixtures := fs.String("fixtures", "", "`DIR` holding the *.json fixtures and an optional manifest.json (default: the embedded set)")
	listen := fs.String("listen", "127.0.0.1:0", "`ADDR` to listen on; port 0 picks a free port")
	key := fs.String("key", "", "the only x-api-key `KEY` to accept (default: any non-empty key)")
	unknown := fs.String("unknown", "clean", "answer for IPs without a fixture: `clean|notfound`")
	delay := durationFlag(fs, "delay", 0, "delay every answer by `D`, such as 200ms")
	if err := parseFlags(fs, args); err != nil {
		return fakeAPIOpts{}, err
	}
	switch {
	case fs.NArg() > 0:
		return fakeAPIOpts{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *unknown != "clean" && *unknown != "notfound":
		return fakeAPIOpts{}, fmt.Errorf("--unknown must be clean or notfound, not %q", *unknown)
	case *delay < 0:
		return fakeAPIOpts{}, fmt.Errorf("--delay must not be negative, got %s", *delay)
	}
	return fakeAPIOpts{fixtures: *fixtures, listen: *listen, key: *key, notFound: *unknown == "notfound", delay: *delay}, nil
}

// loadFakeAPI loads the fixtures and configures the server.
func loadFakeAPI(opts fakeAPIOpts) (*fakeapi.Server, error) {
	load := fakeapi.Embedded
	if opts.fixtures != "" {
		load = func() (*fakeapi.Server, error) { return fakeapi.Load(opts.fixtures) }
	}
	srv, err := load()
	if err != nil {
		return nil, err
	}
	srv.Key = opts.key
	srv.UnknownNotFound = opts.notFound
	srv.SetDelay(opts.delay)
	return srv, nil
}

// serveFakeAPI announces the URL on stdout and serves until ctx is done. The
// caller catches signals before, so a script may signal as soon as it has
// read the URL.
func serveFakeAPI(ctx context.Context, srv *fakeapi.Server, listen string, stdout io.Writer) error {
	baseURL, stop, err := srv.Start(listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fakeapi listening on %s (%d fixtures)\n", baseURL, srv.Fixtures())
	<-ctx.Done()
	return stop()
}
