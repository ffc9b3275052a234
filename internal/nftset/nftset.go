// Package nftset enforces block decisions in nftables sets, over native
// netlink (github.com/google/nftables; no nft binary needed). Blocked IPs
// are set elements with a kernel timeout, so a block lapses on time even
// while coredns-cip is down, and each element's comment carries the
// decision id, so `nft list set` shows why an IP is there.
//
// A block for everyone goes into an IP set, a block for a tagged client
// only into a pair set beside it (client . destination, or client .
// destination . port for a finding on one port); see Config.
//
// A range block (a CIDR, sink.Change.Range) goes into the IP set as an
// interval, which needs the set's interval flag (sets made by create have
// it). The kernel refuses intervals that overlap, so adding a range first
// removes the IP elements inside it (it covers them), an IP inside a range
// element is not added (counted in Skipped as SkipCovered), and the
// engine pushes the IP blocks inside a range again when the range ends.
//
// Apply is idempotent without reading the set first. An unblock becomes
// "add the key (no-op if present), delete it", and a block of an element
// that may be present "add the key, delete it, add it again with its
// timeout and comment", all in one netlink transaction. The first add
// makes the delete safe for a key that is absent (no ENOENT to fail the
// batch); the delete makes the second add replace an existing element's
// timeout and comment, which a plain re-add does not (kernels before 6.12
// keep the old timeout, and no kernel updates the comment).
//
// A transaction that deletes waits for the kernel's RCU grace period (4 to
// 15 ms measured, against 0.1 to 0.4 ms for adds alone), so a block of an
// element the sink does not know to be present is a plain add. The sink
// knows the elements it read at New, by Elements and Holds, and those it
// wrote since; an element it does not know of that is there all the same
// (added by hand, or by another writer) keeps its comment, and its
// timeout on older kernels, until reconciling (Holds) finds it stale and
// the block is written again, this time as a replacement.
//
// Each operation opens its own netlink socket in the configured network
// namespace and closes it afterwards: a socket left out of step by a
// failed batch cannot poison later batches, and nothing is held open
// between batches.
package nftset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// ErrInvalidChange marks a change Apply cannot carry out as given (a block
// without a positive TTL, a change without an IP, an unknown action).
// Retrying it cannot help (it wraps sink.ErrInvalidChange, which the
// Dispatcher does not retry); the rest of its batch is applied regardless.
var ErrInvalidChange = fmt.Errorf("nftset: %w", sink.ErrInvalidChange)

// ErrClosed is returned by Apply, Elements and Holds after Close.
var ErrClosed = errors.New("nftset: sink closed")

// Chains the create option adds, one per hook, and the tag in the comment
// of each rule it adds to them, by which a restart finds them again.
const (
	chainOutput  = "cip-output"
	chainForward = "cip-forward"
	ruleTag      = "coredns-cip "
)

// maxComment bounds an element comment: the nft tool refuses longer ones,
// and the kernel caps all of an element's userdata at 256 bytes.
const maxComment = 128

// The names of the pair sets kept beside a configured set SET: SET_pairs
// holds client . destination, SET_ports client . destination . port.
const (
	pairsSuffix = "_pairs"
	portsSuffix = "_ports"
)

// Config says which sets to keep blocks in. Corefile:
// hook nftables FAMILY TABLE SET4 SET6 [create] [scoped].
//
// Each configured set SET (SET4, SET6) holds the destinations blocked for
// everyone. Beside it, SET_pairs holds client . destination pairs (blocks
// for a tagged client only, matched on saddr . daddr) and SET_ports
// client . destination . port triples (the same, narrowed to one port,
// matched on saddr . daddr . th dport for TCP and UDP). With Scoped, SET
// itself holds the pairs and every block becomes pairs (SET_pairs is not
// used); SET_ports is kept all the same.
type Config struct {
	Family string // "inet", "ip" or "ip6"
	Table  string
	Set4   string // set for IPv4 destinations ("" = none)
	Set6   string // set for IPv6 destinations ("" = none)
	// Create creates the table, the sets (flags timeout; the IP sets also
	// flags interval, for range blocks) and the drop rules
	// when missing. It never deletes or changes anything that exists.
	// Without it, SET4 and SET6 must exist; the pair sets are used if they
	// do, and the changes that need a missing one are skipped (counted in
	// Skipped, and said once by Logf at New).
	Create bool
	// Scoped writes every block as pairs: SET4 and SET6 hold client .
	// destination pairs, and a block for everyone becomes a pair for each
	// of the change's Clients (none: skipped). A block only affects the
	// clients it was decided for.
	Scoped bool
	NetNS  int // network namespace fd to operate in; 0 = the current one
	// Logf, if set, is told about changes skipped for want of a set or of
	// clients; nil: they are only counted.
	Logf func(format string, args ...any)
}

// Element is one entry of a set.
type Element struct {
	IP      netip.Addr    // the blocked destination; zero for a range
	Range   netip.Prefix  // the blocked range, in an interval set
	Client  netip.Addr    // the client it is blocked for; zero: everyone
	Port    uint16        // the destination port it is blocked on; 0: every port
	Expires time.Duration // time left before the kernel drops it; 0: no timeout
	Comment string        // the decision id
}

// Why Apply skips a change (or one pair of it), as counted by Skipped.
const (
	SkipNoSet       = "no set for the address family"
	SkipAbsentSet   = "pair set missing"
	SkipNoClients   = "scoped: block for everyone without clients"
	SkipMixedFamily = "client and IP of different families"
	SkipNoInterval  = "range: set without flags interval"
	SkipRangeScoped = "range: scoped sets hold pairs"
	SkipCovered     = "inside a range element"
)

