// Package risk turns a Criminal IP report into a verdict: suspicious or not,
// and why. It is the original tool's multi-factor rule set, made
// configurable: which factors count and which score levels are bad. It is
// pure: no I/O, no clock, no state.
package risk

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
)

// Factor is a reason code.
type Factor string

// The factors, as named in the fixtures README.
const (
	Score               Factor = "SCORE"
	SSLSelfSigned       Factor = "SSL_SELF_SIGNED"
	SSLExpired          Factor = "SSL_EXPIRED"
	TagDirectoryListing Factor = "TAG_DIRECTORY_LISTING"
	TagMining           Factor = "TAG_MINING"
	AnonVPN             Factor = "ANON_VPN"
	AnonAnonymousVPN    Factor = "ANON_ANONYMOUS_VPN"
	AnonTor             Factor = "ANON_TOR"
	AnonProxy           Factor = "ANON_PROXY"
	SSHOpenSSH          Factor = "SSH_OPENSSH"
)

// allFactors is the evaluation and output order.
var allFactors = []Factor{Score, SSLSelfSigned, SSLExpired, TagDirectoryListing, TagMining,
	AnonVPN, AnonAnonymousVPN, AnonTor, AnonProxy, SSHOpenSSH}

// Groups are the names the Corefile's `factors` option takes.
var Groups = map[string][]Factor{
	"score":     {Score},
	"ssl":       {SSLSelfSigned, SSLExpired},
	"vuln":      {TagDirectoryListing},
	"mining":    {TagMining},
	"anonymity": {AnonVPN, AnonAnonymousVPN, AnonTor, AnonProxy},
	"ssh":       {SSHOpenSSH},
}

// Levels are the score words, lowest first.
var Levels = []string{"Safe", "Low", "Moderate", "Dangerous", "Critical"}

// Reason is one factor that fired, with a human detail such as the port.
// Hint marks a reason that comes from the connection (a destination port or
// product hint) rather than from the report: it belongs to a finding, never
// to the verdict cached for the IP.
type Reason struct {
	Factor Factor `json:"factor"`
	Detail string `json:"detail"`
	Hint   bool   `json:"hint,omitempty"`
}

// Verdict is the outcome of an evaluation.
type Verdict struct {
	Suspicious bool     `json:"suspicious"`
	Reasons    []Reason `json:"reasons"`
	// Score is the highest score level in the report ("" if none), whether
	// or not that level counts as a factor.
	Score string `json:"score"`
}

// Factors returns the reason codes, in evaluation order.
func (v Verdict) Factors() []Factor {
	out := make([]Factor, len(v.Reasons))
	for i, r := range v.Reasons {
		out[i] = r.Factor
	}
	return out
}

// Hints are what the caller knows about the connection, as in the original
// tool: the destination port, and a product name seen on it.
type Hints struct {
	Port    int    // 0 when unknown
	Product string // e.g. "OpenSSH"; "" when unknown
}

// Policy says which factors count, which score levels are bad, and how far
// each factor's evidence reaches (its Scope). The zero Policy counts
// nothing; start from DefaultPolicy.
type Policy struct {
	factors map[Factor]bool
	levels  map[string]bool // lower-case level words
	scopes  map[Factor]Scope
}

// DefaultPolicy counts every factor, and Dangerous and Critical scores, at
// the default scopes (see DefaultScopes).
func DefaultPolicy() Policy {
	p := Policy{factors: map[Factor]bool{}, levels: map[string]bool{"dangerous": true, "critical": true}, scopes: DefaultScopes()}
	for _, f := range allFactors {
		p.factors[f] = true
	}
	return p
}

// WithFactors returns p counting only the named factors. A name is a group
// (score ssl vuln mining anonymity ssh) or a factor code (e.g. ANON_TOR),
// case-insensitive. An unknown name is an error that names it.
func (p Policy) WithFactors(names ...string) (Policy, error) {
	if len(names) == 0 {
		return p, fmt.Errorf("no factors given; choose from %s", strings.Join(groupNames(), " "))
	}
	set := map[Factor]bool{}
	for _, n := range names {
		fs, err := FactorsNamed(n)
		if err != nil {
			return p, err
		}
		for _, f := range fs {
			set[f] = true
		}
	}
	p.factors = set
	return p, nil
}

// FactorsNamed returns the factors a name stands for: a group (score ssl
// vuln mining anonymity ssh) or a factor code (e.g. ANON_TOR),
// case-insensitive. An unknown name is an error that names it.
func FactorsNamed(name string) ([]Factor, error) {
	if fs, ok := Groups[strings.ToLower(name)]; ok {
		return fs, nil
	}
	f := Factor(strings.ToUpper(name))
	if !slices.Contains(allFactors, f) {
		return nil, fmt.Errorf("unknown factor %q; choose from %s or a code such as %s", name, strings.Join(groupNames(), " "), AnonTor)
	}
	return []Factor{f}, nil
}

// GroupOf returns the group of factor f (as the Corefile's `factors`
// option names it), or f's code in lower case if it is in none.
func GroupOf(f Factor) string {
	for g, fs := range Groups {
		if slices.Contains(fs, f) {
			return g
		}
	}
	return strings.ToLower(string(f))
}

// WithScoreLevels returns p counting the named score levels as bad.
func (p Policy) WithScoreLevels(names ...string) (Policy, error) {
	if len(names) == 0 {
		return p, fmt.Errorf("no score levels given; choose from %s", strings.ToLower(strings.Join(Levels, " ")))
	}
	set := map[string]bool{}
	for _, n := range names {
		if levelRank(n) < 0 {
			return p, fmt.Errorf("unknown score level %q; choose from %s", n, strings.ToLower(strings.Join(Levels, " ")))
		}
		set[strings.ToLower(n)] = true
	}
	p.levels = set
	return p, nil
}

