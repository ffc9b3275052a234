// Package nftset enforces block decisions in nftables sets, over native
// netlink (github.com/google/nftables; no nft binary needed). Blocked IPs
// are set elements with a kernel timeout, so a block lapses on time even
// while coredns-cip is down, and each element's comment carries the
// decision id, so `nft list set` shows why an IP is there.
//
// Apply is idempotent without reading the set first: every change in a
// batch becomes "add the key (no-op if present), delete it, add it again
// with its timeout and comment" (the last add only for a block), all in
// one netlink transaction. The first add makes the delete safe for a key
// that is absent (no ENOENT to fail the batch); the delete makes the
// second add replace an existing element's timeout and comment, which a
// plain re-add does not (kernels before 6.12 keep the old timeout, and no
// kernel updates the comment).
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
// Retrying it cannot help; the rest of its batch is applied regardless.
var ErrInvalidChange = errors.New("nftset: invalid change")

// ErrClosed is returned by Apply and Elements after Close.
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

// Config says which sets to keep blocked IPs in. Corefile:
// hook nftables FAMILY TABLE SET4 SET6 [create] [scoped].
type Config struct {
	Family string // "inet", "ip" or "ip6"
	Table  string
	Set4   string // set for IPv4 destinations ("" = none)
	Set6   string // set for IPv6 destinations ("" = none)
	// Create creates the table, the sets (flags timeout) and the drop rules
	// when missing. It never deletes or changes anything that exists.
	Create bool
	// Scoped sets hold client . destination pairs, matched against
	// saddr . daddr: a block only affects the client it was decided for.
	Scoped bool
	NetNS  int // network namespace fd to operate in; 0 = the current one
}

// Element is one entry of a set.
type Element struct {
	IP      netip.Addr    // the blocked destination
	Client  netip.Addr    // the client it is blocked for; zero unless scoped
	Expires time.Duration // time left before the kernel drops it; 0: no timeout
	Comment string        // the decision id
}

