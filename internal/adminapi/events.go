// Package adminapi is the HTTP admin API of coredns-cip: security events
// are POSTed (validated here) and handed to a Backend that tags the client
// and backtracks its recent answers; connection records, verdicts, tagged
// clients, blocks, the allowlist and the External Dynamic List are served
// and changed through the same Backend, which in production is the decision
// engine (internal/enforce). The package knows nothing of DNS. A bounded
// Store keeps recent events so an analyst can look one up by its id.
package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// Limits on what an event may say. A SIEM forwards alerts late, but a day-old
// alert is history, not an event; a few minutes ahead is clock skew, more is
// a broken sender.
const (
	MaxEventAge   = 24 * time.Hour
	MaxClockSkew  = 5 * time.Minute
	MaxWatch      = 7 * 24 * time.Hour
	MaxTypeLength = 64
	MaxRefLength  = 128
)

// Event is what a POSTed event says, with defaults applied and every field
// validated.
type Event struct {
	Client netip.Addr    // the tagged client; unicast, no zone, IPv4 unmapped
	Type   string        // lower case, 1-64 of [a-z0-9._-], e.g. "edr.malware"
	At     time.Time     // when it happened; the receive time if not given
	Window time.Duration // how far before At to backtrack; > 0
	Watch  time.Duration // how long after At the client stays tagged; 0 = backtrack only
	Ref    string        // optional external reference such as "SIEM-123"
	// Severity is "" (not given), info, low, medium, high or critical.
	Severity string
	// Labels are the fields the API does not know (a SIEM's or EDR's own),
	// kept as text within MaxLabels, MaxLabelKey and MaxLabelValue and
	// sanitised; nil when there are none.
	Labels map[string]string
	// LabelsDropped counts the unknown fields beyond those bounds, not kept.
	LabelsDropped int
}

// MarshalJSON writes durations as Go duration strings ("5m0s"), which the
// API also accepts, instead of nanoseconds that nobody reads.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Client netip.Addr `json:"client"`
		Type   string     `json:"type"`
		At     time.Time  `json:"at"`
		Window string     `json:"window"`
		Watch  string     `json:"watch"`
		Ref    string     `json:"ref,omitempty"`
		// Severity and the labels are what a sender said beyond the
		// event itself, shown so an analyst sees the alert as it came.
		Severity      string            `json:"severity,omitempty"`
		Labels        map[string]string `json:"labels,omitempty"`
		LabelsDropped int               `json:"labels_dropped,omitempty"`
	}{e.Client, e.Type, e.At, e.Window.String(), e.Watch.String(), e.Ref, e.Severity, e.Labels, e.LabelsDropped})
}

// Accepted is the Backend's account of a submitted event.
type Accepted struct {
	ID          string `json:"id"`
	Backtracked int    `json:"backtracked"` // IPs found in the window
	Queued      int    `json:"queued"`      // of those, sent for validation
	Cached      int    `json:"cached"`      // of those, already with a verdict
	Dropped     int    `json:"dropped"`     // of those, not queued (queue full)
	// LabelsDropped counts the event's unknown fields not kept as labels
	// (see Event.Labels); the server sets it.
	LabelsDropped int       `json:"labels_dropped,omitempty"`
	TaggedUntil   time.Time `json:"tagged_until,omitzero"`
	// Covered and Warning are set when the window reaches before the
	// answers still retained: only Covered was searched.
	Covered *Interval `json:"covered,omitempty"`
	Warning string    `json:"warning,omitempty"`
}

// Interval is a span of time, From to To.
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// coverage says what part of ev's window [At-Window, At] the retained
// answers (retain before now; 0: all) cover, and a warning when that is
// not all of it. The window store forgets answers older than retain, so
// an older window would otherwise look silently empty.
func coverage(ev Event, retain time.Duration, now time.Time) (*Interval, string) {
	from := ev.At.Add(-ev.Window)
	kept := now.Add(-retain)
	if retain <= 0 || !from.Before(kept) {
		return nil, ""
	}
	c := &Interval{From: kept, To: ev.At}
	if !c.From.Before(c.To) {
		c.From = c.To
		return c, fmt.Sprintf("the whole window %s to %s is older than the answers retained (%s): nothing could be backtracked",
			from.UTC().Format(time.RFC3339), ev.At.UTC().Format(time.RFC3339), ShortDuration(retain))
	}
	return c, fmt.Sprintf("the window starts at %s, before the answers retained (%s): only %s to %s was backtracked",
		from.UTC().Format(time.RFC3339), ShortDuration(retain), c.From.UTC().Format(time.RFC3339), c.To.UTC().Format(time.RFC3339))
}

// Defaults are the Backend's configured event defaults and limits.
type Defaults struct {
	Window    time.Duration // used when an event gives no window
	Watch     time.Duration // used when an event gives no watch
	MaxWindow time.Duration // how long answers are retained; 0 means no limit
}

