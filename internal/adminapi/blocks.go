package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/optval"
	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// BlockBackend is the part of a Backend that handles block decisions. A
// Backend that implements it gets the block routes:
//
//	GET    /v1/blocks              active blocks
//	DELETE /v1/blocks/{ip}         unblock everywhere (?on_behalf_of=&reason=)
//	POST   /v1/allow               {"value","until","reason","on_behalf_of","force"}
//	GET    /v1/allow               the allowlist
//	DELETE /v1/allow/{value}       remove a dynamic entry
//	GET    /v1/blocklist.txt       External Dynamic List, one IP (or range CIDR) per line
type BlockBackend interface {
	Blocks() []BlockView
	// Unblock lifts ip's block in every sink; false if it was not blocked.
	Unblock(ip netip.Addr, actor, why string) (Unblocked, bool)
	// Allow adds an allowlist entry; an error names what is wrong with the
	// value.
	Allow(req AllowRequest) (Allowed, error)
	Allowlist() []blocks.Allow
	// RemoveAllow removes a dynamic entry; false if there is none.
	RemoveAllow(value, actor string) bool
	// Blocklist is the IPs to publish, sorted.
	Blocklist() []netip.Addr
}

// BlockView is a block as GET /v1/blocks shows it.
type BlockView struct {
	blocks.Block
	TTLSeconds       int64 `json:"ttl_seconds"`
	RemainingSeconds int64 `json:"remaining_seconds"`
}

// Unblocked is the answer to DELETE /v1/blocks/{ip}.
type Unblocked struct {
	blocks.Block
	Unblocked bool   `json:"unblocked"`
	Actor     string `json:"actor"`
	Why       string `json:"why,omitempty"`
}

// Allowed is the answer to POST /v1/allow: the entry and the IPs whose
// blocks it lifted.
type Allowed struct {
	blocks.Allow
	Lifted []netip.Addr `json:"lifted"`
}

// AllowRequest is a POST /v1/allow body, checked.
type AllowRequest struct {
	Value  string
	Until  time.Time // zero: no expiry
	Reason string
	// Actor is who the audit log names (actorOf): the token's name, with
	// the person an operator acts for.
	Actor string
	// Force accepts an entry broader than blocks.Allow.TooBroad allows.
	Force bool
}

// MaxAllowFor bounds an allowlist entry's lifetime given as a duration.
const MaxAllowFor = 366 * 24 * time.Hour

func (s *Server) blockRoutes(mux *http.ServeMux) {
	bb, ok := s.cfg.Backend.(BlockBackend)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/blocks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, bb.Blocks())
	})
	mux.HandleFunc("DELETE /v1/blocks/{ip}", func(w http.ResponseWriter, r *http.Request) {
		ip, err := parseIP("ip", r.PathValue("ip"))
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, err)
			return
		}
		actor, ok := requestActor(w, r)
		if !ok {
			return
		}
		why := textsafe.Clean(strings.TrimSpace(r.URL.Query().Get("reason")))
		if len(why) > MaxRefLength*2 {
			writeFieldError(w, http.StatusBadRequest, errField("reason", "longer than %d characters", MaxRefLength*2))
			return
		}
		var b Unblocked
		var unblocked bool
		err = s.durably(func() { b, unblocked = bb.Unblock(ip, actor, why) })
		if !unblocked {
			writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("%s is not blocked", ip)})
			return
		}
		if err != nil {
			writeNotDurable(w, err)
			return
		}
		s.cfg.Logf("events: %s unblocked by %q (%q)", ip, actor, why)
		writeJSON(w, http.StatusOK, b)
	})
	mux.HandleFunc("POST /v1/allow", func(w http.ResponseWriter, r *http.Request) { s.postAllow(bb, w, r) })
	mux.HandleFunc("GET /v1/allow", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, bb.Allowlist())
	})
	mux.HandleFunc("DELETE /v1/allow/{value...}", func(w http.ResponseWriter, r *http.Request) {
		v := r.PathValue("value")
		actor, ok := requestActor(w, r)
		if !ok {
			return
		}
		var removed bool
		err := s.durably(func() { removed = bb.RemoveAllow(v, actor) })
		if !removed {
			writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("%q is not a dynamic allowlist entry", v)})
			return
		}
		if err != nil {
			writeNotDurable(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Value   string `json:"value"`
			Removed bool   `json:"removed"`
		}{v, true})
	})
	mux.HandleFunc("GET "+edlPath, func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		for _, ip := range bb.Blocklist() {
			b.WriteString(ip.String())
			b.WriteByte('\n')
		}
		if rl, ok := bb.(RangeLister); ok {
			for _, p := range rl.BlockedRanges() {
				b.WriteString(p.String())
				b.WriteByte('\n')
			}
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, b.String())
	})
}

