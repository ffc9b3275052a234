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
// queries.txt (dnsperf's input, a mix of A, AAAA, CNAME and NXDOMAIN),
// warm.txt (every name once, so one pass resolves every IP of the zone) and
// answered.txt (the names that have an answer, for prime).
func runGen(args []string) error {
	cfg, err := parseGen(args)
	if err != nil {
		return err
	}
	// One generator, drawn from first by the zone and then by the queries:
	// the files are reproducible only while that order holds.
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	z := buildZone(cfg, rng)
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	if err := z.writeZones(cfg.dir); err != nil {
		return err
	}
	mix, err := z.writeQueries(filepath.Join(cfg.dir, "queries.txt"), cfg.queries, rng)
	if err != nil {
		return err
	}
	if err := z.writeNameLists(cfg.dir); err != nil {
		return err
	}
	z.printSummary(cfg.queries, mix)
	return nil
}

// genConfig holds gen's flags.
type genConfig struct {
	dir                    string
	names, cnames, queries int
	pool4, pool6           int
	suspicious             float64
	seed                   uint64
}

func parseGen(args []string) (genConfig, error) {
	var c genConfig
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", "", "output `DIR`")
	fs.IntVar(&c.names, "names", 5000, "host names (each with 1-2 A records, about a third with an AAAA record too)")
	fs.IntVar(&c.cnames, "cnames", 0, "CNAME names (default names/5)")
	fs.IntVar(&c.queries, "queries", 100000, "lines of queries.txt")
	fs.IntVar(&c.pool4, "pool4", 3000, "distinct public IPv4 addresses the hosts share")
	fs.IntVar(&c.pool6, "pool6", 600, "distinct public IPv6 addresses the hosts share")
	fs.Float64Var(&c.suspicious, "suspicious", 0.10, "share of hosts pointing at a suspicious fixture IP in the mixed zone")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed (the files are reproducible)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.dir == "" || c.names < 10 || c.pool4 < 1 || c.pool4 > 254*256 || c.pool6 < 1 || c.suspicious < 0 || c.suspicious > 1 {
		return c, fmt.Errorf("need -dir, -names >= 10, 1 <= -pool4 <= 65024, -pool6 >= 1, 0 <= -suspicious <= 1")
	}
	if c.cnames == 0 {
		c.cnames = c.names / 5
	}
	return c, nil
}

// zone is the generated data every output file is written from.
type zone struct {
	v4          []netip.Addr // the IPv4 pool; the first one also serves the NS record
	hosts       []host       // host i is h<i>
	cnameTarget []string     // CNAME j is c<j>
	nSusp       int          // hosts with a suspicious address in the mixed zone
}

func buildZone(cfg genConfig, rng *rand.Rand) *zone {
	v4 := make([]netip.Addr, cfg.pool4)
	for i := range v4 {
		p := v4Prefixes[i%len(v4Prefixes)]
		n := i / len(v4Prefixes)
		v4[i] = netip.AddrFrom4([4]byte{p[0], p[1], byte(n / 254), byte(n%254 + 1)})
	}
	v6 := make([]netip.Addr, cfg.pool6)
	for i := range v6 {
		v6[i] = netip.MustParseAddr(fmt.Sprintf("%s%x", v6Prefixes[i%len(v6Prefixes)], i/len(v6Prefixes)+1))
	}
	fixtures := make([]netip.Addr, len(suspiciousFixtures))
	for i, s := range suspiciousFixtures {
		fixtures[i] = netip.MustParseAddr(s)
	}

	hosts := make([]host, cfg.names)
	nSusp := int(float64(cfg.names)*cfg.suspicious + 0.5)
	suspIdx := rng.Perm(cfg.names)[:nSusp]
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
	cnameTarget := make([]string, cfg.cnames)
	for j := range cnameTarget {
		if j > 0 && rng.IntN(5) == 0 {
			cnameTarget[j] = fmt.Sprintf("c%d", rng.IntN(j))
		} else {
			cnameTarget[j] = fmt.Sprintf("h%d", rng.IntN(len(hosts)))
		}
	}
	return &zone{v4: v4, hosts: hosts, cnameTarget: cnameTarget, nSusp: nSusp}
}

