package adminapi

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Connection is one firewall or flow record posted to /v1/connections.
type Connection struct {
	Time  time.Time  `json:"time"`
	Src   netip.Addr `json:"src"`
	Dst   netip.Addr `json:"dst"`
	DPort uint16     `json:"dport,omitempty"`
	Proto string     `json:"proto,omitempty"`
}

// ConnBackend is the part of a Backend that takes connection records; a
// Backend that implements it gets POST /v1/connections.
type ConnBackend interface {
	// Connections records the records (all valid) and returns how many
	// were queued for validation right away (tagged source, selective
	// port), for the answer.
	Connections(recs []Connection) (queued int)
}

// MaxConnections bounds the records of one POST /v1/connections, and
// MaxConnectionsBody its size.
const (
	MaxConnections     = 10_000
	MaxConnectionsBody = 4 << 20
)

// connBody is the JSON of one record; fields are checked one by one so a
// bad record is reported without losing the others.
type connBody struct {
	Time  json.RawMessage `json:"time"`
	Src   json.RawMessage `json:"src"`
	Dst   json.RawMessage `json:"dst"`
	DPort json.RawMessage `json:"dport"`
	Proto json.RawMessage `json:"proto"`
}

// RecordError says why one record of a batch was refused.
type RecordError struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

type connAnswer struct {
	Accepted int           `json:"accepted"`
	Rejected int           `json:"rejected"`
	Queued   int           `json:"queued"`
	Errors   []RecordError `json:"errors"`
}

func (s *Server) connRoutes(mux *http.ServeMux) {
	cb, ok := s.cfg.Backend.(ConnBackend)
	if !ok {
		return
	}
	mux.HandleFunc("POST /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readJSONBodyLimit(w, r, max(s.cfg.MaxBody, MaxConnectionsBody))
		if !ok {
			return
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			writeFieldError(w, http.StatusBadRequest, errField("body", "not a JSON array of records {time, src, dst, dport, proto}: %v", err))
			return
		}
		if len(raw) > MaxConnections {
			writeFieldError(w, http.StatusRequestEntityTooLarge, errField("body", "%d records; at most %d per request", len(raw), MaxConnections))
			return
		}
		now := s.cfg.Now().Round(0)
		ans := connAnswer{Errors: []RecordError{}}
		good := make([]Connection, 0, len(raw))
		for i, rec := range raw {
			c, err := decodeConnection(rec, now)
			if err != nil {
				re := RecordError{Index: i, Error: err.Error()}
				if fe, ok := err.(*fieldError); ok {
					re.Field = fe.Field
				}
				ans.Errors = append(ans.Errors, re)
				continue
			}
			good = append(good, c)
		}
		if len(good) > 0 {
			ans.Queued = cb.Connections(good)
		}
		ans.Accepted, ans.Rejected = len(good), len(ans.Errors)
		status := http.StatusOK
		if len(good) == 0 && len(raw) > 0 {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, ans)
	})
}

// decodeConnection checks one record. time is RFC 3339 (default: now) and
// may not be in the future beyond clock skew nor older than MaxEventAge.
func decodeConnection(raw json.RawMessage, now time.Time) (Connection, error) {
	var b connBody
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Connection{}, decodeError(err)
	}
	var c Connection
	var err error
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *netip.Addr
	}{{"src", b.Src, &c.Src}, {"dst", b.Dst, &c.Dst}} {
		if absent(f.raw) {
			return c, errField(f.name, "is required")
		}
		s, err := parseString(f.name, f.raw)
		if err != nil {
			return c, err
		}
		if *f.dst, err = parseIP(f.name, s); err != nil {
			return c, err
		}
	}
	if !absent(b.DPort) {
		var p int
		if err := json.Unmarshal(b.DPort, &p); err != nil || p < 0 || p > 65535 {
			return c, errField("dport", "%s is not a port number (0-65535)", b.DPort)
		}
		c.DPort = uint16(p)
	}
	if !absent(b.Proto) {
		if c.Proto, err = parseString("proto", b.Proto); err != nil {
			return c, err
		}
		c.Proto = strings.ToLower(c.Proto)
		if len(c.Proto) > 16 {
			return c, errField("proto", "longer than 16 characters")
		}
	}
	c.Time = now
	if !absent(b.Time) {
		s, err := parseString("time", b.Time)
		if err != nil {
			return c, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return c, errField("time", "%q is not an RFC 3339 time", s)
		}
		if t.After(now.Add(MaxClockSkew)) {
			return c, errField("time", "%s is in the future", s)
		}
		if now.Sub(t) > MaxEventAge {
			return c, errField("time", "%s is older than %s", s, MaxEventAge)
		}
		c.Time = t
	}
	return c, nil
}
