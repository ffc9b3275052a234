package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// A work class of the server's CPU samples in a storm: the first class
// whose marker is in a sample's call chain takes the sample.
type workClass struct {
	name    string
	markers []string
}

// stormClasses tells the storm's work from DNS. The order matters: an
// event's handler runs DNS-like code (the window, Submit) under
// net/http's conn.serve, and a DNS query's Submit is DNS's cost of a
// tagged client.
var stormClasses = []workClass{
	{"events", []string{"net/http.(*conn).serve"}},
	{"validation", []string{"validate.(*Queue).work", "golang.org/x/sync/singleflight", "criminalip.(*Client)", "net/http.(*persistConn)"}},
	{"gc", []string{"runtime.gcBgMarkWorker"}},
	{"dns: submit", []string{"validate.(*Queue).SubmitAt"}},
	{"dns", []string{"miekg/dns.(*Server)", "dnsserver.(*Server)", "caddy.startServers"}},
}

// runPerfSplit reads `perf script -F time,ip,sym` output and prints, per
// whole second, the share of the samples in each work class, and over all.
// A sample in no class (the scheduler, the kernel's softirqs on no Go
// stack) is "other".
func runPerfSplit(args []string) error {
	fs := flag.NewFlagSet("perfsplit", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	secs, err := splitSamples(in)
	if err != nil {
		return err
	}
	if len(secs) == 0 {
		return fmt.Errorf("no samples")
	}
	printSplit(os.Stdout, secs)
	return nil
}

// second is one second's samples by class (the last one "other").
type second struct {
	at     int64
	counts []int
}

func splitSamples(r io.Reader) ([]*second, error) {
	by := map[int64]*second{}
	var cur *second
	var stack []string
	flush := func() {
		if cur != nil {
			cur.counts[classify(stack)]++
		}
		stack = stack[:0]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case line[0] != ' ' && line[0] != '\t' && strings.HasSuffix(trimmed, ":"):
			flush()
			t, err := strconv.ParseFloat(strings.TrimSuffix(trimmed, ":"), 64)
			if err != nil {
				return nil, fmt.Errorf("sample header %q: %v", trimmed, err)
			}
			at := int64(t)
			if by[at] == nil {
				by[at] = &second{at: at, counts: make([]int, len(stormClasses)+1)}
			}
			cur = by[at]
		default:
			stack = append(stack, trimmed)
		}
	}
	flush()
	secs := make([]*second, 0, len(by))
	for _, s := range by {
		secs = append(secs, s)
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].at < secs[j].at })
	return secs, sc.Err()
}

func classify(stack []string) int {
	for i, c := range stormClasses {
		for _, f := range stack {
			for _, m := range c.markers {
				if strings.Contains(f, m) {
					return i
				}
			}
		}
	}
	return len(stormClasses)
}

func printSplit(w io.Writer, secs []*second) {
	names := []string{"second", "samples"}
	for _, c := range stormClasses {
		names = append(names, c.name+" %")
	}
	names = append(names, "other %")
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	total := &second{counts: make([]int, len(stormClasses)+1)}
	for i, s := range secs {
		fmt.Fprint(w, splitRow(strconv.Itoa(i+1), s.counts))
		for k, n := range s.counts {
			total.counts[k] += n
		}
	}
	fmt.Fprint(w, splitRow("all", total.counts))
}

func splitRow(label string, counts []int) string {
	n := 0
	for _, c := range counts {
		n += c
	}
	row := fmt.Sprintf("| %s | %d |", label, n)
	for _, c := range counts {
		row += fmt.Sprintf(" %.1f |", 100*float64(c)/float64(max(n, 1)))
	}
	return row + "\n"
}