// Found is one IP the client resolved in an event's window.
type Found struct {
	IP     netip.Addr `json:"ip"`
	Names  []string   `json:"names,omitempty"`
	Ports  []uint16   `json:"ports,omitempty"`
	First  time.Time  `json:"first_seen"`
	Last   time.Time  `json:"last_seen"`
	Count  int        `json:"count"`
	Result string     `json:"result"` // queued, cached, in_flight or dropped
}

// Backend is what the server drives: in production the decision engine.
// It is called from concurrent requests and must be safe for that.
type Backend interface {
	// Defaults is read on every event, so a reload takes effect at once.
	Defaults() Defaults
	// Submit tags ev.Client and backtracks ev.Window before ev.At. id is
	// the event's id, for the Backend's logs; the server sets Accepted.ID
	// to it whatever Submit returns.
	Submit(ev Event, id string) (Accepted, []Found)
	// Verdict returns the current verdict for ip.
	Verdict(ip netip.Addr) (verdicts.Verdict, bool)
	// Clients returns the clients tagged by an event.
	Clients() []tags.Tag
	// Untag ends an event's tag on ip; false if ip was not tagged by one.
	Untag(ip netip.Addr) bool
}

// Record is a received event as the Store keeps it.
type Record struct {
	ID       string    `json:"id"`
	Event    Event     `json:"event"`
	Received time.Time `json:"received"`
	Accepted Accepted  `json:"accepted"`
	Found    []Found   `json:"found"`
	// By is who posted it: the token's name, or api@ADDRESS without
	// authentication. An events token reads back only its own events.
	By string `json:"by,omitempty"`
}

// fieldError is a 4xx answer's cause. Field names the JSON field (or "body",
// or a header) so a client can point at it without parsing the message, and
// the message starts with the field for a human reading a log.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Msg }

func errField(field, format string, args ...any) error {
	return &fieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// eventRequest holds the raw fields so each one is parsed, and its error
// worded, here rather than by encoding/json, whose messages name Go types.
type eventRequest struct {
	Client   json.RawMessage `json:"client"`
	Type     json.RawMessage `json:"type"`
	At       json.RawMessage `json:"at"`
	Window   json.RawMessage `json:"window"`
	Watch    json.RawMessage `json:"watch"`
	Ref      json.RawMessage `json:"ref"`
	Severity json.RawMessage `json:"severity"`
}

// decodeEvent parses a POST body into an Event, applying d for absent
// durations and now for an absent time. Explicit values are checked against
// the limits; the defaults are the Backend's and are trusted. Fields it
// does not know become labels. Errors are *fieldError.
func decodeEvent(body []byte, d Defaults, now time.Time) (Event, error) {
	var req eventRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return Event{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, errField("body", "unexpected data after the JSON object")
	}
	// A second pass for the unknown fields: the body is a valid object by now.
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return Event{}, decodeError(err)
	}

	var ev Event
	var err error
	if ev.Client, err = parseClient(req.Client); err != nil {
		return Event{}, err
	}
	if ev.Type, err = parseType(req.Type); err != nil {
		return Event{}, err
	}
	if ev.At, err = parseAt(req.At, now); err != nil {
		return Event{}, err
	}
	if ev.Window, err = parseWindow(req.Window, d); err != nil {
		return Event{}, err
	}
	if ev.Watch, err = parseWatch(req.Watch, d); err != nil {
		return Event{}, err
	}
	if ev.Ref, err = parseRef(req.Ref); err != nil {
		return Event{}, err
	}
	if ev.Severity, err = parseSeverity(req.Severity); err != nil {
		return Event{}, err
	}
	ev.Labels, ev.LabelsDropped = labelsOf(all)
	return ev, nil
}

// decodeError rewords encoding/json's errors, which speak of Go types.
func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errField("body", "empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errField("body", "malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return errField("body", "malformed JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		return errField("body", "must be a JSON object, not %s", typ.Value)
	}
	// DisallowUnknownFields (connections, the allowlist) reports only
	// through the text of its error.
	if quoted, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if name, uerr := strconv.Unquote(quoted); uerr == nil {
			return errField(name, "unknown field")
		}
	}
	return errField("body", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// absent treats null like a missing field, as JSON clients often send it.
func absent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func parseString(field string, raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errField(field, "must be a JSON string, got %s", raw)
	}
	return s, nil
}

func parseClient(raw json.RawMessage) (netip.Addr, error) {
	if absent(raw) {
		return netip.Addr{}, errField("client", "required: the client IP address the event is about")
	}
	s, err := parseString("client", raw)
	if err != nil {
		return netip.Addr{}, err
	}
	return parseIP("client", s)
}

