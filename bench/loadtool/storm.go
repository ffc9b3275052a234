package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// loopbackURL checks that u is an http URL on a loopback IP:PORT.
func loopbackURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return "", fmt.Errorf("%q: want http://IP:PORT", u)
	}
	if err := loopbackHostPort(p.Host); err != nil {
		return "", err
	}
	return strings.TrimSuffix(u, "/"), nil
}

func httpClient(conc int) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true},
	}
}

// eventAnswer is what POST /v1/events answers (the fields this tool reads).
type eventAnswer struct {
	ID          string `json:"id"`
	Backtracked int    `json:"backtracked"`
	Queued      int    `json:"queued"`
	Cached      int    `json:"cached"`
	Dropped     int    `json:"dropped"`
	Found       []struct {
		IP     netip.Addr `json:"ip"`
		Result string     `json:"result"`
	} `json:"found"`
}

// runStorm posts -events events as fast as -concurrency connections allow:
// the first for -loaded (the client dnsperf sends from, so its live answers
// become tagged too), the others for -clients primed loopback clients. It
// writes every IP found in the events' windows (and sent for validation) to
// -found, one per line, for runVerdicts.
func runStorm(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	api := fs.String("api", "", "event API base `URL` (loopback)")
	n := fs.Int("events", 1000, "events to post, each for a distinct client")
	loaded := fs.String("loaded", "127.0.0.1", "client of the first event (empty: none)")
	first := fs.String("first", "127.1.0.1", "first primed client (the others follow, as prime made them)")
	conc := fs.Int("concurrency", 8, "requests at once")
	typ := fs.String("type", "edr.malware", "event type")
	window := fs.String("window", "5m", "event window")
	watch := fs.String("watch", "30m", "event watch")
	foundPath := fs.String("found", "", "`FILE` to write the windows' IPs to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := loopbackURL(*api)
	if err != nil {
		return err
	}
	var clients []netip.Addr
	if *loaded != "" {
		a, err := netip.ParseAddr(*loaded)
		if err != nil {
			return fmt.Errorf("-loaded: %v", err)
		}
		clients = append(clients, a)
	}
	primed, err := loopbackClients(*first, *n-len(clients))
	if err != nil {
		return err
	}
	clients = append(clients, primed...)

	hc := httpClient(*conc)
	var (
		mu                                   sync.Mutex
		found                                = map[netip.Addr]bool{}
		accepted, failed                     int
		backtracked, queued, cached, dropped int
		firstErr                             error
	)
	jobs := make(chan netip.Addr)
	var wg sync.WaitGroup
	start := time.Now()
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				ans, err := postEvent(hc, base, c, *typ, *window, *watch)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					accepted++
					backtracked += ans.Backtracked
					queued += ans.Queued
					cached += ans.Cached
					dropped += ans.Dropped
					for _, f := range ans.Found {
						if f.Result != "skipped" {
							found[f.IP] = true
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, c := range clients {
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)

	ips := make([]netip.Addr, 0, len(found))
	for ip := range found {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	if *foundPath != "" {
		if err := writeFile(*foundPath, func(w *bufio.Writer) {
			for _, ip := range ips {
				fmt.Fprintln(w, ip)
			}
		}); err != nil {
			return err
		}
	}
	fmt.Printf("events=%d accepted=%d failed=%d elapsed=%.2fs events_per_s=%.0f backtracked=%d queued=%d cached=%d dropped=%d window_ips=%d\n",
		len(clients), accepted, failed, el.Seconds(), float64(accepted)/el.Seconds(), backtracked, queued, cached, dropped, len(ips))
	if failed > 0 {
		return fmt.Errorf("%d events failed, the first with: %v", failed, firstErr)
	}
	return nil
}

func postEvent(hc *http.Client, base string, client netip.Addr, typ, window, watch string) (eventAnswer, error) {
	body, _ := json.Marshal(map[string]string{"client": client.String(), "type": typ, "window": window, "watch": watch, "ref": "loadtest"})
	res, err := hc.Post(base+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		return eventAnswer{}, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return eventAnswer{}, err
	}
	if res.StatusCode != http.StatusAccepted {
		return eventAnswer{}, fmt.Errorf("event for %s: %s: %s", client, res.Status, bytes.TrimSpace(data))
	}
	var ans eventAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return eventAnswer{}, fmt.Errorf("event for %s: %v", client, err)
	}
	return ans, nil
}

// runVerdicts asks GET /v1/verdicts/{ip} for every IP of -ips until each
// has a verdict or -timeout passes, and prints the count by outcome. It
// fails if any IP is left without a verdict.
func runVerdicts(args []string) error {
	fs := flag.NewFlagSet("verdicts", flag.ContinueOnError)
	api := fs.String("api", "", "event API base `URL` (loopback)")
	ipsPath := fs.String("ips", "", "`FILE` of IPs, one per line")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for every verdict")
	conc := fs.Int("concurrency", 8, "requests at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base, err := loopbackURL(*api)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(*ipsPath)
	if err != nil {
		return err
	}
	var pending []netip.Addr
	for _, l := range strings.Fields(string(data)) {
		ip, err := netip.ParseAddr(l)
		if err != nil {
			return fmt.Errorf("%s: %v", *ipsPath, err)
		}
		pending = append(pending, ip)
	}
	total := len(pending)
	hc := httpClient(*conc)
	outcomes := map[string]int{}
	start := time.Now()
	deadline := start.Add(*timeout)
	for len(pending) > 0 {
		var mu sync.Mutex
		var left []netip.Addr
		var firstErr error
		jobs := make(chan netip.Addr)
		var wg sync.WaitGroup
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ip := range jobs {
					outcome, err := getVerdict(hc, base, ip)
					mu.Lock()
					switch {
					case err != nil:
						if firstErr == nil {
							firstErr = err
						}
						left = append(left, ip)
					case outcome == "":
						left = append(left, ip)
					default:
						outcomes[outcome]++
					}
					mu.Unlock()
				}
			}()
		}
		for _, ip := range pending {
			jobs <- ip
		}
		close(jobs)
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		pending = left
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, outcomes[k]))
	}
	fmt.Printf("ips=%d with_verdict=%d missing=%d %s waited=%.1fs\n",
		total, total-len(pending), len(pending), strings.Join(parts, " "), time.Since(start).Seconds())
	if len(pending) > 0 {
		return fmt.Errorf("%d IPs without a verdict after %s, e.g. %s", len(pending), *timeout, pending[0])
	}
	return nil
}

// getVerdict returns ip's verdict outcome, or "" if it has none yet.
func getVerdict(hc *http.Client, base string, ip netip.Addr) (string, error) {
	res, err := hc.Get(base + "/v1/verdicts/" + ip.String())
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	switch res.StatusCode {
	case http.StatusNotFound:
		return "", nil
	case http.StatusOK:
		var v struct {
			Outcome string `json:"outcome"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.Outcome == "" {
			return "", fmt.Errorf("verdict of %s: unexpected answer %s", ip, bytes.TrimSpace(data))
		}
		return v.Outcome, nil
	}
	return "", errors.New("verdict of " + ip.String() + ": " + res.Status)
}
