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

// runBuckets compares the one-second qps buckets of two `dnsperf -S 1`
// runs of a pair, the plugin's and its pair's without it, as scenario d's
// target is worded: every one-second bucket of the storm run at 0.90 or
// more of its pair's. It prints one line of key=value pairs:
//
//   - worst_ratio: the plugin run's lowest second over the pair's lowest
//     second (the figure BENCHMARKS.md quoted as 0.67-0.82);
//   - bucket_min and bucket_min_at: the lowest ratio of same-numbered
//     seconds, with/without, and which second (1-based) it was;
//   - buckets_below_90: how many seconds were under 0.90 of their pair's;
//   - buckets: every second's ratio, comma-separated.
//
// As in summary, the first and the last interval are left out: they are
// partial.
func runBuckets(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: loadtool buckets WITH_DNSPERF_OUTPUT WITHOUT_DNSPERF_OUTPUT")
	}
	with, err := readIntervals(args[0])
	if err != nil {
		return err
	}
	without, err := readIntervals(args[1])
	if err != nil {
		return err
	}
	n := min(len(with), len(without))
	if n == 0 {
		return errors.New("no whole one-second intervals in both runs (dnsperf -S 1, at least 3 s)")
	}
	ratios := make([]string, n)
	bucketMin, at, below := math.Inf(1), 0, 0
	for i := range n {
		r := with[i] / without[i]
		ratios[i] = fmt.Sprintf("%.3f", r)
		if r < bucketMin {
			bucketMin, at = r, i+1
		}
		if r < 0.90 {
			below++
		}
	}
	fmt.Printf("worst_ratio=%.3f bucket_min=%.3f bucket_min_at=%d buckets_below_90=%d buckets=%s\n",
		slices.Min(with)/slices.Min(without), bucketMin, at, below, strings.Join(ratios, ","))
	return nil
}

// readIntervals returns the whole one-second qps intervals of a `dnsperf
// -S 1` output: lines "1795768053.729658: 53275.982455", the first and
// the last left out.
func readIntervals(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) != 2 || !strings.HasSuffix(fields[0], ":") || strings.HasPrefix(line, " ") {
			continue
		}
		if _, err := strconv.ParseFloat(strings.TrimSuffix(fields[0], ":"), 64); err != nil {
			continue
		}
		if v, err := strconv.ParseFloat(fields[1], 64); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) < 3 {
		return nil, nil
	}
	return out[1 : len(out)-1], nil
}