// kind is what a set's keys hold.
type kind int

const (
	kindIP   kind = iota // destination
	kindPair             // client . destination
	kindPort             // client . destination . destination port
)

// set is one set the sink writes to.
type set struct {
	*nftables.Set
	v4   bool
	kind kind
	// derived sets (SET_pairs, SET_ports) are optional without Create:
	// absent ones are skipped, so a Corefile line from before them works.
	derived bool
	absent  bool
	// interval: the set has flags interval (an IP set made by create, or
	// one the operator made so): it takes ranges, and IPs as one-address
	// intervals.
	interval bool
}

// Sink keeps blocked IPs in nftables sets. It implements sink.Sink.
type Sink struct {
	cfg   Config
	table *nftables.Table
	sets  []*set // IPv4 ones first; a family without a set is skipped

	mu      sync.Mutex // serialises batches, so they reach the kernel in call order
	closed  bool
	skipped map[string]uint64
	// known are the elements the sink knows to be present, by set name
	// and key, with the time they run out (zero: no timeout); see the
	// package doc.
	known map[string]time.Time
	// ranges are the range elements the sink knows of (by element id, as
	// known): while an interval set holds any, Apply reads it first to
	// keep clear of overlaps.
	ranges map[string]netip.Prefix
}

// New checks cfg and the sets it names. With cfg.Create it creates whatever
// is missing in one transaction, keeping what exists (and the elements in
// it); without, it fails with an error naming what is missing or wrong and
// the nft commands that would set it up.
func New(cfg Config) (*Sink, error) {
	family, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, table: &nftables.Table{Name: cfg.Table, Family: family}, skipped: map[string]uint64{}, ranges: map[string]netip.Prefix{}}
	for i, l := range layout(cfg) {
		// Set IDs only name sets within one transaction; fixed ones spare
		// us the library's shared (and unsynchronised) ID counter.
		s.sets = append(s.sets, s.newSet(l, uint32(i+1)))
	}
	if err := s.setup(); err != nil {
		return nil, err
	}
	if _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

func parseConfig(cfg Config) (nftables.TableFamily, error) {
	var family nftables.TableFamily
	switch cfg.Family {
	case "inet":
		family = nftables.TableFamilyINet
	case "ip":
		family = nftables.TableFamilyIPv4
	case "ip6":
		family = nftables.TableFamilyIPv6
	default:
		return 0, fmt.Errorf("nftset: family %q: want inet, ip or ip6", cfg.Family)
	}
	if err := checkName("table", cfg.Table); err != nil {
		return 0, err
	}
	for _, set := range []string{cfg.Set4, cfg.Set6} {
		if set == "" {
			continue
		}
		if err := checkName("set", set); err != nil {
			return 0, err
		}
	}
	switch {
	case cfg.Set4 == "" && cfg.Set6 == "":
		return 0, errors.New("nftset: no set: name one for IPv4, IPv6 or both")
	case cfg.Set4 == cfg.Set6:
		return 0, fmt.Errorf("nftset: set %q named for both IPv4 and IPv6: a set holds one address type", cfg.Set4)
	case family == nftables.TableFamilyIPv4 && cfg.Set6 != "":
		return 0, fmt.Errorf("nftset: an ip table sees no IPv6 traffic: set %q for IPv6 needs family ip6 or inet", cfg.Set6)
	case family == nftables.TableFamilyIPv6 && cfg.Set4 != "":
		return 0, fmt.Errorf("nftset: an ip6 table sees no IPv4 traffic: set %q for IPv4 needs family ip or inet", cfg.Set4)
	}
	seen := map[string]string{}
	for _, l := range layout(cfg) {
		if from, ok := seen[l.name]; ok {
			return 0, fmt.Errorf("nftset: set %q is both named and kept beside set %q (as %s%s or %s%s): name another",
				l.name, from, from, pairsSuffix, from, portsSuffix)
		}
		seen[l.name] = l.base
	}
	return family, nil
}

// setLayout is a set the config calls for, before it is built.
type setLayout struct {
	name, base string // base: the configured set it is derived from, or itself
	v4         bool
	kind       kind
}

// layout lists the sets cfg calls for: for each configured set, the set
// itself and the pair sets beside it (see Config).
func layout(cfg Config) []setLayout {
	var out []setLayout
	for _, base := range []struct {
		name string
		v4   bool
	}{{cfg.Set4, true}, {cfg.Set6, false}} {
		if base.name == "" {
			continue
		}
		if cfg.Scoped {
			out = append(out, setLayout{base.name, base.name, base.v4, kindPair})
		} else {
			out = append(out,
				setLayout{base.name, base.name, base.v4, kindIP},
				setLayout{base.name + pairsSuffix, base.name, base.v4, kindPair})
		}
		out = append(out, setLayout{base.name + portsSuffix, base.name, base.v4, kindPort})
	}
	return out
}

// checkName keeps names to what is safe to paste into an nft command.
func checkName(what, name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("nftset: %s name %q: want 1 to 64 characters", what, name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("nftset: %s name %q: want only letters, digits, _ and -", what, name)
		}
	}
	return nil
}

