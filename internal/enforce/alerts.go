package enforce

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/publicip"
	"github.com/coredns-cip/coredns-cip/internal/tags"
	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// An IDS alert record of a `connlog PATH suricata alerts` is an event, as
// if the SOC had POSTed it: its internal endpoint is tagged for the watch
// and its window backtracked. The event's type is "ids." and the
// signature in the characters a type may hold, its ref "sid:SID
// SIGNATURE" (what GET /v1/clients shows), its severity Suricata's mapped
// to the API's names; the signature as logged goes to the audit log as a
// label.

// AlertDedupe is how long after an alert event for a client its further
// alerts only extend the tag: an IDS repeats itself (one alert a packet
// of a C2 beacon), and the window was backtracked a moment ago.
const AlertDedupe = time.Minute

// alertsSeen are the clients of recent alert events.
type alertsSeen struct {
	mu   sync.Mutex
	last map[netip.Addr]time.Time
}

// maxAlertsSeen bounds alertsSeen; past it, entries older than
// AlertDedupe are swept.
const maxAlertsSeen = 4096

// recent reports whether client had an alert event less than AlertDedupe
// before at, and records at as its latest otherwise.
func (s *alertsSeen) recent(client netip.Addr, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[client]; ok && at.Sub(last) < AlertDedupe && !at.Before(last) {
		return true
	}
	if s.last == nil {
		s.last = make(map[netip.Addr]time.Time)
	}
	if len(s.last) >= maxAlertsSeen {
		for c, t := range s.last {
			if at.Sub(t) >= AlertDedupe {
				delete(s.last, c)
			}
		}
	}
	s.last[client] = at
	return false
}

// AlertClient is the internal endpoint of an alert: the source when only
// the destination is public, the destination when only the source is
// (an inbound attack on a server). Both public or both internal: none.
func AlertClient(src, dst netip.Addr) (netip.Addr, bool) {
	src, dst = src.Unmap(), dst.Unmap()
	sp, dp := publicip.Is(src), publicip.Is(dst)
	switch {
	case !sp && dp:
		return src, true
	case sp && !dp:
		return dst, true
	}
	return netip.Addr{}, false
}

// Alert handles an IDS alert record seen at t: it tags the record's
// internal endpoint and backtracks its window as an event would, or, for a
// client with an alert event less than AlertDedupe ago that is still
// tagged, only extends the tag. It returns the event's id ("" when it
// only extended a tag) and whether it tagged.
func (e *Engine) Alert(rec connlog.Record, t time.Time) (string, bool) {
	client, ok := AlertClient(rec.Src, rec.Dst)
	if !ok || client.IsMulticast() || client.IsUnspecified() || client.Zone() != "" {
		return "", false
	}
	now := e.Now()
	if t.After(now) {
		t = now // a sensor's clock ahead of ours must not tag into the future
	}
	ev := alertEvent(rec.Alert, client, t, e.cfg.Window, e.cfg.Watch)
	if e.alerts.recent(client, t) {
		return "", e.extendTag(client, t.Add(ev.Watch), now)
	}
	id := newAlertID()
	acc, _ := e.API().Submit(ev, id)
	return id, !acc.TaggedUntil.IsZero()
}

// extendTag moves the end of client's event tag to until, keeping its ref
// and event; false if client has no event tag (an operator removed it:
// the next alert is a new event).
func (e *Engine) extendTag(client netip.Addr, until, now time.Time) bool {
	cur, ok := e.st.tags.Lookup(client, now)
	if !ok || cur.Reason != tags.ReasonEvent {
		return false
	}
	if !until.After(cur.Until) {
		return true
	}
	var version uint64
	if e.st.fleet != nil {
		version = e.stamp(cur.Version)
	}
	t, ok := e.tagEvent(client, cur.Since, until, cur.Ref, cur.Event, version, now)
	if ok {
		e.shareTag(t)
	}
	return ok
}

// alertEvent is the event an alert makes.
func alertEvent(a connlog.Alert, client netip.Addr, at time.Time, window, watch time.Duration) adminapi.Event {
	sig := textsafe.Clean(a.Signature)
	ev := adminapi.Event{
		Client: client, Type: alertType(a.Signature), At: at, Window: window, Watch: watch,
		Ref: alertRef(a), Severity: alertSeverity(a.Severity),
		Labels: map[string]string{"source": "ids", "signature_id": strconv.FormatUint(a.SignatureID, 10)},
	}
	if sig != "" {
		ev.Labels["signature"] = cutRunes(sig, adminapi.MaxLabelValue)
	}
	return ev
}

// alertType is "ids." and the signature lower-cased, every run of
// characters a type may not hold made one '-', within MaxTypeLength;
// "ids.alert" without a signature.
func alertType(sig string) string {
	var b strings.Builder
	b.WriteString("ids.")
	dash := false
	for _, r := range strings.ToLower(sig) {
		if b.Len() >= adminapi.MaxTypeLength {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' {
			if dash && b.Len() > len("ids.") {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	s := b.String()
	if len(s) > adminapi.MaxTypeLength {
		s = strings.TrimRight(s[:adminapi.MaxTypeLength], "-")
	}
	if s == "ids." {
		return "ids.alert"
	}
	return s
}

// alertRef is "sid:SID SIGNATURE" within MaxRefLength, printable only as
// an event's ref must be.
func alertRef(a connlog.Alert) string {
	ref := "sid:" + strconv.FormatUint(a.SignatureID, 10)
	if a.Signature != "" {
		ref += " " + strings.Map(func(r rune) rune {
			if r == utf8.RuneError || !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, strings.ToValidUTF8(a.Signature, "?"))
	}
	return cutRunes(ref, adminapi.MaxRefLength)
}

// alertSeverity maps Suricata's severity (1 most severe; 0 not given,
// Suricata's default 3) to the API's names.
func alertSeverity(sev int) string {
	switch {
	case sev == 1:
		return "high"
	case sev == 2:
		return "medium"
	}
	return "low"
}

func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func newAlertID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return "ev-" + hex.EncodeToString(b[:])
}
