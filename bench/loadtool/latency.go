package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
)

// latFixture is the fake API's fixture copied for every generated IP: a
// critical score, a suspicious verdict with one reason.
const latFixture = "score_critical.json"

// latFixtureIP is the IP latFixture is written for.
const latFixtureIP = "45.83.0.21"

// runLatFix writes, for the enforcement latency scenario, a fixture
// directory in which each of N public IPs (from -first on) has a suspicious
// report, and a zone file lat.db naming them l0 … lN-1 in loadtest.example.
func runLatFix(args []string) error {
	fs := flag.NewFlagSet("latfix", flag.ContinueOnError)
	dir := fs.String("dir", "", "`DIR` to write fixtures/ and lat.db into")
	src := fs.String("from", "internal/fakeapi/fixtures/"+latFixture, "the suspicious fixture to copy")
	n := fs.Int("n", 2000, "how many IPs")
	first := fs.String("first", "45.84.0.1", "first IP (the others follow)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip, err := netip.ParseAddr(*first)
	if *dir == "" || *n < 1 || *n > 60000 || err != nil || !ip.Is4() {
		return errors.New("need -dir, 1 <= -n <= 60000 and an IPv4 -first")
	}
	body, err := os.ReadFile(*src)
	if err != nil {
		return err
	}
	fixDir := filepath.Join(*dir, "fixtures")
	if err := os.MkdirAll(fixDir, 0o755); err != nil {
		return err
	}
	manifest := map[string]map[string]any{}
	var zone strings.Builder
	fmt.Fprintf(&zone, "$ORIGIN %s\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 192.0.2.53\n", Zone)
	for i := range *n {
		name := fmt.Sprintf("lat%d.json", i)
		b := bytes.ReplaceAll(body, []byte(latFixtureIP), []byte(ip.String()))
		if err := os.WriteFile(filepath.Join(fixDir, name), b, 0o644); err != nil {
			return err
		}
		manifest[name] = map[string]any{"ip": ip.String(), "http_status": []int{200}, "verdict": "suspicious"}
		fmt.Fprintf(&zone, "l%d IN A %s\n", i, ip)
		ip = ip.Next()
	}
	m, err := json.Marshal(map[string]any{"fixtures": manifest})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(fixDir, "manifest.json"), m, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "lat.db"), []byte(zone.String()), 0o644)
}

// latConfig is what runLatency measures.
type latConfig struct {
	server  string // DNS server, loopback
	events  string // admin API base URL, loopback
	ips     int    // suspicious IPs in each client's window
	trials  int
	gap     time.Duration
	fresh   bool // every trial resolves IPs nobody validated yet
	names   int  // names in lat.db
	client  netip.Addr
	timeout time.Duration
}

// runLatency measures, per trial, the time from an event's POST to the last
// nftables element it leads to: a new client resolves -ips names (each a
// suspicious IP), an event tags it, and an nftables monitor (in the network
// namespace the server's hook writes to, which this tool must run in) sees
// each client . ip pair element arrive. With -fresh every trial uses IPs
// nobody resolved before (the API is asked for each); otherwise a first,
// unmeasured trial validates the IPs and the measured ones find their
// verdicts cached. It prints one line of figures in milliseconds.
func runLatency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	var c latConfig
	fs.StringVar(&c.server, "server", "", "DNS server `ADDR` (loopback)")
	fs.StringVar(&c.events, "events", "", "admin API base `URL` (loopback)")
	fs.IntVar(&c.ips, "ips", 10, "suspicious IPs in the window of each event's client")
	fs.IntVar(&c.trials, "trials", 30, "measured events")
	fs.DurationVar(&c.gap, "gap", 0, "pause between trials: events apart rather than a sustained stream, which the CPU budget (validate_cpu) paces")
	fs.BoolVar(&c.fresh, "fresh", false, "resolve IPs nobody validated yet in every trial (default: cached verdicts)")
	fs.IntVar(&c.names, "names", 2000, "names l0 … in the zone (latfix -n)")
	first := fs.String("first-client", "127.3.0.1", "first client address (loopback; the others follow)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "give up on a trial after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if c.client, err = netip.ParseAddr(*first); err != nil || !c.client.IsLoopback() || !c.client.Is4() {
		return fmt.Errorf("-first-client must be an IPv4 loopback address, not %q", *first)
	}
	need := c.ips
	if c.fresh {
		need = c.ips * c.trials
	}
	if c.ips < 1 || c.trials < 1 || need > c.names {
		return fmt.Errorf("need -ips >= 1, -trials >= 1 and enough names (%d needed, -names %d)", need, c.names)
	}
	if err := loopbackHostPort(c.server); err != nil {
		return err
	}
	if c.events, err = loopbackURL(c.events); err != nil {
		return err
	}
	mon, err := newElemMonitor()
	if err != nil {
		return err
	}
	defer mon.close()
	return c.run(mon)
}