func (s *Sink) newSet(l setLayout, id uint32) *set {
	addr := nftables.TypeIP6Addr
	if l.v4 {
		addr = nftables.TypeIPAddr
	}
	key, comment := addr, "coredns-cip blocked destinations"
	switch l.kind {
	case kindPair:
		key, comment = nftables.MustConcatSetType(addr, addr), "coredns-cip blocked client . destination pairs"
	case kindPort:
		key, comment = nftables.MustConcatSetType(addr, addr, nftables.TypeInetService), "coredns-cip blocked client . destination . port"
	}
	return &set{
		Set: &nftables.Set{
			Table:         s.table,
			ID:            id,
			Name:          l.name,
			HasTimeout:    true,
			Interval:      l.kind == kindIP,
			Concatenation: l.kind != kindIP,
			KeyType:       key,
			KeyByteOrder:  binaryutil.BigEndian,
			Comment:       comment,
		},
		v4:      l.v4,
		kind:    l.kind,
		derived: l.name != l.base,
	}
}

// find is the set for keys of kind k in the family v4 says, or nil.
func (s *Sink) find(v4 bool, k kind) *set {
	for _, t := range s.sets {
		if t.v4 == v4 && t.kind == k {
			return t
		}
	}
	return nil
}

// present lists the sets that exist.
func (s *Sink) present() []*set {
	var out []*set
	for _, t := range s.sets {
		if !t.absent {
			out = append(out, t)
		}
	}
	return out
}

func (s *Sink) conn() (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(s.cfg.NetNS))
}

// Name is the sink's name in logs and metrics, e.g.
// "nftables inet cip blocked4 blocked6".
func (s *Sink) Name() string {
	parts := []string{"nftables", s.cfg.Family, s.cfg.Table}
	for _, set := range []string{s.cfg.Set4, s.cfg.Set6} {
		if set != "" {
			parts = append(parts, set)
		}
	}
	if s.cfg.Scoped {
		parts = append(parts, "scoped")
	}
	return strings.Join(parts, " ")
}

func (s *Sink) setup() error {
	conn, err := s.conn()
	if err != nil {
		return s.fail("connect", err)
	}
	tables, err := conn.ListTablesOfFamily(s.table.Family)
	if err != nil {
		return s.fail("list tables", err)
	}
	haveTable := slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == s.table.Name })
	existing := map[string]*nftables.Set{}
	if haveTable {
		sets, err := conn.GetSets(s.table)
		if err != nil {
			return s.fail("list sets", err)
		}
		for _, set := range sets {
			existing[set.Name] = set
		}
	} else {
		if !s.cfg.Create {
			return fmt.Errorf("nftset: table %s %s does not exist; use the create option, or set it up with:\n%s",
				s.cfg.Family, s.cfg.Table, s.commands())
		}
		conn.AddTable(s.table)
	}
	var absent []*set
	for _, want := range s.sets {
		have, ok := existing[want.Name]
		switch {
		case ok:
			if err := s.check(have, want.Set); err != nil {
				return err
			}
			want.interval = have.Interval
			if want.kind == kindIP && !have.Interval {
				s.logf("%s: set %s has no flags interval, so range blocks are skipped; to take them, recreate it (this drops its elements, which the next reconcile puts back) with:\n  nft delete set %s %s %s\n%s",
					s.Name(), want.Name, s.cfg.Family, s.cfg.Table, want.Name, s.setCommand(want.Set))
			}
		case s.cfg.Create:
			want.interval = want.Interval
			if err := conn.AddSet(want.Set, nil); err != nil {
				return s.fail("add set "+want.Name, err)
			}
		case want.derived:
			want.absent = true
			absent = append(absent, want)
		default:
			return fmt.Errorf("nftset: set %s in table %s %s does not exist; use the create option, or set it up with:\n%s",
				want.Name, s.cfg.Family, s.cfg.Table, s.commands())
		}
	}
	if s.cfg.Create {
		if err := s.addRules(conn, haveTable); err != nil {
			return err
		}
	}
	if err := conn.Flush(); err != nil {
		return s.fail("create", err)
	}
	if len(absent) > 0 {
		s.logf("%s: without the create option and without set(s) %s, blocks for a tagged client only are skipped; add them with:\n%s",
			s.Name(), strings.Join(setNames(absent), ", "), s.script(absent))
	}
	return nil
}

func setNames(sets []*set) []string {
	var names []string
	for _, t := range sets {
		names = append(names, t.Name)
	}
	return names
}

func (s *Sink) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// check tells whether an existing set can hold what this sink puts in it.
func (s *Sink) check(have, want *nftables.Set) error {
	var wrong []string
	if have.KeyType.Name != want.KeyType.Name || have.KeyType.Bytes != want.KeyType.Bytes {
		wrong = append(wrong, fmt.Sprintf("has type %q, want %q", have.KeyType.Name, want.KeyType.Name))
	}
	if !have.HasTimeout {
		wrong = append(wrong, "lacks flags timeout")
	}
	if have.Interval && !want.Interval {
		wrong = append(wrong, "has flags interval")
	}
	if have.IsMap {
		wrong = append(wrong, "is a map")
	}
	if have.Constant {
		wrong = append(wrong, "is constant")
	}
	if len(wrong) == 0 {
		return nil
	}
	return fmt.Errorf("nftset: set %s in table %s %s %s; coredns-cip never changes an existing set: delete it or name another, then:\n%s",
		have.Name, s.cfg.Family, s.cfg.Table, strings.Join(wrong, ", "), s.setCommand(want))
}

