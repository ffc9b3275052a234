package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dnsperfOutput is the shape of `dnsperf -v -S 1` 2.10's output, trimmed.
func dnsperfOutput(qps, completed, noerror, nxdomain int, avg, stddev string, intervals []string, lat []string) string {
	var b strings.Builder
	b.WriteString("DNS Performance Testing Tool\nVersion 2.10.0\n\n[Status] Command line: dnsperf -s 127.0.0.1\n")
	for i, v := range intervals {
		fmt.Fprintf(&b, "17957680%02d.729658: %s\n", i, v)
	}
	for _, l := range lat {
		b.WriteString("> NOERROR h1.loadtest.example A " + l + "\n")
	}
	b.WriteString("> NOERROR h2.loadtest.example A T\n")
	b.WriteString("Statistics:\n\n")
	b.WriteString("  Queries sent:         " + strconv.Itoa(completed) + "\n")
	b.WriteString("  Queries completed:    " + strconv.Itoa(completed) + " (100.00%)\n")
	b.WriteString("  Queries lost:         0 (0.00%)\n\n")
	b.WriteString("  Response codes:       NOERROR " + strconv.Itoa(noerror) + " (90.00%), NXDOMAIN " + strconv.Itoa(nxdomain) + " (10.00%)\n")
	b.WriteString("  Average packet size:  request 38, response 54\n")
	b.WriteString("  Run time (s):         1.000000\n")
	b.WriteString("  Queries per second:   " + strconv.Itoa(qps) + ".000000\n\n")
	b.WriteString("  Average Latency (s):  " + avg + " (min 0.000010, max 0.010000)\n")
	b.WriteString("  Latency StdDev (s):   " + stddev + "\n")
	return b.String()
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func summaryOf(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	var runs []perfRun
	for _, p := range paths {
		r, err := readPerfRun(p)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(mergeRuns(runs).line()) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	return kv
}

func TestSummaryOneRun(t *testing.T) {
	p := writeTemp(t, "a", dnsperfOutput(1000, 1000, 900, 100, "0.002000", "0.001000",
		[]string{"900", "1000", "800", "1100", "500"}, []string{"0.001", "0.002", "0.003", "0.004"}))
	got := summaryOf(t, p)
	want := map[string]string{
		"qps": "1000", "avg_ms": "2.000", "stddev_ms": "1.000", "p50_ms": "2.000", "p99_ms": "4.000",
		"min1s_qps": "800", "completed": "1000", "lost": "0", "samples": "4",
		"rcodes": "NOERROR900(90.00%),NXDOMAIN100(10.00%)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (line %v)", k, got[k], v, got)
		}
	}
}

// Two clients side by side: the qps and codes add up, the latency statistics
// cover both clients' queries, and the lowest second is that of the sum.
func TestSummaryTwoClients(t *testing.T) {
	a := writeTemp(t, "a", dnsperfOutput(1000, 1000, 900, 100, "0.001000", "0.000000",
		[]string{"900", "1000", "800", "1100", "500"}, []string{"0.001", "0.001"}))
	b := writeTemp(t, "b", dnsperfOutput(3000, 3000, 2000, 1000, "0.003000", "0.000000",
		[]string{"2900", "2000", "3000", "3100"}, []string{"0.003", "0.003", "0.003"}))
	got := summaryOf(t, a, b)
	want := map[string]string{
		"qps": "4000", "completed": "4000", "samples": "5",
		// (1000*1 + 3000*3) / 4000 ms; the two means 2 ms apart give a spread
		"avg_ms": "2.500", "stddev_ms": "0.866",
		"p50_ms": "3.000", "p99_ms": "3.000",
		// intervals 3800 3000 3800 4200 500: the inner ones' lowest
		"min1s_qps": "3000",
		"rcodes":    "NOERROR2900(72.50%),NXDOMAIN1100(27.50%)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (line %v)", k, got[k], v, got)
		}
	}
}

func TestSummaryRefusesAFailedRun(t *testing.T) {
	p := writeTemp(t, "a", "Error: could not open datafile\n")
	if _, err := readPerfRun(p); err == nil || !strings.Contains(err.Error(), "no dnsperf statistics") {
		t.Fatalf("err = %v, want one naming the missing statistics", err)
	}
}
