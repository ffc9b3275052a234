package cipvalidate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/audit"
	"github.com/coredns-cip/coredns-cip/internal/dnsreply"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/logfmt"
	"github.com/coredns-cip/coredns-cip/internal/risk"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/miekg/dns"
)

var log = clog.NewWithPlugin(pluginName)

// rewrite builds the answer that replaces one pointing at suspicious
// infrastructure: per `action`, with a short TTL, and with an Extended DNS
// Error (RFC 8914, Blocked) saying which IP, why, and the decision id.
// Other types of a sinkholed name get no data.
func (c *CIPValidate) rewrite(req *dns.Msg, v verdicts.Verdict, ip netip.Addr) *dns.Msg {
	rcode, ans := dns.RcodeSuccess, dnsreply.Answer{TTL: defaultRewriteTTL}
	switch c.cfg.action {
	case ActionRefuse:
		rcode = dns.RcodeRefused
	case ActionNXDomain:
		rcode = dns.RcodeNameError
	case ActionSinkhole:
		if t := req.Question[0].Qtype; t == dns.TypeA || t == dns.TypeAAAA {
			ans.Rrtype, ans.IP = t, c.sinkIP(t == dns.TypeAAAA)
		}
	}
	return dnsreply.Build(req, rcode, ans, dns.ExtendedErrorCodeBlocked, c.ede.text(v, ip))
}

// sinkIP returns the sinkhole address for A (v6 false) or AAAA answers.
// start computes them once; the records of every rewritten answer share
// them, which is safe because packing a message only reads them.
func (c *CIPValidate) sinkIP(v6 bool) net.IP {
	ip, addr := c.sinkA, c.cfg.sink4
	if v6 {
		ip, addr = c.sinkAAAA, c.cfg.sink6
	}
	if ip == nil {
		ip = net.IP(addr.AsSlice())
	}
	return ip
}

// refuseUnvalidated answers REFUSED for `fail closed`, with an EDE saying
// the IP could not be validated.
func (c *CIPValidate) refuseUnvalidated(req *dns.Msg, v verdicts.Verdict, ip netip.Addr) *dns.Msg {
	return dnsreply.Build(req, dns.RcodeRefused, dnsreply.Answer{}, dns.ExtendedErrorCodeProhibited,
		fmt.Sprintf("cipvalidate: %s could not be validated (%s), fail closed; decision %s", ip, v.Error, v.Decision))
}

// edeText is the EDE extra text: "cipvalidate: 45.83.0.21 suspicious
// (SCORE: inbound Critical; SSL_EXPIRED: ...); scope everyone; decision
// cip-…".
func edeText(v verdicts.Verdict, ip netip.Addr) string {
	scope := v.Scope
	if scope == "" {
		scope = risk.ScopeEveryone
	}
	return fmt.Sprintf("cipvalidate: %s suspicious (%s); scope %s; decision %s", ip, v.ReasonText(), scope, v.Decision)
}

// typeName is the mnemonic of a query type, or TYPEn.
func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// Actions of the decision lines and the rewritten-answers counter besides
// the configured one.
const (
	actionMonitor           = "monitor"
	actionRefuseUnvalidated = "refuse_unvalidated"
)

// logDecision writes the `decision` line of a rewrite (or, in monitor mode,
// of a rewrite that would have happened; repeats are aggregated, see
// decisionLog), counts it and audits it.
func (c *CIPValidate) logDecision(ctx context.Context, client netip.Addr, req *dns.Msg, v verdicts.Verdict, ip netip.Addr, via string, now time.Time) {
	c.decision(ctx, client, req, v, ip, string(c.cfg.action), via, now)
}

// logFailClosed is logDecision for an answer refused because its IP could
// not be validated.
func (c *CIPValidate) logFailClosed(ctx context.Context, client netip.Addr, req *dns.Msg, v verdicts.Verdict, ip netip.Addr, now time.Time) {
	v.Reasons = []risk.Reason{{Factor: "FAIL_CLOSED", Detail: "could not be validated: " + string(v.Error)}}
	c.decision(ctx, client, req, v, ip, actionRefuseUnvalidated, "fail_closed", now)
}

// decision counts, logs (aggregated) and audits one rewrite by action.
func (c *CIPValidate) decision(ctx context.Context, client netip.Addr, req *dns.Msg, v verdicts.Verdict, ip netip.Addr, action, via string, now time.Time) {
	kind := audit.KindRewrite
	if action == actionRefuseUnvalidated {
		kind = audit.KindFailClosed
	}
	if c.cfg.monitor {
		action = actionMonitor
	}
	c.countersFor(ctx).rewritten(action).Inc()
	if action == string(c.cfg.action) {
		c.eng.CountRewrite(v.Decision)
	}
	q := req.Question[0]
	k := decisionKey{client: client, ip: ip, qname: q.Name, qtype: q.Qtype, action: action}
	if c.decisions == nil || c.decisions.first(k, v.Decision, via, now) {
		logfmt.Decision{Decision: v.Decision, Client: client.String(), Qname: q.Name, Qtype: typeName(q.Qtype), IP: ip.String(),
			Action: action, Via: via, Scope: string(v.Scope), Reasons: v.ReasonList()}.Log(log, pluginName)
	}
	if !c.eng.State().Auditing() {
		return // skip building the entry
	}
	c.eng.Audit(audit.Entry{Time: now, Kind: kind, Decision: v.Decision, IP: ip.String(), Client: enforce.AddrString(client), Qname: q.Name,
		Reasons: v.ReasonList(), TTL: defaultRewriteTTL, Actor: pluginName, Detail: action + " " + typeName(q.Qtype)})
}