// addRules queues the drop chains and rules that are missing. A rule is
// ours if its comment carries ruleTag and its set's name, so a restart adds
// nothing twice while rules the operator wrote stay untouched.
func (s *Sink) addRules(conn *nftables.Conn, haveTable bool) error {
	haveChain := map[string]bool{}
	if haveTable {
		chains, err := conn.ListChainsOfTableFamily(s.table.Family)
		if err != nil {
			return s.fail("list chains", err)
		}
		for _, c := range chains {
			if c.Table != nil && c.Table.Name == s.table.Name {
				haveChain[c.Name] = true
			}
		}
	}
	accept := nftables.ChainPolicyAccept
	anonID := uint32(100) // above the named sets' IDs
	for _, h := range []struct {
		name string
		hook *nftables.ChainHook
	}{{chainOutput, nftables.ChainHookOutput}, {chainForward, nftables.ChainHookForward}} {
		chain := &nftables.Chain{
			Name:     h.name,
			Table:    s.table,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  h.hook,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &accept,
		}
		tagged := map[string]bool{}
		if haveChain[h.name] {
			rules, err := conn.GetRules(s.table, chain)
			if err != nil {
				return s.fail("list rules of chain "+h.name, err)
			}
			for _, r := range rules {
				if tag, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
					tagged[tag] = true
				}
			}
		} else {
			conn.AddChain(chain)
		}
		for _, set := range s.present() {
			if tag := ruleTag + set.Name; !tagged[tag] {
				exprs, err := s.dropExprs(conn, set, &anonID)
				if err != nil {
					return s.fail("add the rule for set "+set.Name, err)
				}
				conn.AddRule(&nftables.Rule{
					Table:    s.table,
					Chain:    chain,
					Exprs:    exprs,
					UserData: userdata.AppendString(nil, userdata.TypeComment, tag),
				})
			}
		}
	}
	return nil
}

// dropExprs is the rule for set as the nft tool compiles it (matching
// the set's family first in an inet table):
//
//	ip daddr @SET drop
//	ip saddr . ip daddr @SET_pairs drop
//	meta l4proto { tcp, udp } ip saddr . ip daddr . th dport @SET_ports drop
//
// (ip6 for IPv6). The protocol check of the last keeps th dport to
// protocols whose header starts with ports; its anonymous set is queued
// on conn, with an ID taken from *anonID.
func (s *Sink) dropExprs(conn *nftables.Conn, set *set, anonID *uint32) ([]expr.Any, error) {
	var exprs []expr.Any
	if s.table.Family == nftables.TableFamilyINet {
		// An inet table sees both families: match the one the set is for
		// before reading addresses at its offsets.
		proto := byte(unix.NFPROTO_IPV6)
		if set.v4 {
			proto = unix.NFPROTO_IPV4
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: unix.NFT_REG_1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: []byte{proto}},
		)
	}
	if set.kind == kindPort {
		protos := &nftables.Set{
			Table: s.table, ID: *anonID, Name: "__set%d", // the kernel fills in %d
			Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto,
		}
		*anonID++
		if err := conn.AddSet(protos, []nftables.SetElement{{Key: []byte{unix.IPPROTO_TCP}}, {Key: []byte{unix.IPPROTO_UDP}}}); err != nil {
			return nil, err
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG_1},
			&expr.Lookup{SourceRegister: unix.NFT_REG_1, SetName: protos.Name, SetID: protos.ID},
		)
	}
	// Offsets into the IPv4 / IPv6 header. A concatenation fills registers
	// in turn, each part padded to 4 bytes: the destination goes right
	// after the source, the port right after the destination.
	saddr, daddr, size, next, port := uint32(12), uint32(16), uint32(4), uint32(unix.NFT_REG32_01), uint32(unix.NFT_REG32_02)
	if !set.v4 {
		saddr, daddr, size, next, port = 8, 24, 16, unix.NFT_REG_2, unix.NFT_REG32_08
	}
	load := func(offset, reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size}
	}
	switch set.kind {
	case kindIP:
		exprs = append(exprs, load(daddr, unix.NFT_REG_1))
	case kindPair:
		exprs = append(exprs, load(saddr, unix.NFT_REG_1), load(daddr, next))
	case kindPort:
		exprs = append(exprs, load(saddr, unix.NFT_REG_1), load(daddr, next),
			// th dport: the destination port, bytes 2-3 of the TCP or UDP header.
			&expr.Payload{DestRegister: port, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	}
	return append(exprs,
		&expr.Lookup{SourceRegister: unix.NFT_REG_1, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	), nil
}

// commands is the nft script that sets up what Create would.
func (s *Sink) commands() string {
	lines := []string{fmt.Sprintf("  nft add table %s %s", s.cfg.Family, s.cfg.Table)}
	for _, set := range s.sets {
		lines = append(lines, s.setCommand(set.Set))
	}
	for _, chain := range chains {
		lines = append(lines, fmt.Sprintf("  nft add chain %s %s %s '{ type filter hook %s priority filter; policy accept; }'",
			s.cfg.Family, s.cfg.Table, chain.name, chain.hook))
	}
	return strings.Join(append(lines, s.ruleCommands(s.sets)...), "\n")
}

// script is the nft script that adds sets and their rules (in the chains
// Create would add).
func (s *Sink) script(sets []*set) string {
	var lines []string
	for _, set := range sets {
		lines = append(lines, s.setCommand(set.Set))
	}
	return strings.Join(append(lines, s.ruleCommands(sets)...), "\n")
}

// chains are the chains Create adds, by name and hook.
var chains = []struct{ name, hook string }{{chainOutput, "output"}, {chainForward, "forward"}}

func (s *Sink) ruleCommands(sets []*set) []string {
	var lines []string
	for _, chain := range chains {
		for _, set := range sets {
			ip := "ip6"
			if set.v4 {
				ip = "ip"
			}
			match := ip + " daddr"
			switch set.kind {
			case kindPair:
				match = ip + " saddr . " + ip + " daddr"
			case kindPort:
				match = "meta l4proto { tcp, udp } " + ip + " saddr . " + ip + " daddr . th dport"
			}
			lines = append(lines, fmt.Sprintf("  nft add rule %s %s %s %s @%s drop comment '\"%s%s\"'",
				s.cfg.Family, s.cfg.Table, chain.name, match, set.Name, ruleTag, set.Name))
		}
	}
	return lines
}

func (s *Sink) setCommand(set *nftables.Set) string {
	flags := "timeout"
	if set.Interval {
		flags = "interval, timeout"
	}
	return fmt.Sprintf("  nft add set %s %s %s '{ type %s; flags %s; }'", s.cfg.Family, s.cfg.Table, set.Name, set.KeyType.Name, flags)
}

// fail wraps a netlink error with what was being done, and a hint for the
// errors an operator can fix.
func (s *Sink) fail(doing string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EPERM):
		hint = " (needs CAP_NET_ADMIN)"
	case errors.Is(err, unix.ENOENT):
		hint = fmt.Sprintf(" (table %s %s or one of its sets is gone; restart with the create option, or recreate it)", s.cfg.Family, s.cfg.Table)
	case errors.Is(err, unix.ENFILE):
		hint = " (a set is full: it was created with a size limit)"
	}
	return fmt.Errorf("nftset: %s: %s: %w%s", s.Name(), doing, err, hint)
}

