package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// runSummary reads the output of `dnsperf -v -S 1` and prints one line of
// key=value pairs: dnsperf's own statistics (qps, average latency and its
// standard deviation, queries completed and lost) and what dnsperf 2.10 does
// not print: latency percentiles, from the per-query latencies of -v, and
// the lowest one-second qps of -S 1 (first and last interval left out: they
// are partial). Latencies are in milliseconds.
//
// Given several files, the outputs of dnsperf clients run side by side
// against one server (the 2-CPU layout of bench/loadtest.sh), it prints the
// same line for them together: qps, queries and response codes summed, the
// latency statistics over every query, and the one-second qps summed
// interval by interval (the clients start within milliseconds).
func runSummary(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: loadtool summary DNSPERF_OUTPUT [DNSPERF_OUTPUT ...]")
	}
	var runs []perfRun
	for _, path := range args {
		r, err := readPerfRun(path)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	fmt.Println(mergeRuns(runs).line())
	return nil
}

// perfRun is what one dnsperf output (or several merged) says.
type perfRun struct {
	qps, avg, stddev float64 // avg and stddev in ms
	completed, lost  int
	lat              []float64 // per-query latencies, ms
	intervals        []float64 // -S 1 qps, one a second
	rcodes           []rcodeCount
}

type rcodeCount struct {
	code string
	n    int
}

func readPerfRun(path string) (perfRun, error) {
	r := perfRun{qps: math.NaN(), avg: math.NaN(), stddev: math.NaN(), completed: -1}
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		r.parseLine(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if math.IsNaN(r.qps) || r.completed < 0 {
		return r, fmt.Errorf("%s: no dnsperf statistics (did dnsperf fail?)", path)
	}
	return r, nil
}

func (r *perfRun) parseLine(line string) {
	fields := strings.Fields(line)
	switch {
	case strings.HasPrefix(line, "> "):
		// > RCODE NAME TYPE LATENCY ("T" for a timeout, without latency)
		if len(fields) == 5 {
			if v, err := strconv.ParseFloat(fields[4], 64); err == nil {
				r.lat = append(r.lat, v*1000)
			}
		}
	case len(fields) == 2 && strings.HasSuffix(fields[0], ":") && !strings.HasPrefix(line, " "):
		// -S 1: "1795768053.729658: 53275.982455"
		if _, err := strconv.ParseFloat(strings.TrimSuffix(fields[0], ":"), 64); err == nil {
			if v, err := strconv.ParseFloat(fields[1], 64); err == nil {
				r.intervals = append(r.intervals, v)
			}
		}
	case strings.HasPrefix(line, "  Queries per second:"):
		r.qps, _ = strconv.ParseFloat(fields[3], 64)
	case strings.HasPrefix(line, "  Average Latency (s):"):
		r.avg, _ = strconv.ParseFloat(fields[3], 64)
		r.avg *= 1000
	case strings.HasPrefix(line, "  Latency StdDev (s):"):
		r.stddev, _ = strconv.ParseFloat(fields[3], 64)
		r.stddev *= 1000
	case strings.HasPrefix(line, "  Queries completed:"):
		r.completed, _ = strconv.Atoi(fields[2])
	case strings.HasPrefix(line, "  Queries lost:"):
		r.lost, _ = strconv.Atoi(fields[2])
	case strings.HasPrefix(line, "  Response codes:"):
		// "  Response codes:       NOERROR 88914 (89.61%), NXDOMAIN 10306 (10.39%)"
		for i := 2; i+1 < len(fields); i += 3 {
			if n, err := strconv.Atoi(fields[i+1]); err == nil {
				r.rcodes = append(r.rcodes, rcodeCount{fields[i], n})
			}
		}
	}
}

// mergeRuns combines side-by-side runs into one; one run is returned as it is.
func mergeRuns(runs []perfRun) perfRun {
	if len(runs) == 1 {
		return runs[0]
	}
	m := perfRun{}
	var sum, sumSq float64 // of the latencies, from each run's mean and stddev
	for _, r := range runs {
		m.qps += r.qps
		m.completed += r.completed
		m.lost += r.lost
		m.lat = append(m.lat, r.lat...)
		n := float64(r.completed)
		sum += n * r.avg
		sumSq += n * (r.stddev*r.stddev + r.avg*r.avg)
		for i, v := range r.intervals {
			if i < len(m.intervals) {
				m.intervals[i] += v
			} else {
				m.intervals = append(m.intervals, v)
			}
		}
		for _, c := range r.rcodes {
			i := slices.IndexFunc(m.rcodes, func(x rcodeCount) bool { return x.code == c.code })
			if i < 0 {
				m.rcodes = append(m.rcodes, c)
			} else {
				m.rcodes[i].n += c.n
			}
		}
	}
	m.avg, m.stddev = math.NaN(), math.NaN()
	if m.completed > 0 {
		n := float64(m.completed)
		m.avg = sum / n
		m.stddev = math.Sqrt(max(0, sumSq/n-m.avg*m.avg))
	}
	return m
}

// line is the key=value line bench/loadtest.sh reads.
func (r perfRun) line() string {
	lat := slices.Sorted(slices.Values(r.lat))
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(p/100*float64(len(lat)))) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	minInterval := math.NaN()
	if len(r.intervals) > 2 {
		minInterval = slices.Min(r.intervals[1 : len(r.intervals)-1])
	} else if len(r.intervals) > 0 {
		minInterval = slices.Min(r.intervals)
	}
	total := 0
	for _, c := range r.rcodes {
		total += c.n
	}
	var rc []string
	for _, c := range r.rcodes {
		rc = append(rc, fmt.Sprintf("%s%d(%.2f%%)", c.code, c.n, 100*float64(c.n)/float64(max(total, 1))))
	}
	return fmt.Sprintf("qps=%.0f avg_ms=%.3f stddev_ms=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f min1s_qps=%.0f completed=%d lost=%d samples=%d rcodes=%s",
		r.qps, r.avg, r.stddev, pct(50), pct(99), pct(99.9), minInterval, r.completed, r.lost, len(lat), strings.Join(rc, ","))
}
