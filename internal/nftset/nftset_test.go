package nftset

import (
	"github.com/coredns-cip/coredns-cip/internal/netnstest"

	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
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
)

// testAddrs are put on lo in every test namespace.
var testAddrs = []string{dst4 + "/32", dst6 + "/128", client1 + "/32", client2 + "/32"}

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
	if !errors.Is(err, ErrInvalidChange) {
		t.Fatalf("Apply = %v, want ErrInvalidChange", err)
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
		if len(rules) != 2 {
			t.Errorf("chain %s has %d rules after a restart, want 2 (one per set)", chain, len(rules))
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
	newErr("set blocked4", "lacks flags timeout", "type ipv4_addr; flags timeout;")

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