// Apply applies a batch in one netlink transaction: a block adds its
// element with timeout TTL and the decision id as comment, replacing any
// element already there; an unblock removes it, present or not. When one
// element occurs more than once, the last change wins.
//
// The element: a change for everyone (sink.ScopeEveryone) blocks the IP;
// a tagged one (sink.ScopeTagged) the Client . IP pair, or Client . IP .
// Port when Port is set. Scoped, a change for everyone becomes a pair for
// each of its Clients. A change without a Scope is read as before scopes:
// unscoped sinks block its IP for everyone, scoped ones its Client . IP
// pair. IPv4-mapped IPv6 addresses count as IPv4, as they travel as IPv4.
//
// What no set of this sink can hold is skipped without error and counted
// in Skipped: an IP whose family has no set, a pair set that does not
// exist, a client of the other family than the IP, a scoped change for
// everyone without Clients. The last two are also told to Logf.
//
// Invalid changes (ErrInvalidChange) are left out and reported in the
// returned error after the rest is applied. ctx is checked before the
// transaction only: a netlink transaction cannot be abandoned halfway.
func (s *Sink) Apply(ctx context.Context, batch []sink.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	ops, invalid := s.plan(batch)
	if len(ops) > 0 {
		conn, err := s.conn()
		if err != nil {
			return s.fail("connect", err)
		}
		now := time.Now()
		for _, set := range s.sets {
			keys, adds, err := s.elementsFor(conn, set, ops, now)
			if err != nil {
				return err
			}
			// See the package doc: add makes the delete safe, delete makes
			// the final add replace.
			if len(keys) > 0 {
				err = errors.Join(conn.SetAddElements(set.Set, keys), conn.SetDeleteElements(set.Set, keys))
			}
			if len(adds) > 0 {
				err = errors.Join(err, conn.SetAddElements(set.Set, adds))
			}
			if err != nil {
				return s.fail("encode elements", err)
			}
		}
		if err := conn.Flush(); err != nil {
			return s.fail(fmt.Sprintf("apply %d change(s)", len(ops)), err)
		}
		for _, o := range ops {
			switch {
			case o.skip:
			case o.add:
				s.known[o.id()] = now.Add(o.elem.Timeout)
				if o.rng.IsValid() {
					s.ranges[o.id()] = o.rng
				}
			default:
				delete(s.known, o.id())
				delete(s.ranges, o.id())
			}
		}
	}
	return errors.Join(invalid...)
}

// elementsFor returns the elements to add then delete (keys), and those
// to add, for ops on set. An interval set that may hold ranges is read
// first, so that nothing added overlaps what is there (see the package
// doc); elsewhere the add-delete-add of the package doc does.
func (s *Sink) elementsFor(conn *nftables.Conn, set *set, ops []op, now time.Time) (keys, adds []nftables.SetElement, err error) {
	var mine []*op
	for i := range ops {
		if ops[i].set == set {
			mine = append(mine, &ops[i])
		}
	}
	if len(mine) == 0 {
		return nil, nil, nil
	}
	if set.interval && s.mayHoldRangesLocked(set, mine) {
		return s.intervalElements(conn, set, mine)
	}
	for _, o := range mine {
		if !o.add || s.mayHoldLocked(o.id(), now) {
			keys = append(keys, o.keys()...)
		}
		if o.add {
			adds = append(adds, o.elems()...)
		}
	}
	return keys, adds, nil
}

// mayHoldRangesLocked reports whether set may hold a range element, or
// ops add one.
func (s *Sink) mayHoldRangesLocked(set *set, ops []*op) bool {
	if slices.ContainsFunc(ops, func(o *op) bool { return o.rng.IsValid() }) {
		return true
	}
	for id := range s.ranges {
		if strings.HasPrefix(id, set.Name+"\x00") {
			return true
		}
	}
	return false
}

// interval is an element of an interval set: [start, end).
type interval struct{ start, end netip.Addr }