// parseIP accepts what a DNS server could see as a client address: a unicast
// IP. IPv4-mapped IPv6 is unmapped so "::ffff:10.1.2.3" and "10.1.2.3" are one
// client. A zone is refused rather than dropped: it would silently become a
// different address.
func parseIP(field, s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errField(field, "%q is not an IP address", s)
	}
	if ip.Zone() != "" {
		return netip.Addr{}, errField(field, "%q has a zone; give the address without %%%s", s, ip.Zone())
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, errField(field, "%s is not a unicast address", ip)
	}
	return ip, nil
}

func parseType(raw json.RawMessage) (string, error) {
	if absent(raw) {
		return "", errField("type", "required, such as \"edr.malware\" or \"phishing.click\"")
	}
	s, err := parseString("type", raw)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", errField("type", "must not be empty")
	}
	if n := utf8.RuneCountInString(s); n > MaxTypeLength {
		return "", errField("type", "%d characters, at most %d", n, MaxTypeLength)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return "", errField("type", "%q may hold only letters, digits, '.', '_' and '-'", s)
		}
	}
	// Lower case so "EDR.Malware" and "edr.malware" count as one type.
	return strings.ToLower(s), nil
}

func parseAt(raw json.RawMessage, now time.Time) (time.Time, error) {
	if absent(raw) {
		return now, nil
	}
	s, err := parseString("at", raw)
	if err != nil {
		return time.Time{}, err
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errField("at", "%q is not an RFC 3339 time such as \"2006-01-02T15:04:05Z\"", s)
	}
	if now.Sub(at) > MaxEventAge {
		return time.Time{}, errField("at", "%s is more than %s in the past", s, ShortDuration(MaxEventAge))
	}
	if at.Sub(now) > MaxClockSkew {
		return time.Time{}, errField("at", "%s is more than %s in the future; check the sender's clock", s, ShortDuration(MaxClockSkew))
	}
	return at, nil
}

func parseWindow(raw json.RawMessage, d Defaults) (time.Duration, error) {
	if absent(raw) {
		return d.Window, nil
	}
	w, err := parseDuration("window", raw)
	if err != nil {
		return 0, err
	}
	if w <= 0 {
		return 0, errField("window", "must be more than 0, got %s", ShortDuration(w))
	}
	if d.MaxWindow > 0 && w > d.MaxWindow {
		return 0, errField("window", "%s is longer than answers are retained (%s)", ShortDuration(w), ShortDuration(d.MaxWindow))
	}
	return w, nil
}

func parseWatch(raw json.RawMessage, d Defaults) (time.Duration, error) {
	if absent(raw) {
		return d.Watch, nil
	}
	w, err := parseDuration("watch", raw)
	if err != nil {
		return 0, err
	}
	if w < 0 {
		return 0, errField("watch", "must not be negative, got %s", ShortDuration(w))
	}
	if w > MaxWatch {
		return 0, errField("watch", "%s is over the maximum of %s (7 days)", ShortDuration(w), ShortDuration(MaxWatch))
	}
	return w, nil
}

// parseDuration takes a duration string ("5m", "1h30m", "7d") or a JSON integer
// of seconds, which is what most SIEM templates can produce.
func parseDuration(field string, raw json.RawMessage) (time.Duration, error) {
	if raw[0] == '"' {
		s, err := parseString(field, raw)
		if err != nil {
			return 0, err
		}
		d, err := optval.Duration(s)
		if err != nil {
			return 0, errField(field, "%q is not a duration such as \"5m\" or \"7d\" or a whole number of seconds", s)
		}
		return d, nil
	}
	secs, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, errField(field, "%s is not a duration such as \"5m\" or a whole number of seconds", raw)
	}
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	if secs > maxSecs || secs < -maxSecs {
		return 0, errField(field, "%d seconds is out of range", secs)
	}
	return time.Duration(secs) * time.Second, nil
}

func parseRef(raw json.RawMessage) (string, error) {
	if absent(raw) {
		return "", nil
	}
	s, err := parseString("ref", raw)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(s); n > MaxRefLength {
		return "", errField("ref", "%d characters, at most %d", n, MaxRefLength)
	}
	// The ref ends up in logs and audit lines; control characters there
	// could forge or hide lines.
	for i, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return "", errField("ref", "non-printable or invalid character at byte %d", i)
		}
	}
	return s, nil
}

// ShortDuration writes d without Go's trailing zero units: "5m" rather
// than "5m0s", "2h" rather than "2h0m0s".
func ShortDuration(d time.Duration) string { return optval.TrimZeroUnits(d) }

// LoadToken reads a bearer token from a file, trimming surrounding
// whitespace and newlines. An empty file is an error; the error never shows
// the content. A group- or world-readable file is not refused: mounted
// secrets (Kubernetes, Docker) are often 0644 inside a private mount, so
// refusing would break common deployments; a caller that wants to warn can
// check the mode itself.
func LoadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("events: token file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("events: token file %s is empty", path)
	}
	return token, nil
}
