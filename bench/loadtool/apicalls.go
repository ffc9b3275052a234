package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// fakeStats is what the fake API's GET /_fake/stats answers.
type fakeStats struct {
	Calls int            `json:"calls"`
	ByIP  map[string]int `json:"by_ip"`
}

// runAPICalls reports the fake API's calls since its last reset against the
// storm's target, exactly one call per unique public IP (per verdict TTL,
// which outlasts a run): the calls per event and per unique IP, the most any
// IP got, and the window IPs (-found) that got none. It prints one line
// ending in check=PASS or check=FAIL; a FAIL is not an error, the caller
// records it.
func runAPICalls(args []string) error {
	fs := flag.NewFlagSet("apicalls", flag.ContinueOnError)
	api := fs.String("fake", "", "fake Criminal IP API base `URL` (loopback)")
	events := fs.Int("events", 0, "events posted")
	foundPath := fs.String("found", "", "`FILE` of the events' window IPs (storm -found)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := loopbackURL(*api)
	if err != nil {
		return err
	}
	if *events < 1 {
		return fmt.Errorf("need -events >= 1")
	}
	res, err := httpClient(1).Get(base + "/_fake/stats")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var st fakeStats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return fmt.Errorf("/_fake/stats: %w", err)
	}
	perIP, maxPer, repeated := 0, 0, 0
	for _, n := range st.ByIP {
		perIP += n
		maxPer = max(maxPer, n)
		if n > 1 {
			repeated++
		}
	}
	window, uncalled := 0, 0
	if *foundPath != "" {
		ips, err := readIPs(*foundPath)
		if err != nil {
			return err
		}
		window = len(ips)
		for _, ip := range ips {
			if st.ByIP[ip.String()] == 0 {
				uncalled++
			}
		}
	}
	unique := len(st.ByIP)
	check := "PASS"
	if repeated > 0 || uncalled > 0 || st.Calls != perIP {
		check = "FAIL"
	}
	fmt.Printf("events=%d api_calls=%d unique_ips=%d calls_per_event=%.3f calls_per_unique_ip=%.3f max_per_ip=%d ips_called_more_than_once=%d calls_without_ip=%d window_ips=%d window_ips_not_called=%d check=%s\n",
		*events, st.Calls, unique, float64(st.Calls)/float64(*events), ratioOrZero(st.Calls, unique), maxPer, repeated,
		st.Calls-perIP, window, uncalled, check)
	return nil
}

func ratioOrZero(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// readIPs reads one IP a line.
func readIPs(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ips []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ip, err := netip.ParseAddr(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ips = append(ips, ip)
	}
	return ips, sc.Err()
}
