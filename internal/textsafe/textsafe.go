// Package textsafe cleans text that comes from outside (an operator's
// actor or reason, an allowlist value, a name from the network) before it
// reaches a log line, an audit record or a hook: no line breaks that would
// forge a log line, no control characters that would move a terminal's
// cursor, no bidirectional overrides that would make a line read other than
// it is written, and valid UTF-8.
package textsafe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns s with every unsafe rune replaced by its Go escape (a
// newline becomes the two characters \n, U+202E becomes \u202e), so that
// what was sent stays visible without acting on the reader. Invalid UTF-8
// becomes U+FFFD. Safe text is returned as it is, without allocating.
func Clean(s string) string {
	if Safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r) // '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Safe reports whether s holds only valid UTF-8 without unsafe runes.
func Safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		} else if c >= utf8.RuneSelf {
			return safeTail(s[i:])
		}
	}
	return true
}

func safeTail(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unsafeRune(r) {
			return false
		}
	}
	return true
}

// unsafeRune reports control characters (C0, DEL, C1), the line and
// paragraph separators, and the bidirectional formatting characters
// (embeddings, overrides, isolates and marks).
func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	case r == '\u200e' || r == '\u200f' || r == '\u061c':
		return true
	}
	return false
}
