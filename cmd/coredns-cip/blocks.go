package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const blocksUsage = `Usage: coredns-cip blocks [--api URL] [--token-file PATH] COMMAND [ARGS]

Operates the block decisions of a running coredns-cip through its event API
(the cipvalidate "events" option).

Commands:
  list                         active blocks: IP, decision, time left, repeat, reasons, events
  unblock IP [--reason TEXT]   lift IP's block in every firewall and SOAR hook (false positive)
  allow VALUE [--until D|TIME] [--reason TEXT]
                               allowlist an IP, CIDR or domain (wins over any verdict;
                               lifts existing blocks); --until 24h or an RFC 3339 time
  allowlist                    the allowlist entries

The API address comes from --api, else $CIP_API (default http://127.0.0.1:8053);
the token from --token-file, else $CIP_TOKEN_FILE or $CIP_TOKEN. The actor
recorded in the audit log is --actor, else $USER.

Exit status: 0 done, 1 not found (unblock of an IP that is not blocked), 2 error.

Flags:
`

// exitNotFound is blocks' exit status when the IP to unblock is not blocked.
const exitNotFound = 1

func runBlocks(args []string) int {
	return blocksCmd(context.Background(), args, os.Stdout, os.Stderr, os.Getenv)
}

func blocksCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("blocks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, blocksUsage)
		fs.PrintDefaults()
	}
	apiFlag := fs.String("api", "", "event API base `URL`")
	tokenFile := fs.String("token-file", "", "bearer token `file`")
	actor := fs.String("actor", "", "who is acting, for the audit log")
	reason := fs.String("reason", "", "why (unblock, allow)")
	until := fs.String("until", "", "allow: expiry, a duration such as 24h or an RFC 3339 time")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	// Flags may come before or after the command and its argument.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitClean
			}
			return exitError
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "[ERROR] "+format+"\n", a...)
		return exitError
	}
	if len(positional) == 0 {
		fs.Usage()
		return exitError
	}
	api := firstNonEmpty(*apiFlag, getenv("CIP_API"), "http://127.0.0.1:8053")
	if u, err := url.Parse(api); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail("--api: %q is not http(s)://host:port", api)
	}
	token := strings.TrimSpace(getenv("CIP_TOKEN"))
	if tf := firstNonEmpty(*tokenFile, getenv("CIP_TOKEN_FILE")); tf != "" {
		data, err := os.ReadFile(tf)
		if err != nil {
			return fail("--token-file: %v", err)
		}
		token = strings.TrimSpace(string(data))
	}
	who := firstNonEmpty(*actor, getenv("USER"), "cli")
	c := &apiClient{base: strings.TrimRight(api, "/"), token: token, http: &http.Client{Timeout: 15 * time.Second}}

	cmd, params := positional[0], positional[1:]
	want := map[string]int{"list": 0, "allowlist": 0, "unblock": 1, "allow": 1}
	n, known := want[cmd]
	if !known {
		return fail("unknown command %q (list, unblock, allow, allowlist)", cmd)
	}
	if len(params) != n {
		return fail("%s takes %d argument(s), got %d", cmd, n, len(params))
	}
	switch cmd {
	case "list":
		var list []struct {
			IP               string   `json:"ip"`
			Decision         string   `json:"decision"`
			Reasons          []string `json:"reasons"`
			Repeat           int      `json:"repeat"`
			Events           []string `json:"events"`
			Clients          []string `json:"clients"`
			Monitor          bool     `json:"monitor"`
			RemainingSeconds int64    `json:"remaining_seconds"`
		}
		raw, status, err := c.do(ctx, "GET", "/v1/blocks", nil, &list)
		if err != nil {
			return fail("%v", err)
		}
		if status != http.StatusOK {
			return fail("GET /v1/blocks: %s", apiError(status, raw))
		}
		if *asJSON {
			stdout.Write(raw)
			return exitClean
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IP\tDECISION\tLEFT\tREPEAT\tCLIENTS\tEVENTS\tREASONS")
		for _, b := range list {
			left := (time.Duration(b.RemainingSeconds) * time.Second).String()
			if b.Monitor {
				left += " (monitor)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.IP, b.Decision, left, b.Repeat,
				strings.Join(b.Clients, ","), strings.Join(b.Events, ","), strings.Join(b.Reasons, "; "))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d active block(s)\n", len(list))
	case "allowlist":
		raw, status, err := c.do(ctx, "GET", "/v1/allow", nil, nil)
		if err != nil {
			return fail("%v", err)
		}
		if status != http.StatusOK {
			return fail("GET /v1/allow: %s", apiError(status, raw))
		}
		stdout.Write(raw)
	case "unblock":
		q := url.Values{"actor": {who}, "reason": {*reason}}
		raw, status, err := c.do(ctx, "DELETE", "/v1/blocks/"+url.PathEscape(params[0])+"?"+q.Encode(), nil, nil)
		if err != nil {
			return fail("%v", err)
		}
		switch status {
		case http.StatusOK:
			fmt.Fprintf(stdout, "unblocked %s everywhere (actor %s)\n", params[0], who)
		case http.StatusNotFound:
			fmt.Fprintf(stderr, "%s is not blocked\n", params[0])
			return exitNotFound
		default:
			return fail("unblock %s: %s", params[0], apiError(status, raw))
		}
	case "allow":
		body := map[string]string{"value": params[0], "actor": who}
		if *reason != "" {
			body["reason"] = *reason
		}
		if *until != "" {
			body["until"] = *until
		}
		var ans struct {
			Value  string   `json:"value"`
			Until  string   `json:"until"`
			Lifted []string `json:"lifted"`
		}
		raw, status, err := c.do(ctx, "POST", "/v1/allow", body, &ans)
		if err != nil {
			return fail("%v", err)
		}
		if status != http.StatusCreated {
			return fail("allow %s: %s", params[0], apiError(status, raw))
		}
		exp := "no expiry"
		if ans.Until != "" {
			exp = "until " + ans.Until
		}
		fmt.Fprintf(stdout, "allowlisted %s (%s)", ans.Value, exp)
		if len(ans.Lifted) > 0 {
			fmt.Fprintf(stdout, "; lifted the blocks of %s", strings.Join(ans.Lifted, ", "))
		}
		fmt.Fprintln(stdout)
	}
	return exitClean
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("event API: %v", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, resp.StatusCode, fmt.Errorf("event API answer: %v", err)
		}
	}
	return raw, resp.StatusCode, nil
}

// apiError renders an API error answer: its "error" text, and the field.
func apiError(status int, raw []byte) string {
	var e struct{ Error, Field string }
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return fmt.Sprintf("%d %s: %s", status, http.StatusText(status), e.Error)
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
