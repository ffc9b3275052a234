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
func runSummary(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: loadtool summary DNSPERF_OUTPUT")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var (
		lat                     []float64
		intervals               []float64
		qps, avg, stddev        = math.NaN(), math.NaN(), math.NaN()
		completed, lost, rcodes string
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "> "):
			// > RCODE NAME TYPE LATENCY ("T" for a timeout, without latency)
			if len(fields) == 5 {
				if v, err := strconv.ParseFloat(fields[4], 64); err == nil {
					lat = append(lat, v*1000)
				}
			}
		case len(fields) == 2 && strings.HasSuffix(fields[0], ":") && !strings.HasPrefix(line, " "):
			// -S 1: "1795768053.729658: 53275.982455"
			if _, err := strconv.ParseFloat(strings.TrimSuffix(fields[0], ":"), 64); err == nil {
				if v, err := strconv.ParseFloat(fields[1], 64); err == nil {
					intervals = append(intervals, v)
				}
			}
		case strings.HasPrefix(line, "  Queries per second:"):
			qps, _ = strconv.ParseFloat(fields[3], 64)
		case strings.HasPrefix(line, "  Average Latency (s):"):
			avg, _ = strconv.ParseFloat(fields[3], 64)
			avg *= 1000
		case strings.HasPrefix(line, "  Latency StdDev (s):"):
			stddev, _ = strconv.ParseFloat(fields[3], 64)
			stddev *= 1000
		case strings.HasPrefix(line, "  Queries completed:"):
			completed = fields[2]
		case strings.HasPrefix(line, "  Queries lost:"):
			lost = fields[2]
		case strings.HasPrefix(line, "  Response codes:"):
			rcodes = strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(line, "  Response codes:")), " ", "")
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if math.IsNaN(qps) || completed == "" {
		return fmt.Errorf("%s: no dnsperf statistics (did dnsperf fail?)", args[0])
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(p/100*float64(len(lat)))) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	minInterval := math.NaN()
	if len(intervals) > 2 {
		minInterval = slices.Min(intervals[1 : len(intervals)-1])
	} else if len(intervals) > 0 {
		minInterval = slices.Min(intervals)
	}
	fmt.Printf("qps=%.0f avg_ms=%.3f stddev_ms=%.3f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f min1s_qps=%.0f completed=%s lost=%s samples=%d rcodes=%s\n",
		qps, avg, stddev, pct(50), pct(99), pct(99.9), minInterval, completed, lost, len(lat), rcodes)
	return nil
}
