package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// runPorts prints n distinct ports that are free on 127.0.0.1 for TCP and
// UDP both (a DNS server binds both), one per line.
func runPorts(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: loadtool ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 64 {
		return fmt.Errorf("the port count must be 1-64, got %q", args[0])
	}
	var held []func()
	defer func() {
		for _, c := range held {
			c()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n && tries < 100*n; tries++ {
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			l.Close()
			continue
		}
		held = append(held, func() { l.Close(); u.Close() })
		ports = append(ports, port)
	}
	if len(ports) < n {
		return fmt.Errorf("found only %d free ports", len(ports))
	}
	for _, p := range ports {
		fmt.Println(p)
	}
	return nil
}

// loopbackClients returns n client addresses from first on, inside
// 127.0.0.0/8, skipping those ending in .0 and .255.
func loopbackClients(first string, n int) ([]netip.Addr, error) {
	a, err := netip.ParseAddr(first)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return nil, fmt.Errorf("first client %q must be an IPv4 loopback address", first)
	}
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		if !a.IsLoopback() {
			return nil, fmt.Errorf("%d clients from %s leave 127.0.0.0/8", n, first)
		}
		if b := a.As4(); b[3] != 0 && b[3] != 255 {
			out = append(out, a)
		}
		a = a.Next()
	}
	return out, nil
}

// loopbackHostPort checks that addr (HOST:PORT or a URL's host) is on loopback.
func loopbackHostPort(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want IP:PORT: %v", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: this tool only sends to loopback", ap.Addr())
	}
	return nil
}

type question struct {
	name  string
	qtype uint16
}

// readQuestions reads dnsperf-style lines: NAME TYPE.
func readQuestions(path string) ([]question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs []question
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		t, ok := dns.StringToType[strings.ToUpper(fields[1])]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
		}
		qs = append(qs, question{dns.Fqdn(fields[0]), t})
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return qs, sc.Err()
}

// runPrime sends -per queries from each of -clients loopback source
// addresses, so that many clients have answers in their windows, the way
// dnsperf (one source address) cannot.
func runPrime(args []string) error {
	fs := flag.NewFlagSet("prime", flag.ContinueOnError)
	server := fs.String("server", "", "DNS server `IP:PORT` (loopback)")
	clients := fs.Int("clients", 1000, "source addresses")
	first := fs.String("first", "127.1.0.1", "first source `IP` (loopback; the next ones follow)")
	per := fs.Int("per", 10, "queries per client, names drawn at random")
	names := fs.String("names", "", "`FILE` of NAME TYPE lines to draw from")
	conc := fs.Int("concurrency", 16, "clients at once")
	seed := fs.Uint64("seed", 2, "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackHostPort(*server); err != nil {
		return err
	}
	srv := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(*server))
	addrs, err := loopbackClients(*first, *clients)
	if err != nil {
		return err
	}
	qs, err := readQuestions(*names)
	if err != nil {
		return err
	}

	start := time.Now()
	var sent, answered, failedClients atomic.Int64
	var firstErr atomic.Value
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := range *conc {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(*seed, uint64(w)))
			buf := make([]byte, 4096)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(addrs) {
					return
				}
				n, err := primeClient(addrs[i], srv, qs, *per, rng, buf)
				sent.Add(int64(*per))
				answered.Add(int64(n))
				if err != nil {
					failedClients.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("clients=%d sent=%d answered=%d failed_clients=%d elapsed=%.1fs qps=%.0f\n",
		len(addrs), sent.Load(), answered.Load(), failedClients.Load(), el.Seconds(), float64(answered.Load())/el.Seconds())
	if e := firstErr.Load(); e != nil && failedClients.Load() > int64(len(addrs))/100 {
		return fmt.Errorf("%d clients failed, the first with: %v", failedClients.Load(), e)
	}
	return nil
}

// primeClient sends per queries from src to srv, pipelined, and counts the
// answers; unanswered queries are sent again once.
func primeClient(src netip.Addr, srv *net.UDPAddr, qs []question, per int, rng *rand.Rand, buf []byte) (int, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: src.AsSlice()})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	pending := map[uint16][]byte{}
	for range per {
		q := qs[rng.IntN(len(qs))]
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		for m.Id = dns.Id(); pending[m.Id] != nil; m.Id = dns.Id() {
		}
		wire, err := m.Pack()
		if err != nil {
			return 0, err
		}
		pending[m.Id] = wire
	}
	answered := 0
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		for _, wire := range pending {
			if _, err := conn.WriteToUDP(wire, srv); err != nil {
				return answered, err
			}
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for len(pending) > 0 {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				break // timeout: send what is left again
			}
			if n >= 2 {
				id := uint16(buf[0])<<8 | uint16(buf[1])
				if _, ok := pending[id]; ok {
					delete(pending, id)
					answered++
				}
			}
		}
	}
	if len(pending) > 0 {
		return answered, fmt.Errorf("client %s: %d queries unanswered", src, len(pending))
	}
	return answered, nil
}