func (c latConfig) run(mon *elemMonitor) error {
	var lat []time.Duration
	client := c.client
	for trial := -1; trial < c.trials; trial++ {
		if trial < 0 && c.fresh {
			continue // no warm-up: every trial is cold
		}
		first := 0
		if c.fresh {
			first = trial * c.ips
		}
		d, err := c.trial(mon, client, first)
		if err != nil {
			return fmt.Errorf("trial %d: %w", trial, err)
		}
		if trial >= 0 {
			lat = append(lat, d)
		}
		client = client.Next()
		time.Sleep(c.gap)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	fmt.Printf("ips=%d trials=%d fresh=%v p50=%.1f p90=%.1f p99=%.1f max=%.1f (ms, event POST to last nftables element)\n",
		c.ips, len(lat), c.fresh, q(0.50), q(0.90), q(0.99), ms(lat[len(lat)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// trial resolves names l[first] … from client, posts an event for it and
// waits for every client . ip element.
func (c latConfig) trial(mon *elemMonitor, client netip.Addr, first int) (time.Duration, error) {
	want := make([]netip.Addr, 0, c.ips)
	for i := first; i < first+c.ips; i++ {
		ip, err := resolveFrom(c.server, client, fmt.Sprintf("l%d.%s", i, Zone))
		if err != nil {
			return 0, err
		}
		want = append(want, ip)
	}
	wait := mon.expect(client, want)
	body, _ := json.Marshal(map[string]string{"client": client.String(), "type": "edr.latency", "window": "10m", "watch": "1m"})
	start := time.Now()
	resp, err := http.Post(c.events+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("POST /v1/events: %s", resp.Status)
	}
	select {
	case last := <-wait:
		return last.Sub(start), nil
	case <-time.After(c.timeout):
		return 0, fmt.Errorf("not every element of %s after %v (%d of %d seen)", client, c.timeout, mon.seen(client), len(want))
	}
}

// resolveFrom asks server for name's A record from the source address src.
func resolveFrom(server string, src netip.Addr, name string) (netip.Addr, error) {
	cl := &dns.Client{Net: "udp", Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := cl.Exchange(m, server)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving %s: %w", name, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("resolving %s: no A record (rcode %s)", name, dns.RcodeToString[r.Rcode])
}

// elemMonitor watches nftables for new saddr . daddr (IPv4) elements and
// notes when each arrives.
type elemMonitor struct {
	conn *nftables.Conn
	mon  *nftables.Monitor

	mu      sync.Mutex
	arrived map[[2]netip.Addr]time.Time
	waits   []*elemWait
}

type elemWait struct {
	client netip.Addr
	left   map[netip.Addr]bool
	last   time.Time
	done   chan time.Time
}

func newElemMonitor() (*elemMonitor, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	// Every object, not MonitorObjectElements: the library hands changes
	// over when their generation message arrives, which that filter drops.
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(4096))
	ch, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, fmt.Errorf("nftables monitor: %w", err)
	}
	m := &elemMonitor{conn: conn, mon: mon, arrived: map[[2]netip.Addr]time.Time{}}
	go m.read(ch)
	return m, nil
}

func (m *elemMonitor) close() { m.mon.Close() }

func (m *elemMonitor) read(ch chan *nftables.MonitorEvents) {
	for evs := range ch {
		now := time.Now()
		for _, ev := range evs.Changes {
			if ev.Type != nftables.MonitorEventTypeNewSetElem || ev.Error != nil {
				continue
			}
			elems, _ := ev.Data.([]nftables.SetElement)
			for _, e := range elems {
				if len(e.Key) != 8 { // not a saddr . daddr pair
					continue
				}
				c, _ := netip.AddrFromSlice(e.Key[:4])
				ip, _ := netip.AddrFromSlice(e.Key[4:8])
				m.arrive(c, ip, now)
			}
		}
	}
}

func (m *elemMonitor) arrive(client, ip netip.Addr, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]netip.Addr{client, ip}
	if _, dup := m.arrived[k]; dup {
		return
	}
	m.arrived[k] = at
	m.waits = slices.DeleteFunc(m.waits, func(w *elemWait) bool {
		if w.client != client || !w.left[ip] {
			return false
		}
		delete(w.left, ip)
		w.last = at
		if len(w.left) == 0 {
			w.done <- w.last
			return true
		}
		return false
	})
}

// expect returns a channel that receives the arrival time of the last of
// client's elements for ips.
func (m *elemMonitor) expect(client netip.Addr, ips []netip.Addr) <-chan time.Time {
	w := &elemWait{client: client, left: map[netip.Addr]bool{}, done: make(chan time.Time, 1)}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ip := range ips {
		if at, ok := m.arrived[[2]netip.Addr{client, ip}]; ok {
			if at.After(w.last) {
				w.last = at
			}
			continue
		}
		w.left[ip] = true
	}
	if len(w.left) == 0 {
		w.done <- w.last
		return w.done
	}
	m.waits = append(m.waits, w)
	return w.done
}

func (m *elemMonitor) seen(client netip.Addr) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.arrived {
		if k[0] == client {
			n++
		}
	}
	return n
}
