// Package logfmt writes the log lines that carry fields, such as
// cipvalidate's decision lines, in the server's log format.
//
// The format is CoreDNS's own: `coredns-cip -log-format text|json` is the
// flag coremain registers, and in json mode CoreDNS's log package (clog)
// writes every line of every plugin, and of the standard library's logger,
// as one JSON object: {"time","level","msg","plugin"}. What clog cannot do is
// give a line real fields: a plugin's Infof puts its key=value text in msg.
// Info here does: in json mode its fields are members of the object, in text
// mode the line is the text, byte for byte as a plain Infof would write it.
package logfmt

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
)

// Info writes an info line of plugin, whose logger is p: text in text mode;
// in json mode an object with msg, the plugin's name and attrs as members
// (the encoder escapes them, so network text in attrs needs no cleaning).
func Info(p clog.P, plugin, msg, text string, attrs ...slog.Attr) {
	if !clog.IsJSON() {
		p.Info(text)
		return
	}
	clog.InfoAttrs(msg, append([]slog.Attr{slog.String("plugin", plugin)}, attrs...)...)
}

// Decision is a cipvalidate `decision` line: an answer rewritten (or, in
// monitor mode, that would have been). A first rewrite's line has Scope and
// Reasons; the line aggregating the repeats of one has Repeated (> 0) and
// Since, the time of the first.
type Decision struct {
	Decision, Client, Qname, Qtype, IP, Action, Via string

	Scope   string
	Reasons []string

	Repeated int
	Since    time.Time
}

// Log writes d as a line of plugin, whose logger is p.
func (d Decision) Log(p clog.P, plugin string) {
	if !clog.IsJSON() { // skip building the attributes
		p.Info(d.text())
		return
	}
	attrs := []slog.Attr{slog.String("decision", d.Decision), slog.String("client", d.Client),
		slog.String("qname", d.Qname), slog.String("qtype", d.Qtype), slog.String("ip", d.IP),
		slog.String("action", d.Action), slog.String("via", d.Via)}
	if d.Repeated > 0 {
		attrs = append(attrs, slog.Int("repeated", d.Repeated), slog.String("since", d.since()))
	} else {
		reasons := d.Reasons
		if reasons == nil {
			reasons = []string{} // [], not null
		}
		attrs = append(attrs, slog.String("scope", d.Scope), slog.Any("reasons", reasons))
	}
	Info(p, plugin, "decision", "", attrs...)
}

// text is d's line in text mode, the format that predates json mode: the
// reasons are quoted (%q), which escapes what came from the network in them.
func (d Decision) text() string {
	head := "decision " + d.Decision + " client=" + d.Client + " qname=" + d.Qname + " qtype=" + d.Qtype +
		" ip=" + d.IP + " action=" + d.Action + " via=" + d.Via
	if d.Repeated > 0 {
		return head + " repeated=" + strconv.Itoa(d.Repeated) + " since=" + d.since()
	}
	return head + " scope=" + d.Scope + " reasons=" + strconv.Quote(strings.Join(d.Reasons, "; "))
}

func (d Decision) since() string { return d.Since.UTC().Format(time.RFC3339) }
