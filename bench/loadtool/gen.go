package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Zone is the generated zone's origin.
const Zone = "loadtest.example."

// suspiciousFixtures are the fake API's fixture IPs with a suspicious verdict.
var suspiciousFixtures = []string{
	"45.83.0.21", "45.83.0.22", "45.83.0.31", "45.83.0.32", "45.83.0.41", "45.83.0.42", "45.83.0.51",
	"45.83.0.52", "45.83.0.53", "45.83.0.61", "45.83.0.62", "45.83.0.71", "45.83.0.81", "45.83.0.82",
}

// Public-looking prefixes, none of them special-purpose and none in the
// fixtures' 45.83.0.0/24: any IP there that is not a fixture is clean for the
// fake API.
var (
	v4Prefixes = [][2]byte{{23, 32}, {104, 18}, {151, 101}, {185, 60}, {91, 198}, {52, 84}, {13, 107}, {142, 250}}
	v6Prefixes = []string{"2606:4700:10::", "2a00:1450:4001::", "2620:1ec:c11::", "2a03:2880:f10c::"}
)

type host struct {
	v4         []netip.Addr
	v6         []netip.Addr
	suspicious netip.Addr // in the mixed zone, the A record instead of v4
}

// runGen writes zone.clean.db and zone.mixed.db (the same names; in the mixed
// zone a share of the hosts point at a suspicious fixture IP instead),
// queries.txt (dnsperf's input, a mix of A, AAAA, CNAME and NXDOMAIN) and
// warm.txt (every name once, so one pass resolves every IP of the zone).
func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	dir := fs.String("dir", "", "output `DIR`")
	names := fs.Int("names", 5000, "host names (each with 1-2 A records, about a third with an AAAA record too)")
	cnames := fs.Int("cnames", 0, "CNAME names (default names/5)")
	queries := fs.Int("queries", 100000, "lines of queries.txt")
	pool4 := fs.Int("pool4", 3000, "distinct public IPv4 addresses the hosts share")
	pool6 := fs.Int("pool6", 600, "distinct public IPv6 addresses the hosts share")
	susp := fs.Float64("suspicious", 0.10, "share of hosts pointing at a suspicious fixture IP in the mixed zone")
	seed := fs.Uint64("seed", 1, "random seed (the files are reproducible)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *names < 10 || *pool4 < 1 || *pool4 > 254*256 || *pool6 < 1 || *susp < 0 || *susp > 1 {
		return fmt.Errorf("need -dir, -names >= 10, 1 <= -pool4 <= 65024, -pool6 >= 1, 0 <= -suspicious <= 1")
	}
	if *cnames == 0 {
		*cnames = *names / 5
	}
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))

	v4 := make([]netip.Addr, *pool4)
	for i := range v4 {
		p := v4Prefixes[i%len(v4Prefixes)]
		n := i / len(v4Prefixes)
		v4[i] = netip.AddrFrom4([4]byte{p[0], p[1], byte(n / 254), byte(n%254 + 1)})
	}
	v6 := make([]netip.Addr, *pool6)
	for i := range v6 {
		v6[i] = netip.MustParseAddr(fmt.Sprintf("%s%x", v6Prefixes[i%len(v6Prefixes)], i/len(v6Prefixes)+1))
	}
	fixtures := make([]netip.Addr, len(suspiciousFixtures))
	for i, s := range suspiciousFixtures {
		fixtures[i] = netip.MustParseAddr(s)
	}

	hosts := make([]host, *names)
	nSusp := int(float64(*names)**susp + 0.5)
	suspIdx := rng.Perm(*names)[:nSusp]
	for i := range hosts {
		// Every pool address is used at least once, then at random.
		h := &hosts[i]
		h.v4 = append(h.v4, v4[i%len(v4)])
		if rng.IntN(10) < 3 {
			h.v4 = append(h.v4, v4[rng.IntN(len(v4))])
		}
		if i < len(v6) || rng.IntN(10) < 3 {
			h.v6 = append(h.v6, v6[i%len(v6)])
		}
	}
	for k, i := range suspIdx {
		hosts[i].suspicious = fixtures[k%len(fixtures)]
	}
	// CNAMEs point at hosts, one in five at another CNAME (a chain of two).
	cnameTarget := make([]string, *cnames)
	for j := range cnameTarget {
		if j > 0 && rng.IntN(5) == 0 {
			cnameTarget[j] = fmt.Sprintf("c%d", rng.IntN(j))
		} else {
			cnameTarget[j] = fmt.Sprintf("h%d", rng.IntN(len(hosts)))
		}
	}

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	for _, mixed := range []bool{false, true} {
		name := "zone.clean.db"
		if mixed {
			name = "zone.mixed.db"
		}
		err := writeFile(filepath.Join(*dir, name), func(w *bufio.Writer) {
			fmt.Fprintf(w, "$ORIGIN %s\n$TTL 300\n", Zone)
			fmt.Fprintf(w, "@ IN SOA ns.%s hostmaster.%s 2026112701 7200 3600 1209600 300\n", Zone, Zone)
			fmt.Fprintf(w, "@ IN NS ns\nns IN A %s\n", v4[0])
			for i, h := range hosts {
				if mixed && h.suspicious.IsValid() {
					fmt.Fprintf(w, "h%d IN A %s\n", i, h.suspicious)
					continue
				}
				for _, a := range h.v4 {
					fmt.Fprintf(w, "h%d IN A %s\n", i, a)
				}
				for _, a := range h.v6 {
					fmt.Fprintf(w, "h%d IN AAAA %s\n", i, a)
				}
			}
			for j, t := range cnameTarget {
				fmt.Fprintf(w, "c%d IN CNAME %s\n", j, t)
			}
		})
		if err != nil {
			return err
		}
	}

	// The query mix: 60% A and 15% AAAA of hosts (about two thirds of
	// the AAAA queries get NODATA), 15% A of CNAMEs, 10% names that do
	// not exist (NXDOMAIN).
	mix := map[string]int{}
	err := writeFile(filepath.Join(*dir, "queries.txt"), func(w *bufio.Writer) {
		for range *queries {
			r := rng.IntN(100)
			var q string
			switch {
			case r < 60:
				q = fmt.Sprintf("h%d.%s A", rng.IntN(len(hosts)), Zone)
				mix["A"]++
			case r < 75:
				q = fmt.Sprintf("h%d.%s AAAA", rng.IntN(len(hosts)), Zone)
				mix["AAAA"]++
			case r < 90:
				q = fmt.Sprintf("c%d.%s A", rng.IntN(len(cnameTarget)), Zone)
				mix["CNAME"]++
			default:
				q = fmt.Sprintf("nx%d.%s A", rng.IntN(1<<20), Zone)
				mix["NXDOMAIN"]++
			}
			fmt.Fprintln(w, q)
		}
	})
	if err != nil {
		return err
	}
	err = writeFile(filepath.Join(*dir, "warm.txt"), func(w *bufio.Writer) {
		for i, h := range hosts {
			fmt.Fprintf(w, "h%d.%s A\n", i, Zone)
			if len(h.v6) > 0 {
				fmt.Fprintf(w, "h%d.%s AAAA\n", i, Zone)
			}
		}
		for j := range cnameTarget {
			fmt.Fprintf(w, "c%d.%s A\n", j, Zone)
		}
	})
	if err != nil {
		return err
	}
	// The names that have an answer, for prime.
	err = writeFile(filepath.Join(*dir, "answered.txt"), func(w *bufio.Writer) {
		for i := range hosts {
			fmt.Fprintf(w, "h%d.%s A\n", i, Zone)
		}
		for j := range cnameTarget {
			fmt.Fprintf(w, "c%d.%s A\n", j, Zone)
		}
	})
	if err != nil {
		return err
	}

	distinct := map[netip.Addr]bool{}
	for _, h := range hosts {
		for _, a := range append(h.v4, h.v6...) {
			distinct[a] = true
		}
	}
	q := float64(*queries) / 100
	fmt.Printf("zone=%s hosts=%d cnames=%d distinct_ips=%d suspicious_hosts=%d queries=%d mix=A:%.0f%%,AAAA:%.0f%%,CNAME:%.0f%%,NXDOMAIN:%.0f%%\n",
		strings.TrimSuffix(Zone, "."), len(hosts), len(cnameTarget), len(distinct), nSusp, *queries,
		float64(mix["A"])/q, float64(mix["AAAA"])/q, float64(mix["CNAME"])/q, float64(mix["NXDOMAIN"])/q)
	return nil
}

func writeFile(path string, fill func(*bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fill(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
