package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// pageNames are the templates of templates/, each parsed with the layout.
var pageNames = []string{"login", "overview", "decisions", "decision", "events", "event", "clients", "error"}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// funcs are the templates' helpers. html/template escapes what they
// return; text keeps the text from the network readable as it was sent
// (no bidirectional override that makes a name read backwards, no control
// characters).
var funcs = template.FuncMap{
	"text":     textsafe.Clean,
	"join":     joinText,
	"when":     when,
	"dur":      seconds,
	"path":     url.PathEscape,
	"kind":     timelineKind,
	"trimdot":  func(s string) string { return strings.TrimSuffix(s, ".") },
	"plus":     func(c count) string { return countText(c) },
	"apistate": apiState,
}

// apiStates say what GET /v1/status's API states mean.
var apiStates = map[string]string{
	"ok":      "ok",
	"failing": "failing: errors, timeouts or no answer",
	"bad_key": "the API key is refused",
	"quota":   "out of quota or rate limited",
}

// apiState is an API state as a sentence; one it does not know, as sent.
func apiState(s string) string {
	if text, ok := apiStates[s]; ok {
		return text
	}
	return textsafe.Clean(s)
}

func joinText(list []string) string {
	if len(list) == 0 {
		return "—"
	}
	clean := make([]string, len(list))
	for i, s := range list {
		clean[i] = textsafe.Clean(s)
	}
	return strings.Join(clean, ", ")
}

// when is a time as the console shows it: UTC to the second, as the audit
// log and the API write it.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// seconds is a number of seconds as "1d 2h", "23h 53m", "4m 10s".
func seconds(n int64) string {
	if n <= 0 {
		return "—"
	}
	d, h, m, s := n/86400, n/3600%24, n/60%60, n%60
	switch {
	case d > 0:
		return fmt.Sprintf("%dd %dh", d, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// timelineKinds are the kinds of the contract, each with its style.
var timelineKinds = map[string]bool{"event": true, "verdict": true, "block": true, "rewrite": true, "hook": true, "lift": true, "expire": true}

// timelineKind is a step's kind as a CSS class: one of the contract's or
// "other".
func timelineKind(k string) string {
	if timelineKinds[k] {
		return "k-" + k
	}
	return "k-other"
}

func countText(c count) string {
	if c.More {
		return strconv.Itoa(c.N) + "+"
	}
	return strconv.Itoa(c.N)
}

func itoa(i int) string { return strconv.Itoa(i) }