func (iv interval) covers(o interval) bool {
	return iv.start.Compare(o.start) <= 0 && (!iv.end.IsValid() || o.end.IsValid() && o.end.Compare(iv.end) <= 0)
}

// intervalElements plans ops on an interval set from what it holds now:
// a range added removes the elements inside it, an IP inside a range
// (held, or added by ops) is skipped, and only present elements are
// deleted, so the kernel never sees an overlap.
func (s *Sink) intervalElements(conn *nftables.Conn, set *set, ops []*op) (keys, adds []nftables.SetElement, err error) {
	elems, err := conn.GetSetElements(set.Set)
	if err != nil {
		return nil, nil, s.fail("list set "+set.Name, err)
	}
	held := intervals(elems)
	lifted := map[netip.Addr]bool{} // ranges this batch removes
	for _, o := range ops {
		if !o.add && o.rng.IsValid() {
			lifted[o.interval().start] = true
		}
	}
	var ranges []interval
	for _, iv := range held {
		if iv.end != iv.start.Next() && !lifted[iv.start] {
			ranges = append(ranges, iv)
		}
	}
	for _, o := range ops {
		if o.add && o.rng.IsValid() {
			ranges = append(ranges, o.interval())
		}
	}
	removed := map[netip.Addr]bool{}
	remove := func(iv interval) {
		if _, ok := held[iv.start]; ok && !removed[iv.start] {
			removed[iv.start] = true
			keys = append(keys, nftables.SetElement{Key: iv.start.AsSlice()})
			if iv.end.IsValid() {
				keys = append(keys, nftables.SetElement{Key: iv.end.AsSlice(), IntervalEnd: true})
			}
		}
	}
	for _, o := range ops {
		me := o.interval()
		if !o.rng.IsValid() && slices.ContainsFunc(ranges, func(r interval) bool { return r.covers(me) }) {
			o.skip = o.add
			if o.add {
				s.skipped[SkipCovered]++
			}
			continue
		}
		if cur, ok := held[me.start]; ok {
			remove(cur)
		}
		if !o.add {
			continue
		}
		if o.rng.IsValid() {
			for _, iv := range held {
				if me.covers(iv) {
					remove(iv)
				}
			}
		}
		adds = append(adds, o.elems()...)
	}
	// The deletes go through SetAddElements first (see Apply): the same
	// elements, present, make that a no-op.
	return keys, adds, nil
}

// intervals pairs the start and end elements of an interval set, by
// start address.
func intervals(elems []nftables.SetElement) map[netip.Addr]interval {
	type point struct {
		addr netip.Addr
		end  bool
	}
	var pts []point
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			pts = append(pts, point{a, e.IntervalEnd})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return a.addr.Compare(b.addr) })
	out := map[netip.Addr]interval{}
	for i, p := range pts {
		if p.end {
			continue
		}
		iv := interval{start: p.addr}
		if i+1 < len(pts) && pts[i+1].end {
			iv.end = pts[i+1].addr
		}
		out[p.addr] = iv
	}
	return out
}

// knownSlack is how long after the time it should have run out an element
// the sink wrote still counts as maybe present: the kernel's clock and
// ours may disagree, and replacing an absent element costs only time.
const knownSlack = time.Minute

// mayHoldLocked reports whether the element id may be in its set: the sink
// read or wrote it, and it has not surely run out.
func (s *Sink) mayHoldLocked(id string, now time.Time) bool {
	until, ok := s.known[id]
	return ok && (until.IsZero() || now.Before(until.Add(knownSlack)))
}

// op is one element to add (block) or remove (unblock); in an interval
// set, with its end element (end: the address after it; none when it
// runs to the last address).
type op struct {
	set  *set
	elem nftables.SetElement
	end  []byte
	rng  netip.Prefix // the range of a range block
	add  bool
	skip bool // covered by a range element: nothing done
}

// keys are the elements of o without timeout and comment.
func (o op) keys() []nftables.SetElement {
	out := []nftables.SetElement{{Key: o.elem.Key}}
	if o.end != nil {
		out = append(out, nftables.SetElement{Key: o.end, IntervalEnd: true})
	}
	return out
}

// elems are the elements o adds.
func (o op) elems() []nftables.SetElement {
	out := []nftables.SetElement{o.elem}
	if o.end != nil {
		out = append(out, nftables.SetElement{Key: o.end, IntervalEnd: true})
	}
	return out
}

func (o op) interval() interval {
	start, _ := netip.AddrFromSlice(o.elem.Key)
	end, _ := netip.AddrFromSlice(o.end)
	return interval{start, end}
}

// id names the element of o in its set, as known and plan name it.
func (o op) id() string { return elementID(o.set, o.elem.Key) }

func elementID(set *set, key []byte) string { return set.Name + "\x00" + string(key) }

