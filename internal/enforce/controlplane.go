package enforce

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The control plane is what the resolver itself depends on: the Criminal
// IP API, the webhook and Redis endpoints, and the upstream resolvers of the
// server block. Blocking or sinkholing any of them would cut the product
// off from its own evidence or its hooks (or the whole company off DNS), so
// a decision against one is declined, with a log line saying which.
type controlPlane struct {
	mu    sync.RWMutex
	ips   map[netip.Addr]string // address -> what it is
	names map[string]string     // fully qualified, lower case name -> what it is
}

// controlPlaneResolve bounds the lookups of the control plane's names.
const controlPlaneResolve = 5 * time.Second

// startControlPlane gathers the control plane's addresses and names; names
// are resolved in the background, so that a resolver that cannot resolve
// at start (it may be its own upstream's client) still starts.
func (e *Engine) startControlPlane() {
	cp := &controlPlane{ips: map[netip.Addr]string{}, names: map[string]string{}}
	var hosts [][2]string // host, what
	if u, err := url.Parse(e.cfg.APIURL); err == nil && u.Host != "" {
		hosts = append(hosts, [2]string{u.Hostname(), "Criminal IP API " + u.Hostname()})
	}
	for _, h := range e.cfg.Hooks {
		if h.Webhook != nil {
			hosts = append(hosts, [2]string{hostOnly(h.Webhook.Host()), "webhook " + hostOnly(h.Webhook.Host())})
		}
		if u, err := url.Parse(h.Chat.URL); err == nil && h.Chat.URL != "" {
			hosts = append(hosts, [2]string{u.Hostname(), string(h.Kind) + " " + u.Hostname()})
		}
	}
	if u, err := url.Parse(e.cfg.Redis.URL); err == nil && e.cfg.Redis.URL != "" && u.Scheme != "unix" {
		for _, h := range strings.Split(u.Host, ",") {
			hosts = append(hosts, [2]string{hostOnly(h), "redis " + hostOnly(h)})
		}
	}
	for _, h := range e.cfg.ControlPlane {
		hosts = append(hosts, [2]string{hostOnly(h), "upstream " + h})
	}
	var pending [][2]string
	for _, h := range hosts {
		if h[0] == "" {
			continue
		}
		if ip, err := netip.ParseAddr(h[0]); err == nil {
			cp.ips[ip.Unmap()] = h[1]
			continue
		}
		cp.names[dns.CanonicalName(h[0])] = h[1]
		pending = append(pending, h)
	}
	e.control = cp
	if len(pending) > 0 {
		e.bg.Go(func() { cp.resolve(pending) })
	}
}

// resolve adds the addresses of names.
func (cp *controlPlane) resolve(names [][2]string) {
	ctx, cancel := context.WithTimeout(context.Background(), controlPlaneResolve)
	defer cancel()
	for _, h := range names {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h[0])
		if err != nil {
			continue // the name itself is still protected
		}
		cp.mu.Lock()
		for _, ip := range ips {
			cp.ips[ip.Unmap()] = h[1]
		}
		cp.mu.Unlock()
	}
}

// hostOnly drops a port from host:port (and the brackets of an IPv6 one).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// ControlPlane reports whether ip or qname is part of the control plane,
// and what it is. It is read only when an answer is about to be rewritten
// or a block decided.
func (e *Engine) ControlPlane(ip netip.Addr, qname string) (string, bool) {
	cp := e.control
	if cp == nil {
		return "", false
	}
	cp.mu.RLock()
	defer cp.mu.RUnlock()
	if what, ok := cp.ips[ip.Unmap()]; ok {
		return what, true
	}
	if qname != "" {
		if what, ok := cp.names[strings.ToLower(qname)]; ok {
			return what, true
		}
	}
	return "", false
}
