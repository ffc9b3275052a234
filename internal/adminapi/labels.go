package adminapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// Bounds on the labels an event keeps from the fields the API does not
// know. SIEM and EDR senders add their own fields (a rule name, a host, a
// nested alert); they are kept so an analyst sees them in the report and
// the audit log, but bounded, since the Store keeps events in memory.
const (
	MaxLabels     = 16  // labels kept per event; the rest are dropped and counted
	MaxLabelKey   = 64  // characters in a label's name; a longer one is dropped and counted
	MaxLabelValue = 256 // characters in a label's value; a longer one is cut, ending in "…"
)

// knownFields are the event's own fields. encoding/json matches them
// without regard to case, so a label is a field none of them folds to.
var knownFields = []string{"client", "type", "at", "window", "watch", "ref", "severity"}

// labelsOf keeps the fields of an event object that are not its own as
// labels: the first MaxLabels in the order of their names, their values as
// text (a string as it is, a number, boolean or nested object or array as
// its compact JSON), sanitised and cut at MaxLabelValue characters. A null
// is an absent field. It returns how many were dropped.
func labelsOf(fields map[string]json.RawMessage) (map[string]string, int) {
	keys := make([]string, 0, len(fields))
	for k, raw := range fields {
		known := slices.ContainsFunc(knownFields, func(f string) bool { return strings.EqualFold(f, k) })
		if !known && !absent(raw) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, 0
	}
	slices.Sort(keys)
	labels := make(map[string]string, min(len(keys), MaxLabels))
	dropped := 0
	for _, k := range keys {
		name := textsafe.Clean(k)
		if name == "" || utf8.RuneCountInString(name) > MaxLabelKey || len(labels) == MaxLabels {
			dropped++
			continue
		}
		labels[name] = cut(textsafe.Clean(labelValue(fields[k])), MaxLabelValue)
	}
	return labels, dropped
}

// labelValue renders a JSON value as text.
func labelValue(raw json.RawMessage) string {
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// cut shortens s to at most n characters, the last being "…" when it cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// Severities, least to most severe.
var severities = []string{"info", "low", "medium", "high", "critical"}

// parseSeverity takes a name (info, low, medium, high, critical; any case;
// "informational" is info) or a number from 0 to 10, as a JSON number or
// string, mapped as CVSS scores are: 0 info, below 4 low, below 7 medium,
// below 9 high, else critical. The name is what is kept.
func parseSeverity(raw json.RawMessage) (string, error) {
	if absent(raw) {
		return "", nil
	}
	text := string(raw)
	if raw[0] == '"' {
		s, err := parseString("severity", raw)
		if err != nil {
			return "", err
		}
		text = strings.ToLower(strings.TrimSpace(s))
		if text == "informational" {
			text = "info"
		}
		if slices.Contains(severities, text) {
			return text, nil
		}
	}
	score, err := strconv.ParseFloat(text, 64)
	if err != nil || !(score >= 0 && score <= 10) { // NaN too
		return "", errField("severity", "%s is not one of %s or a number from 0 to 10", textsafe.Clean(cut(string(raw), MaxTypeLength)), strings.Join(severities, ", "))
	}
	switch {
	case score == 0:
		return "info", nil
	case score < 4:
		return "low", nil
	case score < 7:
		return "medium", nil
	case score < 9:
		return "high", nil
	}
	return "critical", nil
}
