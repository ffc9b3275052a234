package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// apiError is a non-2xx answer of the API, with its message and the field
// it names.
type apiError struct {
	Status int
	Msg    string
	Field  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// recorder is the in-process ResponseWriter of an API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}
func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

// call sends one request to the API's handler in-process, as the browser's
// request r would reach it (its address, so the API's per-source limits
// and actor apply; its TLS state) with the session's token, and decodes a
// 2xx JSON answer into out (if not nil). body, if not nil, is sent as JSON.
func (c *Console) call(r *http.Request, s *session, method, path string, q url.Values, body, out any) error {
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("console: encoding %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, target, rd)
	if err != nil {
		return fmt.Errorf("console: %s %s: %w", method, path, err)
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	req.RequestURI = target
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s != nil && s.secret != "" {
		req.Header.Set("Authorization", "Bearer "+s.secret)
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status < 200 || rec.status > 299 {
		return decodeAPIError(rec)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("console: the API's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// decodeAPIError reads the API's {"error", "field"} body, or keeps the
// start of whatever else it sent.
func decodeAPIError(rec *recorder) *apiError {
	e := &apiError{Status: rec.status}
	var body struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if json.Unmarshal(rec.body.Bytes(), &body) == nil && body.Error != "" {
		e.Msg, e.Field = body.Error, body.Field
		return e
	}
	msg := strings.TrimSpace(rec.body.String())
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(rec.status)
	}
	e.Msg = msg
	return e
}

// rawCall is call for a route that answers text, such as /healthz.
func (c *Console) rawCall(r *http.Request, method, path string) (int, string) {
	req, err := http.NewRequestWithContext(r.Context(), method, path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Host, req.RemoteAddr, req.TLS, req.RequestURI = r.Host, r.RemoteAddr, r.TLS, path
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, strings.TrimSpace(rec.body.String())
}
