package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/textsafe"
)

// rows is what a command shows as a table (-o human) or CSV (-o raw):
// a header, then one row per item. Cells may hold text from the network
// (query names, reasons, refs); both writers clean them.
type rows struct {
	header []string
	cells  [][]string
}

func (r *rows) add(cells ...string) { r.cells = append(r.cells, cells) }

// writeTable writes r as columns aligned with spaces. textsafe.Clean
// escapes tabs and line breaks, so a cell cannot shift the columns or
// forge a row, nor move the terminal's cursor.
func writeTable(w io.Writer, r rows) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			io.WriteString(tw, cellText(c))
		}
		io.WriteString(tw, "\n")
	}
	line(r.header)
	for _, c := range r.cells {
		line(c)
	}
	return tw.Flush()
}

func cellText(c string) string {
	if c == "" {
		return "-"
	}
	return textsafe.Clean(c)
}

// writeCSV writes r as CSV (RFC 4180) with the header first. Cells are
// cleaned as in the table, so that one record is one line.
func writeCSV(w io.Writer, r rows) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.header); err != nil {
		return err
	}
	for _, cells := range r.cells {
		clean := make([]string, len(cells))
		for i, c := range cells {
			clean[i] = textsafe.Clean(c)
		}
		if err := cw.Write(clean); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeJSONList writes the items of a list, from every page, as one JSON
// array of the objects as the API sent them.
func writeJSONList(w io.Writer, items []json.RawMessage) error {
	data, err := json.Marshal(items)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// writeJSONValue writes one answer of the API as it came.
func writeJSONValue(w io.Writer, raw json.RawMessage) error {
	_, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(raw)))
	return err
}

// showList writes a list command's answer in the session's format.
func (s *apiSession) showList(items []json.RawMessage, r rows, what string, more bool) error {
	switch s.output {
	case "json":
		return writeJSONList(s.io.stdout, items)
	case "raw":
		return writeCSV(s.io.stdout, r)
	}
	if err := writeTable(s.io.stdout, r); err != nil {
		return err
	}
	fmt.Fprintf(s.io.stdout, "%d %s\n", len(items), what)
	if more {
		fmt.Fprintln(s.io.stdout, "(more on the server: raise --limit, or 0 for all)")
	}
	return nil
}

// decodeItems decodes the items of a list into out, a pointer to a slice.
func decodeItems(items []json.RawMessage, out any) error {
	data, err := json.Marshal(items)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the API's list is not what the API gives: %v", err)
	}
	return nil
}

// ago writes how long before now t was ("5m ago"), or after ("in 3h");
// "" for a zero time.
func ago(now, t time.Time) string {
	switch {
	case t.IsZero():
		return ""
	case t.After(now):
		return "in " + shortDuration(t.Sub(now))
	}
	return shortDuration(now.Sub(t)) + " ago"
}

// shortDuration writes d in its two largest units: 2d3h, 5h12m, 24h, 4m,
// 30s (days from 48h on).
func shortDuration(d time.Duration) string {
	const day = 24 * time.Hour
	two := func(n1 time.Duration, u1 string, n2 time.Duration, u2 string) string {
		if n2 == 0 {
			return fmt.Sprintf("%d%s", n1, u1)
		}
		return fmt.Sprintf("%d%s%d%s", n1, u1, n2, u2)
	}
	switch {
	case d >= 2*day:
		return two(d/day, "d", d%day/time.Hour, "h")
	case d >= time.Hour:
		return two(d/time.Hour, "h", d%time.Hour/time.Minute, "m")
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// csvTime writes t in RFC 3339, "" for a zero time.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// firstFew joins the first n of list with sep, and says how many more.
func firstFew(list []string, n int, sep string) string {
	if len(list) <= n {
		return strings.Join(list, sep)
	}
	return fmt.Sprintf("%s +%d", strings.Join(list[:n], sep), len(list)-n)
}

// joinInts joins numbers with sep.
func joinInts(ns []int, sep string) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, sep)
}