// writeZones writes zone.clean.db and zone.mixed.db into dir.
func (z *zone) writeZones(dir string) error {
	for _, mixed := range []bool{false, true} {
		name := "zone.clean.db"
		if mixed {
			name = "zone.mixed.db"
		}
		err := writeFile(filepath.Join(dir, name), func(w *bufio.Writer) {
			fmt.Fprintf(w, "$ORIGIN %s\n$TTL 300\n", Zone)
			fmt.Fprintf(w, "@ IN SOA ns.%s hostmaster.%s 2026112701 7200 3600 1209600 300\n", Zone, Zone)
			fmt.Fprintf(w, "@ IN NS ns\nns IN A %s\n", z.v4[0])
			for i, h := range z.hosts {
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
			for j, t := range z.cnameTarget {
				fmt.Fprintf(w, "c%d IN CNAME %s\n", j, t)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeQueries writes n queries to path and returns how many of each kind.
// The mix: 60% A and 15% AAAA of hosts (about two thirds of the AAAA
// queries get NODATA), 15% A of CNAMEs, 10% names that do not exist
// (NXDOMAIN).
func (z *zone) writeQueries(path string, n int, rng *rand.Rand) (map[string]int, error) {
	mix := map[string]int{}
	err := writeFile(path, func(w *bufio.Writer) {
		for range n {
			r := rng.IntN(100)
			var q string
			switch {
			case r < 60:
				q = fmt.Sprintf("h%d.%s A", rng.IntN(len(z.hosts)), Zone)
				mix["A"]++
			case r < 75:
				q = fmt.Sprintf("h%d.%s AAAA", rng.IntN(len(z.hosts)), Zone)
				mix["AAAA"]++
			case r < 90:
				q = fmt.Sprintf("c%d.%s A", rng.IntN(len(z.cnameTarget)), Zone)
				mix["CNAME"]++
			default:
				q = fmt.Sprintf("nx%d.%s A", rng.IntN(1<<20), Zone)
				mix["NXDOMAIN"]++
			}
			fmt.Fprintln(w, q)
		}
	})
	return mix, err
}

// writeNameLists writes warm.txt and answered.txt into dir.
func (z *zone) writeNameLists(dir string) error {
	err := writeFile(filepath.Join(dir, "warm.txt"), func(w *bufio.Writer) {
		for i, h := range z.hosts {
			fmt.Fprintf(w, "h%d.%s A\n", i, Zone)
			if len(h.v6) > 0 {
				fmt.Fprintf(w, "h%d.%s AAAA\n", i, Zone)
			}
		}
		for j := range z.cnameTarget {
			fmt.Fprintf(w, "c%d.%s A\n", j, Zone)
		}
	})
	if err != nil {
		return err
	}
	// The names that have an answer, for prime.
	return writeFile(filepath.Join(dir, "answered.txt"), func(w *bufio.Writer) {
		for i := range z.hosts {
			fmt.Fprintf(w, "h%d.%s A\n", i, Zone)
		}
		for j := range z.cnameTarget {
			fmt.Fprintf(w, "c%d.%s A\n", j, Zone)
		}
	})
}

// printSummary prints the line bench/loadtest.sh keeps as gen.txt.
func (z *zone) printSummary(queries int, mix map[string]int) {
	distinct := map[netip.Addr]bool{}
	for _, h := range z.hosts {
		for _, a := range append(h.v4, h.v6...) {
			distinct[a] = true
		}
	}
	q := float64(queries) / 100
	fmt.Printf("zone=%s hosts=%d cnames=%d distinct_ips=%d suspicious_hosts=%d queries=%d mix=A:%.0f%%,AAAA:%.0f%%,CNAME:%.0f%%,NXDOMAIN:%.0f%%\n",
		strings.TrimSuffix(Zone, "."), len(z.hosts), len(z.cnameTarget), len(distinct), z.nSusp, queries,
		float64(mix["A"])/q, float64(mix["AAAA"])/q, float64(mix["CNAME"])/q, float64(mix["NXDOMAIN"])/q)
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