// postAllow is POST /v1/allow: an allowlist entry, answered once it is on
// disk.
func (s *Server) postAllow(bb BlockBackend, w http.ResponseWriter, r *http.Request) {
	body, ok := s.readJSONBody(w, r)
	if !ok {
		return
	}
	req, err := decodeAllow(body, s.cfg.Now())
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, err)
		return
	}
	if req.Actor == "" {
		if req.Actor, ok = requestActor(w, r); !ok {
			return
		}
	} else {
		req.Actor = actorOf(r, req.Actor)
	}
	var entry Allowed
	durableErr := s.durably(func() { entry, err = bb.Allow(req) })
	if err != nil {
		writeFieldError(w, http.StatusBadRequest, errField("value", "%v", err))
		return
	}
	if durableErr != nil {
		writeNotDurable(w, durableErr)
		return
	}
	s.cfg.Logf("events: %s allowlisted by %q until %s (%q)", entry.Value, req.Actor, untilText(req.Until), req.Reason)
	writeJSON(w, http.StatusCreated, entry)
}

// edlPath is the External Dynamic List's, the one route that takes a
// token as ?token= (a read token only).
const edlPath = "/v1/blocklist.txt"

// RangeLister is a BlockBackend that also lists the range blocks, which
// the EDL gives as CIDRs after the IPs (firewalls' EDLs take CIDRs).
type RangeLister interface {
	BlockedRanges() []netip.Prefix
}

// readJSONBody checks the content type and size of a JSON POST body.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	return s.readJSONBodyLimit(w, r, s.cfg.MaxBody)
}

func (s *Server) readJSONBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		writeFieldError(w, http.StatusUnsupportedMediaType, err)
		return nil, false
	}
	tooLarge := &fieldError{Field: "body", Msg: fmt.Sprintf("larger than the limit of %d bytes", limit)}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			writeFieldError(w, http.StatusRequestEntityTooLarge, tooLarge)
			return nil, false
		}
		writeFieldError(w, http.StatusBadRequest, errField("body", "could not be read: %v", err))
		return nil, false
	}
	return body, true
}

type allowBody struct {
	Value  json.RawMessage `json:"value"`
	Until  json.RawMessage `json:"until"`
	Reason json.RawMessage `json:"reason"`
	Actor  json.RawMessage `json:"actor"`
	Behalf json.RawMessage `json:"on_behalf_of"`
	Force  json.RawMessage `json:"force"`
}

// decodeAllow checks a POST /v1/allow body. until is an RFC 3339 time or a
// duration from now ("24h").
func decodeAllow(body []byte, now time.Time) (AllowRequest, error) {
	var raw allowBody
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return AllowRequest{}, decodeError(err)
	}
	var req AllowRequest
	var err error
	if req.Value, err = parseString("value", raw.Value); err != nil {
		return req, err
	}
	if req.Value = strings.TrimSpace(req.Value); req.Value == "" {
		return req, errField("value", "is required: an IP, a CIDR or a domain")
	}
	if !absent(raw.Force) {
		if err := json.Unmarshal(raw.Force, &req.Force); err != nil {
			return req, errField("force", "must be true or false, got %s", raw.Force)
		}
	}
	// A value that does not parse is the Backend's to word; a broad one is
	// refused here, before anything is lifted.
	if a, err := blocks.ParseAllow(req.Value); err == nil && !req.Force {
		if err := a.TooBroad(); err != nil {
			return req, errField("value", "%v; send \"force\": true to allow it anyway", err)
		}
	}
	if !absent(raw.Until) {
		s, err := parseString("until", raw.Until)
		if err != nil {
			return req, err
		}
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			if !t.After(now) {
				return req, errField("until", "%s is not in the future", s)
			}
			req.Until = t
		} else if d, err := optval.Duration(s); err == nil {
			if d <= 0 || d > MaxAllowFor {
				return req, errField("until", "duration %s must be positive and at most %s", s, MaxAllowFor)
			}
			req.Until = now.Add(d).Round(0) // no monotonic reading: it is stored and shown
		} else {
			return req, errField("until", "%q is neither an RFC 3339 time nor a duration such as 24h or 30d", s)
		}
	}
	if !absent(raw.Reason) {
		if req.Reason, err = parseString("reason", raw.Reason); err != nil {
			return req, err
		}
		req.Reason = textsafe.Clean(req.Reason)
		if len(req.Reason) > 512 {
			return req, errField("reason", "longer than 512 characters")
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"on_behalf_of", raw.Behalf}, {"actor", raw.Actor}} {
		if absent(f.raw) || req.Actor != "" {
			continue
		}
		if req.Actor, err = parseString(f.name, f.raw); err != nil {
			return req, err
		}
		if req.Actor, err = checkOnBehalfOf(f.name, req.Actor); err != nil {
			return req, err
		}
	}
	return req, nil
}

// untilText is an expiry as log lines show it.
func untilText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
