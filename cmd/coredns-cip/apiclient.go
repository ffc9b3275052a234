package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// eventAPIClient calls the event API of a running coredns-cip.
type eventAPIClient struct {
	base, token string
	http        *http.Client
}

// newEventAPIClient checks the API's base URL (--api), reads its bearer
// token: from files.token (--token-file), else $CIP_TOKEN_FILE, else
// $CIP_TOKEN, and for https the TLS files (apiTransport).
func newEventAPIClient(api string, files apiFiles, getenv func(string) string) (*eventAPIClient, error) {
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--api: %q is not http(s)://host:port", api)
	}
	tr, err := apiTransport(u.Scheme, files, getenv)
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(getenv("CIP_TOKEN"))
	if tf := firstNonEmpty(files.token, getenv("CIP_TOKEN_FILE")); tf != "" {
		data, err := os.ReadFile(tf)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %v", err)
		}
		token = strings.TrimSpace(string(data))
	}
	return &eventAPIClient{base: strings.TrimRight(api, "/"), token: token, http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

// Retries of a request the API answered 429 (its token's rate limit), each
// after the answer's Retry-After, at most maxRetryAfter.
const (
	retries429    = 3
	maxRetryAfter = 30 * time.Second
)

// do sends a request and decodes a 2xx JSON answer into out (if not nil).
// A 429 is retried after its Retry-After, up to retries429 times.
func (c *eventAPIClient) do(ctx context.Context, method, path string, body, out any) ([]byte, int, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, 0, err
		}
	}
	for try := 0; ; try++ {
		raw, status, wait, err := c.send(ctx, method, path, data)
		if err != nil || status != http.StatusTooManyRequests || try == retries429 {
			if err == nil && out != nil && status/100 == 2 {
				if err := json.Unmarshal(raw, out); err != nil {
					return raw, status, fmt.Errorf("event API answer: %v", err)
				}
			}
			return raw, status, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return raw, status, ctx.Err()
		}
	}
}

// send sends one request with body data (JSON, if not nil) and returns
// the answer, and for a 429 how long its Retry-After asks to wait.
func (c *eventAPIClient) send(ctx context.Context, method, path string, data []byte) ([]byte, int, time.Duration, error) {
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, 0, 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("event API: %v%s", errors.Unwrap(err), tlsHint(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, resp.StatusCode, 0, err
	}
	wait := time.Second
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
		wait = min(time.Duration(secs)*time.Second, maxRetryAfter)
	}
	return raw, resp.StatusCode, wait, nil
}

// apiError renders an API error answer: its "error" text, and the field.
func apiError(status int, raw []byte) string {
	var e struct{ Error, Field string }
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		// The text may quote what a client sent, or a name from the network.
		return fmt.Sprintf("%d %s: %s", status, http.StatusText(status), textsafe.Clean(e.Error))
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

// statusError is an API answer other than 2xx, after any 429 retries.
type statusError struct {
	op     string // "GET /v1/decisions/cip-…"
	status int
	raw    []byte
}

func (e *statusError) Error() string { return e.op + ": " + apiError(e.status, e.raw) }

// call sends a request to path with query q and JSON body (if not nil),
// and returns a 2xx answer as it came, or a *statusError.
func (c *eventAPIClient) call(ctx context.Context, method, path string, q url.Values, body any) (json.RawMessage, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	raw, status, err := c.do(ctx, method, path, body, nil)
	switch {
	case err != nil:
		return nil, err
	case status/100 != 2:
		return nil, &statusError{op: method + " " + strings.SplitN(path, "?", 2)[0], status: status, raw: raw}
	}
	return raw, nil
}

// getJSON GETs path with query q and decodes the answer into out.
func (c *eventAPIClient) getJSON(ctx context.Context, path string, q url.Values, out any) (json.RawMessage, error) {
	raw, err := c.call(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("GET %s: the answer is not what the API gives: %v", path, err)
	}
	return raw, nil
}

// maxPage is the largest page the API gives (?limit=, at most 1000).
const maxPage = 1000

// listAll GETs the list at path with the filters in q, following
// next_cursor until the API has no more or limit items (0: no limit) are
// in. key names the list in the page object ("decisions"). It returns the
// items as the API sent them, and whether the API had more than limit.
func (c *eventAPIClient) listAll(ctx context.Context, path string, q url.Values, key string, limit int) ([]json.RawMessage, bool, error) {
	q = cloneValues(q)
	items := []json.RawMessage{}
	seen := map[string]bool{}
	for {
		page := maxPage
		if limit > 0 {
			page = min(page, limit-len(items))
		}
		q.Set("limit", strconv.Itoa(page))
		var ans map[string]json.RawMessage
		if _, err := c.getJSON(ctx, path, q, &ans); err != nil {
			return nil, false, err
		}
		var got []json.RawMessage
		var next string
		if err := json.Unmarshal(ans[key], &got); err != nil {
			return nil, false, fmt.Errorf("GET %s: %q is not a list: %v", path, key, err)
		}
		if raw, ok := ans["next_cursor"]; ok {
			if err := json.Unmarshal(raw, &next); err != nil {
				return nil, false, fmt.Errorf("GET %s: next_cursor is not a string: %v", path, err)
			}
		}
		items = append(items, got...)
		switch {
		case next == "":
			return items, false, nil
		case limit > 0 && len(items) >= limit:
			return items[:limit], true, nil
		case seen[next] || len(got) == 0:
			// A server that does not move on would keep the CLI here forever.
			return nil, false, fmt.Errorf("GET %s: the API gave the cursor %q again or an empty page with a cursor", path, textsafe.Clean(next))
		}
		seen[next] = true
		q.Set("cursor", next)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}
