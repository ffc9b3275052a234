package risk

import (
	"fmt"
	"strings"
)

// Scope is how far a factor's evidence reaches once it makes an IP
// suspicious.
type Scope string

// The scopes, narrowest first.
const (
	// ScopeMonitor: decided, logged, audited and counted; nothing enforced.
	ScopeMonitor Scope = "monitor"
	// ScopeTagged: DNS answers are rewritten for tagged clients only, and
	// firewall blocks are pairs tagged client -> IP (-> IP:port for a
	// destination-port finding).
	ScopeTagged Scope = "tagged"
	// ScopeEveryone: DNS answers are rewritten for every client (with
	// `enforce all`) and the IP is blocked for everyone.
	ScopeEveryone Scope = "everyone"
)

// Scopes lists the scopes in the order of their reach.
var Scopes = []Scope{ScopeMonitor, ScopeTagged, ScopeEveryone}

func (s Scope) rank() int {
	for i, x := range Scopes {
		if x == s {
			return i
		}
	}
	return -1
}

// Wider returns the wider of s and t.
func (s Scope) Wider(t Scope) Scope {
	if t.rank() > s.rank() {
		return t
	}
	return s
}

// Reaches reports whether evidence of scope s is enforced for a client
// that is tagged (or not). The empty scope, of verdicts reached before
// scopes existed, reaches everyone, as they did.
func (s Scope) Reaches(tagged bool) bool {
	return s == ScopeEveryone || s == "" || (s == ScopeTagged && tagged)
}

// DefaultScopes is where each factor reaches unless the Corefile says
// otherwise. Strong evidence that is rare among legitimate hosts (a
// Dangerous or Critical reputation, Tor, mining) reaches everyone; exposure
// that is common among legitimate hosts (OpenSSH, self-signed or expired
// certificates, directory listings, VPN and proxy endpoints) reaches only
// the clients an event tagged, since blocking it for everyone would cut a
// company off a code host or a partner's VPN.
func DefaultScopes() map[Factor]Scope {
	m := map[Factor]Scope{}
	for _, f := range allFactors {
		m[f] = ScopeTagged
	}
	for _, f := range []Factor{Score, AnonTor, TagMining} {
		m[f] = ScopeEveryone
	}
	return m
}

// ParseScope reads a scope name.
func ParseScope(name string) (Scope, error) {
	for _, s := range Scopes {
		if strings.EqualFold(name, string(s)) {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown scope %q; choose from everyone, tagged or monitor", name)
}

// WithScope returns p with the named factors (groups, codes, or "all") at
// scope s. Reasons from connection hints are always tagged: a destination
// port is a fact about one client's connection.
func (p Policy) WithScope(s Scope, names ...string) (Policy, error) {
	if len(names) == 0 {
		return p, fmt.Errorf("no factors given; choose from all %s", strings.Join(groupNames(), " "))
	}
	scopes := map[Factor]Scope{}
	for f, sc := range p.scopes {
		scopes[f] = sc
	}
	if len(scopes) == 0 {
		scopes = DefaultScopes()
	}
	for _, n := range names {
		fs, err := factorsNamed(n)
		if err != nil {
			return p, err
		}
		for _, f := range fs {
			scopes[f] = s
		}
	}
	p.scopes = scopes
	return p, nil
}

// factorsNamed resolves a group, a factor code or "all".
func factorsNamed(n string) ([]Factor, error) {
	if strings.EqualFold(n, "all") {
		return allFactors, nil
	}
	if fs, ok := Groups[strings.ToLower(n)]; ok {
		return fs, nil
	}
	for _, f := range allFactors {
		if strings.EqualFold(n, string(f)) {
			return []Factor{f}, nil
		}
	}
	return nil, fmt.Errorf("unknown factor %q; choose from all %s or a code such as %s", n, strings.Join(groupNames(), " "), AnonTor)
}

// ScopeOf is the reach of a finding with these reasons: the widest of its
// reasons' scopes (a hint's is tagged), or monitor with none.
func (p Policy) ScopeOf(reasons []Reason) Scope {
	scope := ScopeMonitor
	for _, r := range reasons {
		s := ScopeTagged
		if !r.Hint {
			s = p.scopeOf(r.Factor)
		}
		scope = scope.Wider(s)
	}
	return scope
}

func (p Policy) scopeOf(f Factor) Scope {
	if s, ok := p.scopes[f]; ok {
		return s
	}
	return DefaultScopes()[f]
}

// ScopeOfFactor is the configured scope of factor f.
func (p Policy) ScopeOfFactor(f Factor) Scope { return p.scopeOf(f) }
