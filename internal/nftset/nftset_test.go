package nftset

import (
	"github.com/coredns-cip/coredns-cip/internal/netnstest"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/nftables"

	"github.com/coredns-cip/coredns-cip/internal/sink"
)

const (
	dst4    = "45.83.0.21"
	dst6    = "2a0c:9a40:1::21"
	client1 = "10.99.0.1"
	client2 = "10.99.0.2"
	client6 = "fd00:99::1"
)

// testAddrs are put on lo in every test namespace.
var testAddrs = []string{dst4 + "/32", dst6 + "/128", client1 + "/32", client2 + "/32", client6 + "/128"}

var inetCreate = Config{Family: "inet", Table: "cip", Set4: "blocked4", Set6: "blocked6", Create: true}

func newSink(t *testing.T, n *netnstest.NetNS, cfg Config) *Sink {
	t.Helper()
	cfg.NetNS = n.FD
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apply(t *testing.T, s *Sink, batch ...sink.Change) {
	t.Helper()
	if err := s.Apply(context.Background(), batch); err != nil {
		t.Fatalf("Apply(%v): %v", batch, err)
	}
}

func block(ip string, ttl time.Duration, decision string) sink.Change {
	return sink.Change{Action: sink.Block, IP: netip.MustParseAddr(ip), TTL: ttl, Decision: decision}
}

func unblock(ip string) sink.Change {
	return sink.Change{Action: sink.Unblock, IP: netip.MustParseAddr(ip)}
}

func scoped(c sink.Change, client string) sink.Change {
	c.Client = netip.MustParseAddr(client)
	return c
}

// tagged makes c a block or unblock for client only, on port unless it
// is 0.
func tagged(c sink.Change, client string, port uint16) sink.Change {
	c.Scope, c.Client, c.Port = sink.ScopeTagged, netip.MustParseAddr(client), port
	return c
}

// everyone makes c a block or unblock for everyone, decided for clients.
func everyone(c sink.Change, clients ...string) sink.Change {
	c.Scope = sink.ScopeEveryone
	for _, cl := range clients {
		c.Clients = append(c.Clients, netip.MustParseAddr(cl))
	}
	return c
}

func elements(t *testing.T, s *Sink) []Element {
	t.Helper()
	els, err := s.Elements()
	if err != nil {
		t.Fatal(err)
	}
	return els
}

// wantElement fails unless ip is the only element, with the comment and
// between lo and hi left.
func wantElement(t *testing.T, s *Sink, ip, comment string, lo, hi time.Duration) {
	t.Helper()
	els := elements(t, s)
	if len(els) != 1 || els[0].IP != netip.MustParseAddr(ip) {
		t.Fatalf("elements %+v, want just %s", els, ip)
	}
	if e := els[0]; e.Comment != comment || e.Expires < lo || e.Expires > hi {
		t.Fatalf("element %+v, want comment %q and %v..%v left", e, comment, lo, hi)
	}
}

func wantNoElements(t *testing.T, s *Sink) {
	t.Helper()
	if els := elements(t, s); len(els) != 0 {
		t.Fatalf("elements %+v, want none", els)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	long := strings.Repeat("a", 65)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"family", Config{Family: "bridge", Table: "t", Set4: "s"}, "family"},
		{"no table", Config{Family: "inet", Set4: "s"}, "table name"},
		{"long table", Config{Family: "inet", Table: long, Set4: "s"}, "1 to 64"},
		{"table chars", Config{Family: "inet", Table: "a b", Set4: "s"}, "only letters"},
		{"set chars", Config{Family: "inet", Table: "t", Set4: "s;drop"}, "only letters"},
		{"no set", Config{Family: "inet", Table: "t"}, "no set"},
		{"same set", Config{Family: "inet", Table: "t", Set4: "s", Set6: "s"}, "both"},
		{"ip with set6", Config{Family: "ip", Table: "t", Set4: "s4", Set6: "s6"}, "no IPv6"},
		{"ip6 with set4", Config{Family: "ip6", Table: "t", Set4: "s4", Set6: "s6"}, "no IPv4"},
		{"pair set named", Config{Family: "inet", Table: "t", Set4: "s", Set6: "s_pairs"}, `set "s_pairs" is both named and kept beside set "s"`},
		{"port set named", Config{Family: "inet", Table: "t", Set4: "s", Set6: "s_ports", Scoped: true}, "kept beside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
			}
		})
	}
}