// plan turns a batch into element operations, the last change to an
// element winning, and counts (and tells) what it skips.
func (s *Sink) plan(batch []sink.Change) (ops []op, invalid []error) {
	at := map[string]int{} // set name and key -> index in ops
	told := map[string]int{}
	for _, c := range batch {
		switch {
		case c.Action == sink.Block && c.TTL <= 0:
			invalid = append(invalid, fmt.Errorf("%w: block of %s with TTL %v", ErrInvalidChange, c.IP, c.TTL))
			continue
		case c.Action != sink.Block && c.Action != sink.Unblock:
			invalid = append(invalid, fmt.Errorf("%w: unknown action %q for %s", ErrInvalidChange, c.Action, c.IP))
			continue
		}
		targets, skips, err := s.targets(c)
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		for _, why := range skips {
			s.skipped[why]++
			if why == SkipMixedFamily || why == SkipNoClients || why == SkipNoInterval || why == SkipRangeScoped {
				told[why]++
			}
		}
		for _, t := range targets {
			o := op{set: t.set, elem: nftables.SetElement{Key: t.key}, end: t.end, rng: c.Range.Masked()}
			if c.Action == sink.Block {
				o.add = true
				o.elem.Timeout = timeout(c.TTL)
				o.elem.Comment = comment(c.Decision)
			}
			id := elementID(t.set, t.key)
			if i, ok := at[id]; ok {
				ops[i] = o
				continue
			}
			at[id] = len(ops)
			ops = append(ops, o)
		}
	}
	for _, why := range slices.Sorted(maps.Keys(told)) {
		s.logf("%s: skipped %d: %s", s.Name(), told[why], why)
	}
	return ops, invalid
}

// target is one element of a change: its set and key, and in an
// interval set the key of its end element (nil: to the last address).
type target struct {
	set *set
	key []byte
	end []byte
}

// targets are the elements change c is about, and why any it would have
// were skipped.
func (s *Sink) targets(c sink.Change) (ts []target, skips []string, err error) {
	if c.Range.IsValid() {
		return s.rangeTargets(c)
	}
	ip := c.IP.Unmap()
	if !ip.IsValid() {
		return nil, nil, fmt.Errorf("%w: %s without an IP", ErrInvalidChange, c.Action)
	}
	client := c.Client.Unmap()
	scope := c.Scope
	if scope == "" {
		// As before scopes: unscoped sets held IPs whatever the client,
		// scoped ones pairs.
		scope = sink.ScopeEveryone
		if s.cfg.Scoped && client.IsValid() {
			scope = sink.ScopeTagged
		}
	}
	// add queues client . ip (. port) into the set of kind k, or the skip.
	add := func(k kind, client netip.Addr, port uint16) {
		set := s.find(ip.Is4(), k)
		switch {
		case set == nil:
			skips = append(skips, SkipNoSet)
		case set.absent:
			skips = append(skips, SkipAbsentSet)
		case k != kindIP && client.Is4() != ip.Is4():
			skips = append(skips, SkipMixedFamily)
		case k == kindIP && set.interval:
			ts = append(ts, target{set, ip.AsSlice(), ip.Next().AsSlice()})
		default:
			ts = append(ts, target{set, elementKey(k, client, ip, port), nil})
		}
	}
	switch scope {
	case sink.ScopeEveryone:
		if !s.cfg.Scoped {
			add(kindIP, netip.Addr{}, 0)
			break
		}
		for _, cl := range c.Clients {
			if cl = cl.Unmap(); cl.IsValid() {
				add(kindPair, cl, 0)
			}
		}
		if len(ts) == 0 && len(skips) == 0 {
			skips = append(skips, SkipNoClients)
		}
	case sink.ScopeTagged:
		if !client.IsValid() {
			return nil, nil, fmt.Errorf("%w: tagged %s of %s without a client", ErrInvalidChange, c.Action, c.IP)
		}
		if c.Port != 0 {
			add(kindPort, client, c.Port)
		} else {
			add(kindPair, client, 0)
		}
	default:
		return nil, nil, fmt.Errorf("%w: unknown scope %q for %s", ErrInvalidChange, c.Scope, c.IP)
	}
	return ts, skips, nil
}

// rangeTargets is the element of a range change: the range as an
// interval in the IP set of its family, which needs flags interval.
func (s *Sink) rangeTargets(c sink.Change) ([]target, []string, error) {
	p := c.Range.Masked()
	if c.EffectiveScope() != sink.ScopeEveryone {
		return nil, nil, fmt.Errorf("%w: %s of range %s not for everyone", ErrInvalidChange, c.Action, p)
	}
	if s.cfg.Scoped {
		return nil, []string{SkipRangeScoped}, nil
	}
	set := s.find(p.Addr().Is4(), kindIP)
	switch {
	case set == nil:
		return nil, []string{SkipNoSet}, nil
	case !set.interval:
		return nil, []string{SkipNoInterval}, nil
	}
	return []target{{set, p.Addr().AsSlice(), lastAddr(p).Next().AsSlice()}}, nil, nil
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// elementKey is the key of an element of a set of kind k: each part in
// network byte order, padded to 4 bytes as in a concatenation.
func elementKey(k kind, client, ip netip.Addr, port uint16) []byte {
	switch k {
	case kindPair:
		return append(client.AsSlice(), ip.AsSlice()...)
	case kindPort:
		key := append(client.AsSlice(), ip.AsSlice()...)
		return append(key, byte(port>>8), byte(port), 0, 0)
	default:
		return ip.AsSlice()
	}
}

// Skipped counts, by reason (the Skip constants), the changes or pairs
// Apply has skipped since New.
func (s *Sink) Skipped() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.skipped)
}