// Sink keeps blocked IPs in nftables sets. It implements sink.Sink.
type Sink struct {
	cfg   Config
	table *nftables.Table
	set4  *nftables.Set // nil: IPv4 changes are skipped
	set6  *nftables.Set // nil: IPv6 changes are skipped

	mu     sync.Mutex // serialises batches, so they reach the kernel in call order
	closed bool
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
	s := &Sink{cfg: cfg, table: &nftables.Table{Name: cfg.Table, Family: family}}
	// Set IDs only name sets within one transaction; fixed ones spare us
	// the library's shared (and unsynchronised) ID counter.
	if cfg.Set4 != "" {
		s.set4 = s.newSet(cfg.Set4, nftables.TypeIPAddr, 1)
	}
	if cfg.Set6 != "" {
		s.set6 = s.newSet(cfg.Set6, nftables.TypeIP6Addr, 2)
	}
	if err := s.setup(); err != nil {
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
	return family, nil
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

func (s *Sink) newSet(name string, addr nftables.SetDatatype, id uint32) *nftables.Set {
	key := addr
	if s.cfg.Scoped {
		key = nftables.MustConcatSetType(addr, addr)
	}
	return &nftables.Set{
		Table:         s.table,
		ID:            id,
		Name:          name,
		HasTimeout:    true,
		Concatenation: s.cfg.Scoped,
		KeyType:       key,
		KeyByteOrder:  binaryutil.BigEndian,
		Comment:       "coredns-cip blocked destinations",
	}
}

// sets lists the configured sets.
func (s *Sink) sets() []*nftables.Set {
	var sets []*nftables.Set
	for _, set := range []*nftables.Set{s.set4, s.set6} {
		if set != nil {
			sets = append(sets, set)
		}
	}
	return sets
}

func (s *Sink) conn() (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(s.cfg.NetNS))
}

// Name is the sink's name in logs and metrics, e.g.
// "nftables inet cip blocked4 blocked6".
func (s *Sink) Name() string {
	parts := []string{"nftables", s.cfg.Family, s.cfg.Table}
	for _, set := range s.sets() {
		parts = append(parts, set.Name)
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
	for _, want := range s.sets() {
		have, ok := existing[want.Name]
		switch {
		case ok:
			if err := s.check(have, want); err != nil {
				return err
			}
		case s.cfg.Create:
			if err := conn.AddSet(want, nil); err != nil {
				return s.fail("add set "+want.Name, err)
			}
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
	return nil
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
	if have.Interval {
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
		for _, set := range s.sets() {
			if tag := ruleTag + set.Name; !tagged[tag] {
				conn.AddRule(&nftables.Rule{
					Table:    s.table,
					Chain:    chain,
					Exprs:    s.dropExprs(set),
					UserData: userdata.AppendString(nil, userdata.TypeComment, tag),
				})
			}
		}
	}
	return nil
}

// dropExprs is `ip daddr @set drop` (`ip6 daddr`, and `ip saddr . ip daddr`
// when scoped) as the nft tool compiles it.
func (s *Sink) dropExprs(set *nftables.Set) []expr.Any {
	v4 := set == s.set4
	var exprs []expr.Any
	if s.table.Family == nftables.TableFamilyINet {
		// An inet table sees both families: match the one the set is for
		// before reading addresses at its offsets.
		proto := byte(unix.NFPROTO_IPV6)
		if v4 {
			proto = unix.NFPROTO_IPV4
		}
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: unix.NFT_REG_1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: []byte{proto}},
		)
	}
	// Offsets into the IPv4 / IPv6 header; the destination of a pair goes
	// in the register right after the source (4-byte and 16-byte registers).
	saddr, daddr, size, next := uint32(12), uint32(16), uint32(4), uint32(unix.NFT_REG32_01)
	if !v4 {
		saddr, daddr, size, next = 8, 24, 16, unix.NFT_REG_2
	}
	load := func(offset, reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size}
	}
	if s.cfg.Scoped {
		exprs = append(exprs, load(saddr, unix.NFT_REG_1), load(daddr, next))
	} else {
		exprs = append(exprs, load(daddr, unix.NFT_REG_1))
	}
	return append(exprs,
		&expr.Lookup{SourceRegister: unix.NFT_REG_1, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// commands is the nft script that sets up what Create would.
func (s *Sink) commands() string {
	fam, tab := s.cfg.Family, s.cfg.Table
	lines := []string{fmt.Sprintf("  nft add table %s %s", fam, tab)}
	for _, set := range s.sets() {
		lines = append(lines, s.setCommand(set))
	}
	for _, chain := range []struct{ name, hook string }{{chainOutput, "output"}, {chainForward, "forward"}} {
		lines = append(lines, fmt.Sprintf("  nft add chain %s %s %s '{ type filter hook %s priority filter; policy accept; }'",
			fam, tab, chain.name, chain.hook))
		for _, set := range s.sets() {
			ip := "ip6"
			if set == s.set4 {
				ip = "ip"
			}
			match := ip + " daddr"
			if s.cfg.Scoped {
				match = ip + " saddr . " + ip + " daddr"
			}
			lines = append(lines, fmt.Sprintf("  nft add rule %s %s %s %s @%s drop comment '\"%s%s\"'",
				fam, tab, chain.name, match, set.Name, ruleTag, set.Name))
		}
	}
	return strings.Join(lines, "\n")
}

func (s *Sink) setCommand(set *nftables.Set) string {
	return fmt.Sprintf("  nft add set %s %s %s '{ type %s; flags timeout; }'", s.cfg.Family, s.cfg.Table, set.Name, set.KeyType.Name)
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

// Apply applies a batch in one netlink transaction: a block adds the IP
// (or client . IP pair, when scoped) with timeout TTL and the decision id
// as comment, replacing any element already there; an unblock removes it,
// present or not. When one key occurs more than once, the last change
// wins.
//
// Changes this sink has no set for are skipped, without error: an IP
// whose family has no set and, when scoped, a change without a Client (a
// pair set cannot hold "everyone") or whose Client and IP differ in
// family. Unscoped, the Client is ignored: the block is for everyone.
// IPv4-mapped IPv6 addresses count as IPv4, as they travel as IPv4.
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
	type op struct {
		set  *nftables.Set
		elem nftables.SetElement
		add  bool
	}
	var (
		ops     []op
		at      = map[string]int{} // set name and key -> index in ops
		invalid []error
	)
	for _, c := range batch {
		set, key, err := s.target(c)
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		if set == nil {
			continue
		}
		o := op{set: set, elem: nftables.SetElement{Key: key}}
		switch c.Action {
		case sink.Block:
			if c.TTL <= 0 {
				invalid = append(invalid, fmt.Errorf("%w: block of %s with TTL %v", ErrInvalidChange, c.IP, c.TTL))
				continue
			}
			o.add = true
			o.elem.Timeout = timeout(c.TTL)
			o.elem.Comment = comment(c.Decision)
		case sink.Unblock:
		default:
			invalid = append(invalid, fmt.Errorf("%w: unknown action %q for %s", ErrInvalidChange, c.Action, c.IP))
			continue
		}
		id := set.Name + "\x00" + string(key)
		if i, ok := at[id]; ok {
			ops[i] = o
			continue
		}
		at[id] = len(ops)
		ops = append(ops, o)
	}
	if len(ops) > 0 {
		conn, err := s.conn()
		if err != nil {
			return s.fail("connect", err)
		}
		for _, set := range s.sets() {
			var keys, adds []nftables.SetElement
			for _, o := range ops {
				if o.set != set {
					continue
				}
				keys = append(keys, nftables.SetElement{Key: o.elem.Key})
				if o.add {
					adds = append(adds, o.elem)
				}
			}
			if len(keys) == 0 {
				continue
			}
			// See the package doc: add makes the delete safe, delete makes
			// the final add replace.
			err := errors.Join(conn.SetAddElements(set, keys), conn.SetDeleteElements(set, keys))
			if len(adds) > 0 {
				err = errors.Join(err, conn.SetAddElements(set, adds))
			}
			if err != nil {
				return s.fail("encode elements", err)
			}
		}
		if err := conn.Flush(); err != nil {
			return s.fail(fmt.Sprintf("apply %d change(s)", len(ops)), err)
		}
	}
	return errors.Join(invalid...)
}

// target is the set and element key a change is about; a nil set means
// this sink skips it.
func (s *Sink) target(c sink.Change) (*nftables.Set, []byte, error) {
	ip := c.IP.Unmap()
	if !ip.IsValid() {
		return nil, nil, fmt.Errorf("%w: %s without an IP", ErrInvalidChange, c.Action)
	}
	set := s.set6
	if ip.Is4() {
		set = s.set4
	}
	if set == nil {
		return nil, nil, nil
	}
	if !s.cfg.Scoped {
		return set, ip.AsSlice(), nil
	}
	client := c.Client.Unmap()
	if !client.IsValid() || client.Is4() != ip.Is4() {
		return nil, nil, nil
	}
	return set, append(client.AsSlice(), ip.AsSlice()...), nil
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
// its comment, ordered by IP then client.
func (s *Sink) Elements() ([]Element, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	conn, err := s.conn()
	if err != nil {
		return nil, s.fail("connect", err)
	}
	var out []Element
	for _, set := range s.sets() {
		elems, err := conn.GetSetElements(set)
		if err != nil {
			return nil, s.fail("list set "+set.Name, err)
		}
		for _, e := range elems {
			el := Element{Expires: e.Expires, Comment: e.Comment}
			var ok bool
			if s.cfg.Scoped {
				half := len(e.Key) / 2
				client, okClient := netip.AddrFromSlice(e.Key[:half])
				el.Client = client
				el.IP, ok = netip.AddrFromSlice(e.Key[half:])
				ok = ok && okClient
			} else {
				el.IP, ok = netip.AddrFromSlice(e.Key)
			}
			if !ok {
				return nil, fmt.Errorf("nftset: %s: set %s holds a %d-byte key, not an address", s.Name(), set.Name, len(e.Key))
			}
			out = append(out, el)
		}
	}
	slices.SortFunc(out, func(a, b Element) int {
		return cmp.Or(a.IP.Compare(b.IP), a.Client.Compare(b.Client))
	})
	return out, nil
}

// Close ends the sink's use; Apply and Elements then return ErrClosed. The
// sets, their elements and the rules stay: blocks run out on their own.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