// wantRules fails unless both chains hold the rules, as the nft tool reads
// them back. Over loopback a connect test cannot tell a rule matching the
// destination from one matching the source (the reply passes the output
// hook too), so the rules themselves are checked.
func wantRules(t *testing.T, n *netnstest.NetNS, family string, rules ...string) {
	t.Helper()
	for _, chain := range []string{chainOutput, chainForward} {
		out := n.Nft(t, "list", "chain", family, "cip", chain)
		for _, rule := range rules {
			if !strings.Contains(out, rule+` comment "coredns-cip `) {
				t.Errorf("chain %s lacks %q:\n%s", chain, rule, out)
			}
		}
	}
}

// nftElement is an element as `nft -j list set` shows it.
type nftElement struct {
	Val     json.RawMessage `json:"val"`
	Timeout int             `json:"timeout"`
	Expires int             `json:"expires"`
	Comment string          `json:"comment"`
}

// nftElements lists a set's elements with the nft tool, to check that what
// the sink wrote reads back the same way for an operator.
func nftElements(t *testing.T, n *netnstest.NetNS, family, table, set string) []nftElement {
	t.Helper()
	var out struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Elem nftElement `json:"elem"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(n.Nft(t, "-j", "list", "set", family, table, set)), &out); err != nil {
		t.Fatal(err)
	}
	var els []nftElement
	for _, o := range out.Nftables {
		if o.Set != nil {
			for _, e := range o.Set.Elem {
				els = append(els, e.Elem)
			}
		}
	}
	return els
}

func TestBlockIPv4(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	s := newSink(t, n, inetCreate)
	if got, want := s.Name(), "nftables inet cip blocked4 blocked6"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	wantRules(t, n, "inet", "ip daddr @blocked4 drop", "ip6 daddr @blocked6 drop")
	n.WantOpen(t, "", dst)

	apply(t, s, block(dst4, time.Hour, "dec-v4"))
	wantElement(t, s, dst4, "dec-v4", 59*time.Minute, time.Hour)
	els := nftElements(t, n, "inet", "cip", "blocked4")
	if len(els) != 1 || string(els[0].Val) != `"`+dst4+`"` || els[0].Timeout != 3600 || els[0].Comment != "dec-v4" {
		t.Fatalf("nft lists %+v, want %s with timeout 3600 and comment dec-v4", els, dst4)
	}
	n.WantDropped(t, "", dst)

	apply(t, s, unblock(dst4))
	wantNoElements(t, s)
	n.WantOpen(t, "", dst)
}

func TestBlockIPv6(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst6)
	s := newSink(t, n, inetCreate)
	n.WantOpen(t, "", dst)

	apply(t, s, block(dst6, time.Hour, "dec-v6"))
	wantElement(t, s, dst6, "dec-v6", 59*time.Minute, time.Hour)
	n.WantDropped(t, "", dst)

	apply(t, s, unblock(dst6))
	wantNoElements(t, s)
	n.WantOpen(t, "", dst)
}

func TestIPv6OnlyTable(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst6)
	s := newSink(t, n, Config{Family: "ip6", Table: "cip", Set6: "blocked6", Create: true})
	wantRules(t, n, "ip6", "ip6 daddr @blocked6 drop")

	// No IPv4 set: the IPv4 block is skipped, the IPv6 one applied.
	apply(t, s, block(dst4, time.Hour, "skipped"), block(dst6, time.Hour, "dec"))
	wantElement(t, s, dst6, "dec", 59*time.Minute, time.Hour)
	n.WantDropped(t, "", dst)
}

func TestScoped(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	cfg := inetCreate
	cfg.Scoped = true
	s := newSink(t, n, cfg)
	wantRules(t, n, "inet", "ip saddr . ip daddr @blocked4 drop", "ip6 saddr . ip6 daddr @blocked6 drop")

	apply(t, s,
		scoped(block(dst4, time.Hour, "dec-scoped"), client1),
		block(dst4, time.Hour, "no client"),                    // a pair set cannot say "everyone"
		scoped(block(dst4, time.Hour, "mixed"), "2001:db8::1"), // client and IP of different families
	)
	els := elements(t, s)
	want := Element{IP: netip.MustParseAddr(dst4), Client: netip.MustParseAddr(client1), Comment: "dec-scoped"}
	if len(els) != 1 || els[0].IP != want.IP || els[0].Client != want.Client || els[0].Comment != want.Comment {
		t.Fatalf("elements %+v, want just %+v", els, want)
	}
	n.WantDropped(t, client1, dst)
	n.WantOpen(t, client2, dst)

	apply(t, s, scoped(unblock(dst4), client1))
	wantNoElements(t, s)
	n.WantOpen(t, client1, dst)
}

func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	s := newSink(t, n, inetCreate)

	apply(t, s, block(dst4, time.Hour, "first"))
	apply(t, s, block(dst4, 3*time.Hour, "second"))
	wantElement(t, s, dst4, "second", 3*time.Hour-time.Minute, 3*time.Hour)
	apply(t, s, unblock(dst4))
	apply(t, s, unblock(dst4))
	apply(t, s, unblock("198.51.100.7"), unblock("2001:db8::7"))
	wantNoElements(t, s)

	// Within a batch the last change to a key wins.
	apply(t, s, block(dst4, time.Hour, "a"), unblock(dst4), block(dst6, time.Hour, "b"), unblock(dst6), block(dst6, 2*time.Hour, "c"))
	wantElement(t, s, dst6, "c", 2*time.Hour-time.Minute, 2*time.Hour)
}

func TestApplyReportsInvalidChanges(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	s := newSink(t, n, inetCreate)

	err := s.Apply(context.Background(), []sink.Change{
		block(dst4, 0, "no ttl"),
		{Action: sink.Block, TTL: time.Hour},
		{Action: "allow", IP: netip.MustParseAddr(dst4)},
		block(dst6, time.Hour, "valid"),
	})
	if !errors.Is(err, ErrInvalidChange) || !errors.Is(err, sink.ErrInvalidChange) {
		t.Fatalf("Apply = %v, want ErrInvalidChange, which the Dispatcher does not retry", err)
	}
	// The valid change was applied all the same.
	wantElement(t, s, dst6, "valid", 59*time.Minute, time.Hour)
}

func TestRestartKeepsElementsAndRules(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	first := newSink(t, n, inetCreate)
	apply(t, first, block(dst4, time.Hour, "before restart"))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(context.Background(), []sink.Change{unblock(dst4)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}

	second := newSink(t, n, inetCreate)
	wantElement(t, second, dst4, "before restart", 59*time.Minute, time.Hour)
	n.WantDropped(t, "", dst)

	conn, err := nftables.New(nftables.WithNetNSFd(n.FD))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: "cip", Family: nftables.TableFamilyINet}
	for _, chain := range []string{chainOutput, chainForward} {
		rules, err := conn.GetRules(table, &nftables.Chain{Name: chain, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != 6 {
			t.Errorf("chain %s has %d rules after a restart, want 6 (one per set: IPs, pairs, ports for each family)", chain, len(rules))
		}
	}
}

func TestWithoutCreate(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	cfg := inetCreate
	cfg.Create = false
	cfg.NetNS = n.FD

	newErr := func(wants ...string) {
		t.Helper()
		_, err := New(cfg)
		if err == nil {
			t.Fatalf("New without create succeeded, want an error about %q", wants)
		}
		for _, want := range wants {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("New: %v\nwant it to mention %q", err, want)
			}
		}
	}
	newErr("table inet cip does not exist", "nft add table inet cip", "nft add set inet cip blocked4")

	n.Nft(t, "add", "table", "inet", "cip")
	newErr("set blocked4 in table inet cip does not exist")

	n.Nft(t, "add", "set", "inet", "cip", "blocked4", "{ type ipv4_addr; }")
	newErr("set blocked4", "lacks flags timeout", "type ipv4_addr; flags interval, timeout;")

	n.Nft(t, "delete", "set", "inet", "cip", "blocked4")
	n.Nft(t, "add", "set", "inet", "cip", "blocked4", "{ type ipv4_addr . ipv4_addr; flags timeout; }")
	newErr(`has type "ipv4_addr . ipv4_addr", want "ipv4_addr"`)

	// Sets the operator made are used as they are; no chains are added.
	n.Nft(t, "delete", "set", "inet", "cip", "blocked4")
	n.Nft(t, "add", "set", "inet", "cip", "blocked4", "{ type ipv4_addr; flags timeout; }")
	n.Nft(t, "add", "set", "inet", "cip", "blocked6", "{ type ipv6_addr; flags timeout; }")
	s := newSink(t, n, cfg)
	apply(t, s, block(dst4, time.Hour, "operator sets"))
	wantElement(t, s, dst4, "operator sets", 59*time.Minute, time.Hour)
	if out := n.Nft(t, "list", "table", "inet", "cip"); strings.Contains(out, "chain") {
		t.Fatalf("without create the sink added chains:\n%s", out)
	}
}

func TestKernelExpiry(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	s := newSink(t, n, inetCreate)

	apply(t, s, block(dst4, 2*time.Second, "short"))
	n.WantDropped(t, "", dst)
	deadline := time.Now().Add(10 * time.Second)
	for len(elements(t, s)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("element with a 2s timeout still there after 10s: %+v", elements(t, s))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.WantOpen(t, "", dst)
}

func TestTimeoutAndCommentFitTheKernel(t *testing.T) {
	// Rounded down, a sub-millisecond TTL would be 0 ms: no timeout at all.
	for ttl, want := range map[time.Duration]time.Duration{
		time.Microsecond:                        time.Millisecond,
		time.Hour:                               time.Hour,
		time.Hour + time.Microsecond:            time.Hour + time.Millisecond,
		2*time.Second - time.Nanosecond:         2 * time.Second,
		1500*time.Millisecond + time.Nanosecond: 1501 * time.Millisecond,
	} {
		if got := timeout(ttl); got != want {
			t.Errorf("timeout(%v) = %v, want %v", ttl, got, want)
		}
	}
	long := strings.Repeat("é", maxComment) // 2 bytes each
	if got := comment(long); len(got) > maxComment || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Errorf("comment(%d bytes) kept %d bytes %q, want at most %d on a character boundary", len(long), len(got), got, maxComment)
	}
	if got := comment("dec-1"); got != "dec-1" {
		t.Errorf("comment(dec-1) = %q", got)
	}
}

// wantElements fails unless the sink lists exactly want (Expires is
// checked to be within the last minute of ttl).
func wantElements(t *testing.T, s *Sink, ttl time.Duration, want ...Element) {
	t.Helper()
	got := elements(t, s)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.IP == w.IP && g.Client == w.Client && g.Port == w.Port && g.Comment == w.Comment &&
			g.Expires > ttl-time.Minute && g.Expires <= ttl
	}
	if !ok {
		t.Fatalf("elements %+v, want %+v with about %v left", got, want, ttl)
	}
}

func TestTaggedBlocksArePairsBesideTheIPs(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	open, other := n.Listen(t, dst4), n.Listen(t, dst4)
	open6, other6 := n.Listen(t, dst6), n.Listen(t, dst6)
	s := newSink(t, n, inetCreate)
	wantRules(t, n, "inet",
		"ip daddr @blocked4 drop", "ip saddr . ip daddr @blocked4_pairs drop",
		"meta l4proto { tcp, udp } ip saddr . ip daddr . th dport @blocked4_ports drop",
		"ip6 daddr @blocked6 drop", "ip6 saddr . ip6 daddr @blocked6_pairs drop",
		"meta l4proto { tcp, udp } ip6 saddr . ip6 daddr . th dport @blocked6_ports drop")

	apply(t, s,
		tagged(block(dst4, time.Hour, "dec-port"), client1, open.Port()),
		tagged(block(dst4, time.Hour, "dec-pair"), client2, 0),
		tagged(block(dst6, time.Hour, "dec-port6"), client6, open6.Port()),
	)
	c1, c2, c6 := netip.MustParseAddr(client1), netip.MustParseAddr(client2), netip.MustParseAddr(client6)
	d4, d6 := netip.MustParseAddr(dst4), netip.MustParseAddr(dst6)
	wantElements(t, s, time.Hour,
		Element{IP: d4, Client: c1, Port: open.Port(), Comment: "dec-port"},
		Element{IP: d4, Client: c2, Comment: "dec-pair"},
		Element{IP: d6, Client: c6, Port: open6.Port(), Comment: "dec-port6"},
	)
	// As an operator sees them: the triple and the pair, with timeout and
	// comment; nothing for everyone.
	ports := nftElements(t, n, "inet", "cip", "blocked4_ports")
	wantVal := fmt.Sprintf(`{"concat":[%q,%q,%d]}`, client1, dst4, open.Port())
	if len(ports) != 1 || compact(t, ports[0].Val) != wantVal || ports[0].Timeout != 3600 || ports[0].Comment != "dec-port" {
		t.Fatalf("nft lists %+v in blocked4_ports, want %s with timeout 3600 and comment dec-port", ports, wantVal)
	}
	pairs := nftElements(t, n, "inet", "cip", "blocked4_pairs")
	wantVal = fmt.Sprintf(`{"concat":[%q,%q]}`, client2, dst4)
	if len(pairs) != 1 || compact(t, pairs[0].Val) != wantVal || pairs[0].Timeout != 3600 || pairs[0].Comment != "dec-pair" {
		t.Fatalf("nft lists %+v in blocked4_pairs, want %s with timeout 3600 and comment dec-pair", pairs, wantVal)
	}
	if ips := nftElements(t, n, "inet", "cip", "blocked4"); len(ips) != 0 {
		t.Fatalf("nft lists %+v in blocked4, want nothing blocked for everyone", ips)
	}

	n.WantDropped(t, client1, open) // the port finding
	n.WantOpen(t, client1, other)   // another port of the same IP
	n.WantDropped(t, client2, open) // the pair: every port
	n.WantDropped(t, client2, other)
	n.WantOpen(t, "", open) // everyone else
	n.WantDropped(t, client6, open6)
	n.WantOpen(t, client6, other6)
	n.WantOpen(t, "", open6)

	// An unblock removes its element and nothing else.
	apply(t, s, tagged(unblock(dst4), client1, open.Port()))
	wantElements(t, s, time.Hour,
		Element{IP: d4, Client: c2, Comment: "dec-pair"},
		Element{IP: d6, Client: c6, Port: open6.Port(), Comment: "dec-port6"},
	)
	n.WantOpen(t, client1, open)
	n.WantDropped(t, client2, open)

	// A block for everyone still goes into the IP set, and so does a change
	// without a scope, client or not, as before scopes.
	apply(t, s, everyone(block(dst4, time.Hour, "dec-all"), client1))
	n.WantDropped(t, client1, other)
	n.WantDropped(t, "", other)
	apply(t, s, scoped(block(dst6, 2*time.Hour, "dec-legacy"), client6))
	if ips := nftElements(t, n, "inet", "cip", "blocked6"); len(ips) != 1 || ips[0].Comment != "dec-legacy" {
		t.Fatalf("nft lists %+v in blocked6, want the change without a scope there", ips)
	}
}

// compact strips the white space nft puts into JSON values.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestScopedWritesEveryBlockAsPairs(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	open, other := n.Listen(t, dst4), n.Listen(t, dst4)
	cfg := inetCreate
	cfg.Scoped = true
	var logged logLines
	cfg.Logf = logged.add
	s := newSink(t, n, cfg)
	wantRules(t, n, "inet", "ip saddr . ip daddr @blocked4 drop",
		"meta l4proto { tcp, udp } ip saddr . ip daddr . th dport @blocked4_ports drop")
	if out := n.Nft(t, "list", "table", "inet", "cip"); strings.Contains(out, "blocked4_pairs") {
		t.Fatalf("scoped, the pairs are in blocked4, yet the sink made blocked4_pairs:\n%s", out)
	}

	apply(t, s,
		everyone(block(dst4, time.Hour, "dec-all"), client1, client6), // client6: of the other family
		everyone(block(dst6, time.Hour, "dec-nobody")),                // no client to pair with
		tagged(block(dst4, time.Hour, "dec-port"), client2, open.Port()),
	)
	c1, c2, d4 := netip.MustParseAddr(client1), netip.MustParseAddr(client2), netip.MustParseAddr(dst4)
	wantElements(t, s, time.Hour,
		Element{IP: d4, Client: c1, Comment: "dec-all"},
		Element{IP: d4, Client: c2, Port: open.Port(), Comment: "dec-port"},
	)
	n.WantDropped(t, client1, open)
	n.WantDropped(t, client1, other)
	n.WantDropped(t, client2, open)
	n.WantOpen(t, client2, other)
	n.WantOpen(t, "", open)

	skipped := s.Skipped()
	if skipped[SkipNoClients] != 1 || skipped[SkipMixedFamily] != 1 {
		t.Errorf("Skipped() = %v, want one %q and one %q", skipped, SkipNoClients, SkipMixedFamily)
	}
	logged.want(t, SkipNoClients, SkipMixedFamily)

	apply(t, s, everyone(unblock(dst4), client1))
	wantElements(t, s, time.Hour, Element{IP: d4, Client: c2, Port: open.Port(), Comment: "dec-port"})
	n.WantOpen(t, client1, open)
}

// logLines records what a sink logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// want fails unless every one of wants is in some line.
func (l *logLines) want(t *testing.T, wants ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	all := strings.Join(l.lines, "\n")
	for _, w := range wants {
		if !strings.Contains(all, w) {
			t.Errorf("logged %q, want a line about %q", all, w)
		}
	}
}

func TestWithoutCreateSkipsMissingPairSets(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	// A ruleset written for the line before pair sets: IP sets only.
	n.Nft(t, "add", "table", "inet", "cip")
	n.Nft(t, "add", "set", "inet", "cip", "blocked4", "{ type ipv4_addr; flags timeout; }")
	n.Nft(t, "add", "set", "inet", "cip", "blocked6", "{ type ipv6_addr; flags timeout; }")
	n.Nft(t, "add", "set", "inet", "cip", "blocked4_ports", "{ type ipv4_addr . ipv4_addr . inet_service; flags timeout; }")
	cfg := inetCreate
	cfg.Create = false
	var logged logLines
	cfg.Logf = logged.add
	s := newSink(t, n, cfg)
	logged.want(t, "blocked4_pairs, blocked6_pairs, blocked6_ports",
		"nft add set inet cip blocked4_pairs '{ type ipv4_addr . ipv4_addr; flags timeout; }'",
		"nft add rule inet cip cip-output meta l4proto { tcp, udp } ip6 saddr . ip6 daddr . th dport @blocked6_ports drop")

	apply(t, s,
		tagged(block(dst4, time.Hour, "no pair set"), client1, 0),
		tagged(block(dst4, time.Hour, "port set made by the operator"), client1, 443),
		everyone(block(dst6, time.Hour, "for everyone")),
	)
	c1, d4, d6 := netip.MustParseAddr(client1), netip.MustParseAddr(dst4), netip.MustParseAddr(dst6)
	wantElements(t, s, time.Hour,
		Element{IP: d4, Client: c1, Port: 443, Comment: "port set made by the operator"},
		Element{IP: d6, Comment: "for everyone"},
	)
	if got := s.Skipped(); got[SkipAbsentSet] != 1 {
		t.Errorf("Skipped() = %v, want one %q", got, SkipAbsentSet)
	}
}

// Holds reads the sets back: a block deleted by hand, one whose element
// carries another decision, and one whose element runs out well before it
// are not held; the others, pairs and scoped pairs included, are.
func TestHoldsReadsTheSetsBack(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	s := newSink(t, n, inetCreate)
	scopedSink := newSink(t, n, Config{Family: "inet", Table: "cipscoped", Set4: "pairs4", Set6: "pairs6", Create: true, Scoped: true})
	blocks := []sink.Change{
		block(dst4, time.Hour, "dec-v4"),
		block(dst6, time.Hour, "dec-v6"),
		tagged(block("45.83.0.22", time.Hour, "dec-pair"), client1, 0),
		tagged(block("45.83.0.23", time.Hour, "dec-port"), client2, 443),
		block("45.83.0.24", time.Hour, "dec-gone"),
	}
	apply(t, s, blocks...)
	forEveryone := everyone(block(dst4, time.Hour, "dec-scoped"), client1, client2)
	apply(t, scopedSink, forEveryone)

	holds := func(s *Sink, blocks ...sink.Change) []bool {
		t.Helper()
		got, err := s.Holds(context.Background(), blocks)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := holds(s, blocks...); !slices.Equal(got, []bool{true, true, true, true, true}) {
		t.Fatalf("Holds = %v right after Apply, want all true", got)
	}
	n.Nft(t, "delete", "element", "inet", "cip", "blocked4", "{ 45.83.0.24 }")
	n.Nft(t, "delete", "element", "inet", "cipscoped", "pairs4", "{ "+client2+" . "+dst4+" }")
	redecided := block(dst6, time.Hour, "dec-v6-again")
	extended := tagged(block("45.83.0.22", 3*time.Hour, "dec-pair"), client1, 0)
	want := []bool{true, false, false, true, false}
	if got := holds(s, blocks[0], redecided, extended, blocks[3], blocks[4]); !slices.Equal(got, want) {
		t.Errorf("Holds = %v, want %v (another decision, a block 2h longer, an element deleted by hand)", got, want)
	}
	if got := holds(scopedSink, forEveryone); !slices.Equal(got, []bool{false}) {
		t.Errorf("Holds = %v for a scoped block that lost one of its pairs, want false", got)
	}
}

// A block replaces an element of its key that the sink read at start (a
// restart) or wrote. One added behind its back after start is not
// replaced by a plain add, which spares the kernel a slow delete; Holds
// sees it stale, and the block written again replaces it.
func TestBlockReplacesWhatTheSinkKnows(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	first := newSink(t, n, inetCreate)
	apply(t, first, block(dst4, time.Hour, "before restart"))
	second := newSink(t, n, inetCreate)
	apply(t, second, block(dst4, 3*time.Hour, "after restart"))
	wantElement(t, second, dst4, "after restart", 3*time.Hour-time.Minute, 3*time.Hour)

	third := newSink(t, n, inetCreate)
	n.Nft(t, "add", "element", "inet", "cip", "blocked6", `{ `+dst6+` timeout 1h comment "by hand" }`)
	decided := block(dst6, 3*time.Hour, "decided")
	apply(t, third, decided)
	held, err := third.Holds(context.Background(), []sink.Change{decided})
	if err != nil || held[0] {
		t.Fatalf("Holds = %v, %v; want false: the element added by hand is not the block", held, err)
	}
	apply(t, third, decided)
	els := elements(t, third)
	if len(els) != 2 || els[1].Comment != "decided" || els[1].Expires < 3*time.Hour-time.Minute {
		t.Fatalf("elements %+v, want %s replaced with comment decided and ~3h", els, dst6)
	}
}

func blockRange(cidr string, ttl time.Duration, decision string) sink.Change {
	return sink.Change{Action: sink.Block, Range: netip.MustParsePrefix(cidr), Scope: sink.ScopeEveryone, TTL: ttl, Decision: decision}
}

func unblockRange(cidr string) sink.Change {
	return sink.Change{Action: sink.Unblock, Range: netip.MustParsePrefix(cidr), Scope: sink.ScopeEveryone}
}

// TestRangeBlocks: a range goes into the IP set as an interval element
// (traffic to an address inside it is dropped), covers the IP elements
// inside it, and its unblock removes it.
func TestRangeBlocks(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	dst6l := n.Listen(t, dst6)
	s := newSink(t, n, inetCreate)
	r4, r6 := netip.MustParsePrefix("45.83.0.0/24"), netip.MustParsePrefix("2a0c:9a40:1::/48")

	apply(t, s, block(dst4, time.Hour, "dec-ip"))
	apply(t, s, blockRange(r4.String(), time.Hour, "dec-range"), blockRange(r6.String(), time.Hour, "dec-range6"))
	wantElements(t, s, time.Hour, Element{Range: r4, Comment: "dec-range"}, Element{Range: r6, Comment: "dec-range6"})
	els := nftElements(t, n, "inet", "cip", "blocked4")
	if len(els) != 1 || compact(t, els[0].Val) != `{"prefix":{"addr":"45.83.0.0","len":24}}` || els[0].Comment != "dec-range" || els[0].Timeout != 3600 {
		t.Fatalf("nft lists %+v, want 45.83.0.0/24 with timeout 3600 and comment dec-range", els)
	}
	n.WantDropped(t, "", dst)
	n.WantDropped(t, "", dst6l)

	// An IP inside a range is covered: not added (the kernel refuses
	// overlaps), and held all the same.
	apply(t, s, block(dst4, time.Hour, "dec-ip"), block("45.83.0.99", time.Hour, "dec-ip2"))
	if got := s.Skipped()[SkipCovered]; got != 2 {
		t.Errorf("Skipped()[%q] = %d, want 2", SkipCovered, got)
	}
	held, err := s.Holds(context.Background(), []sink.Change{block(dst4, time.Hour, "dec-ip"), blockRange(r4.String(), time.Hour, "dec-range")})
	if err != nil || !held[0] || !held[1] {
		t.Errorf("Holds = %v, %v; want both held", held, err)
	}

	apply(t, s, unblockRange(r4.String()), unblockRange(r6.String()))
	wantNoElements(t, s)
	n.WantOpen(t, "", dst)
	n.WantOpen(t, "", dst6l)
	// The IP blocks the range covered come back as the engine pushes them.
	apply(t, s, block(dst4, time.Hour, "dec-ip"))
	wantElement(t, s, dst4, "dec-ip", 59*time.Minute, time.Hour)
	apply(t, s, unblockRange(r4.String()), unblock("45.83.0.99"))
	wantElement(t, s, dst4, "dec-ip", 59*time.Minute, time.Hour)
	n.WantDropped(t, "", dst)
	// A range lifted and the IP inside it pushed again, in one batch.
	apply(t, s, blockRange(r4.String(), time.Hour, "dec-range"))
	apply(t, s, unblockRange(r4.String()), block(dst4, time.Hour, "dec-ip"))
	wantElement(t, s, dst4, "dec-ip", 59*time.Minute, time.Hour)
}

// TestRangeWithoutIntervalFlag: an operator's set without flags interval
// keeps taking IPs; ranges are skipped, and New says how to recreate it.
func TestRangeWithoutIntervalFlag(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	n.Nft(t, "add", "table", "inet", "cip")
	n.Nft(t, "add", "set", "inet", "cip", "blocked4", "{ type ipv4_addr; flags timeout; }")
	cfg := Config{Family: "inet", Table: "cip", Set4: "blocked4", Create: true}
	var logged logLines
	cfg.Logf = logged.add
	s := newSink(t, n, cfg)
	logged.want(t, "set blocked4 has no flags interval", "nft delete set inet cip blocked4",
		"nft add set inet cip blocked4 '{ type ipv4_addr; flags interval, timeout; }'")
	apply(t, s, blockRange("45.83.0.0/24", time.Hour, "dec-range"), block(dst4, time.Hour, "dec-ip"))
	wantElement(t, s, dst4, "dec-ip", 59*time.Minute, time.Hour)
	if got := s.Skipped()[SkipNoInterval]; got != 1 {
		t.Errorf("Skipped()[%q] = %d, want 1", SkipNoInterval, got)
	}
}

// TestRangeKernelExpiry: the kernel drops a range element on its timeout,
// end and all, so the same range can be blocked again.
func TestRangeKernelExpiry(t *testing.T) {
	t.Parallel()
	n := netnstest.New(t, testAddrs...)
	dst := n.Listen(t, dst4)
	s := newSink(t, n, inetCreate)
	apply(t, s, blockRange("45.83.0.0/24", 2*time.Second, "short"))
	n.WantDropped(t, "", dst)
	deadline := time.Now().Add(10 * time.Second)
	for len(elements(t, s)) > 0 || len(nftElements(t, n, "inet", "cip", "blocked4")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("range with a 2s timeout still there after 10s: %+v", elements(t, s))
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.WantOpen(t, "", dst)
	apply(t, s, blockRange("45.83.0.0/24", time.Hour, "again"))
	wantElements(t, s, time.Hour, Element{Range: netip.MustParsePrefix("45.83.0.0/24"), Comment: "again"})
}