// Counts reports whether factor f is enabled.
func (p Policy) Counts(f Factor) bool { return p.factors[f] }

func groupNames() []string {
	names := make([]string, 0, len(Groups))
	for n := range Groups {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func levelRank(s string) int {
	return slices.IndexFunc(Levels, func(l string) bool { return strings.EqualFold(l, strings.TrimSpace(s)) })
}

// Evaluate applies the default policy.
func Evaluate(r *criminalip.Report, h Hints) Verdict {
	return DefaultPolicy().Evaluate(r, h)
}

// Evaluate applies p to a report. A nil report gives a clean verdict with
// only hint-based reasons.
func (p Policy) Evaluate(r *criminalip.Report, h Hints) Verdict {
	if r == nil {
		r = &criminalip.Report{}
	}
	found := map[Factor][]string{}
	add := func(f Factor, detail string) {
		if !slices.Contains(found[f], detail) {
			found[f] = append(found[f], detail)
		}
	}

	var v Verdict
	best := -1
	var bad []string
	for _, dir := range []struct{ name, level string }{
		{"inbound", r.Score.Inbound}, {"outbound", r.Score.Outbound}, {"overall", r.Score.Overall},
	} {
		rank := levelRank(dir.level)
		if rank < 0 {
			continue
		}
		if rank > best {
			best = rank
		}
		if p.levels[strings.ToLower(Levels[rank])] {
			bad = append(bad, dir.name+" "+Levels[rank])
		}
	}
	if best >= 0 {
		v.Score = Levels[best]
	}
	if len(bad) > 0 {
		add(Score, strings.Join(bad, ", "))
	}

	ports := map[Factor][]int{}
	for _, port := range r.Ports {
		ssl := strings.ToLower(port.SSLInfo)
		if strings.Contains(ssl, "self-signed") || strings.Contains(ssl, "self signed") {
			ports[SSLSelfSigned] = append(ports[SSLSelfSigned], port.Port)
		}
		if strings.Contains(ssl, "expired") {
			ports[SSLExpired] = append(ports[SSLExpired], port.Port)
		}
		for _, tag := range port.Tags {
			switch strings.ToLower(strings.TrimSpace(tag)) {
			case "directory listing", "directory-listing":
				ports[TagDirectoryListing] = append(ports[TagDirectoryListing], port.Port)
			case "mining":
				ports[TagMining] = append(ports[TagMining], port.Port)
			}
		}
		if strings.Contains(strings.ToLower(port.AppName), "openssh") {
			ports[SSHOpenSSH] = append(ports[SSHOpenSSH], port.Port)
		}
	}
	portDetails := map[Factor]string{
		SSLSelfSigned:       "self-signed certificate",
		SSLExpired:          "expired certificate",
		TagDirectoryListing: "directory listing",
		TagMining:           "mining",
		SSHOpenSSH:          "OpenSSH",
	}
	for f, what := range portDetails {
		if ps := ports[f]; len(ps) > 0 {
			add(f, what+" on "+portList(ps))
		}
	}

	for _, flag := range []struct {
		on   bool
		f    Factor
		name string
	}{
		{r.Issues.VPN, AnonVPN, "is_vpn"},
		{r.Issues.AnonymousVPN, AnonAnonymousVPN, "is_anonymous_vpn"},
		{r.Issues.Tor, AnonTor, "is_tor"},
		{r.Issues.Proxy, AnonProxy, "is_proxy"},
	} {
		if flag.on {
			add(flag.f, "issues."+flag.name)
		}
	}
	for _, c := range r.Categories {
		t := strings.ToLower(strings.TrimSpace(c.Type))
		switch t {
		case "vpn":
			add(AnonVPN, "category "+t)
		case "anonymous_vpn", "anonymous vpn", "anonymous-vpn":
			add(AnonAnonymousVPN, "category "+t)
		case "tor":
			add(AnonTor, "category "+t)
		case "proxy":
			add(AnonProxy, "category "+t)
		}
	}

	for _, f := range allFactors {
		if details := found[f]; len(details) > 0 && p.factors[f] {
			v.Reasons = append(v.Reasons, Reason{Factor: f, Detail: strings.Join(details, "; ")})
		}
	}
	v.Reasons = append(v.Reasons, p.HintReasons(h)...)
	v.Suspicious = len(v.Reasons) > 0
	return v
}

// HintReasons are the reasons a connection's hints alone give: port 22,
// or an OpenSSH product, is SSH exposure. They need no report, so a
// finding can be built from a cached verdict and the connection's hints.
func (p Policy) HintReasons(h Hints) []Reason {
	if !p.factors[SSHOpenSSH] {
		return nil
	}
	if h.Port == 22 {
		return []Reason{{Factor: SSHOpenSSH, Detail: "destination port 22 (SSH)", Hint: true}}
	}
	if strings.Contains(strings.ToLower(h.Product), "openssh") {
		where := "an unknown port"
		if h.Port > 0 {
			where = "non-22 port " + strconv.Itoa(h.Port)
		}
		return []Reason{{Factor: SSHOpenSSH, Detail: "OpenSSH on " + where + " (product hint)", Hint: true}}
	}
	return nil
}

// portList renders ports as "port 22" or "ports 80, 8080".
func portList(ps []int) string {
	slices.Sort(ps)
	ps = slices.Compact(ps)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	if len(ps) == 1 {
		return "port " + s[0]
	}
	return "ports " + strings.Join(s, ", ")
}

// String is the reason as every output shows it: "FACTOR: detail". It is
// the one place a reason is formatted.
func (r Reason) String() string { return string(r.Factor) + ": " + r.Detail }
