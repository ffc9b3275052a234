// Package cipvalidate is a CoreDNS plugin that validates the public IPs in DNS
// answers with the Criminal IP API when a client is tied to a security event.
//
// At this stage the plugin is a skeleton: it is wired into the server and
// passes every query through unchanged.
package cipvalidate

import (
	"context"

	"github.com/coredns/coredns/plugin"

	"github.com/miekg/dns"
)

// CIPValidate is the cipvalidate plugin handler.
type CIPValidate struct {
	Next plugin.Handler
	// Zones are the zones whose answers are inspected.
	Zones []string
}

// ServeDNS implements the plugin.Handler interface. It hands the query to the
// next plugin without allocating anything of its own.
func (c *CIPValidate) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return plugin.NextOrFailure(c.Name(), c.Next, ctx, w, r)
}

// Name implements the plugin.Handler interface.
func (c *CIPValidate) Name() string { return "cipvalidate" }

// Ready implements the ready.Readiness interface. The skeleton has nothing to
// wait for.
func (c *CIPValidate) Ready() bool { return true }