// timeout rounds a TTL up to the kernel's millisecond resolution: rounded
// down, a sub-millisecond TTL would become 0, which means "no timeout". No
// cap is needed: the kernel takes up to 2^64 ns in milliseconds (about 584
// years), more than any time.Duration.
func timeout(ttl time.Duration) time.Duration {
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

// comment trims a decision id to what an element comment holds, on a
// character boundary.
func comment(decision string) string {
	if len(decision) <= maxComment {
		return decision
	}
	cut := maxComment
	for cut > 0 && !utf8.RuneStart(decision[cut]) {
		cut--
	}
	return decision[:cut]
}

// Elements lists the elements of the sets, with the time each has left and
// its comment, ordered by IP, client, then port.
func (s *Sink) Elements() ([]Element, error) {
	held, err := s.read()
	if err != nil {
		return nil, err
	}
	var out []Element
	for set, elems := range held {
		ivs := map[netip.Addr]interval{}
		if set.interval {
			ivs = intervals(elems)
		}
		for _, e := range elems {
			if e.IntervalEnd {
				continue
			}
			el, ok := parseKey(set, e.Key)
			if iv := ivs[el.IP]; ok && iv.end.IsValid() && iv.end != el.IP.Next() {
				el.Range, el.IP = rangeOf(iv), netip.Addr{}
			}
			if !ok {
				return nil, fmt.Errorf("nftset: %s: set %s holds a %d-byte key, not what it was made for", s.Name(), set.Name, len(e.Key))
			}
			el.Expires, el.Comment = e.Expires, e.Comment
			out = append(out, el)
		}
	}
	slices.SortFunc(out, func(a, b Element) int {
		return cmp.Or(a.IP.Compare(b.IP), a.Range.Addr().Compare(b.Range.Addr()), a.Client.Compare(b.Client), cmp.Compare(a.Port, b.Port))
	})
	return out, nil
}

// rangeOf is the CIDR an interval element spans (as rangeTargets wrote
// it), or the widest CIDR it starts with if it is none.
func rangeOf(iv interval) netip.Prefix {
	for bits := 0; bits <= iv.start.BitLen(); bits++ {
		p := netip.PrefixFrom(iv.start, bits)
		if p.Masked() == p && lastAddr(p).Next() == iv.end {
			return p
		}
	}
	return netip.PrefixFrom(iv.start, iv.start.BitLen())
}

// Holds reports, for each block change, whether the sets hold it as Apply
// would write it: every element of it present, with the decision id as
// comment and a timeout (if any) that ends no more than sink.TTLSlack
// before the change's TTL. A change whose elements are all skipped (see
// Apply) counts as held. It makes the Sink a sink.Checker, so that
// reconciling puts back what was deleted by hand or lost.
func (s *Sink) Holds(ctx context.Context, blocks []sink.Change) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	held, err := s.read()
	if err != nil {
		return nil, err
	}
	have := map[string]nftables.SetElement{}
	var ranges []interval // held range elements, which cover the IPs in them
	for set, elems := range held {
		for _, e := range elems {
			if !e.IntervalEnd {
				have[elementID(set, e.Key)] = e
			}
		}
		if set.interval {
			for _, iv := range intervals(elems) {
				if iv.end != iv.start.Next() {
					ranges = append(ranges, iv)
				}
			}
		}
	}
	out := make([]bool, len(blocks))
	for i, c := range blocks {
		out[i] = true
		if c.Action != sink.Block {
			continue
		}
		ts, _, _ := s.targets(c) // an invalid change has none: Apply would refuse it too
		for _, t := range ts {
			ip, _ := netip.AddrFromSlice(t.key)
			end, _ := netip.AddrFromSlice(t.end)
			if !c.Range.IsValid() && slices.ContainsFunc(ranges, func(r interval) bool { return r.covers(interval{ip, end}) }) {
				continue
			}
			e, ok := have[elementID(t.set, t.key)]
			if !ok || e.Comment != comment(c.Decision) || (e.Expires > 0 && e.Expires+sink.TTLSlack < c.TTL) {
				out[i] = false
			}
		}
	}
	return out, nil
}

// read lists the elements of every set that exists, and makes them what
// the sink knows to be present.
func (s *Sink) read() (map[*set][]nftables.SetElement, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	conn, err := s.conn()
	if err != nil {
		return nil, s.fail("connect", err)
	}
	now := time.Now()
	out := map[*set][]nftables.SetElement{}
	known := map[string]time.Time{}
	ranges := map[string]netip.Prefix{}
	for _, set := range s.present() {
		elems, err := conn.GetSetElements(set.Set)
		if err != nil {
			return nil, s.fail("list set "+set.Name, err)
		}
		out[set] = elems
		if set.interval {
			for start, iv := range intervals(elems) {
				if iv.end != start.Next() {
					ranges[elementID(set, start.AsSlice())] = rangeOf(iv)
				}
			}
		}
		for _, e := range elems {
			if e.IntervalEnd {
				continue
			}
			var until time.Time
			if e.Expires > 0 {
				until = now.Add(e.Expires)
			}
			known[elementID(set, e.Key)] = until
		}
	}
	s.known, s.ranges = known, ranges
	return out, nil
}

// parseKey reads an element key written by elementKey.
func parseKey(set *set, key []byte) (Element, bool) {
	n := 16
	if set.v4 {
		n = 4
	}
	var el Element
	var okClient, okIP bool
	switch {
	case set.kind == kindIP && len(key) == n:
		el.IP, okIP = netip.AddrFromSlice(key)
		okClient = true
	case set.kind == kindPair && len(key) == 2*n,
		set.kind == kindPort && len(key) == 2*n+4:
		el.Client, okClient = netip.AddrFromSlice(key[:n])
		el.IP, okIP = netip.AddrFromSlice(key[n : 2*n])
		if set.kind == kindPort {
			el.Port = uint16(key[2*n])<<8 | uint16(key[2*n+1])
		}
	}
	return el, okClient && okIP
}

// Close ends the sink's use; Apply and Elements then return ErrClosed. The
// sets, their elements and the rules stay: blocks run out on their own.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
