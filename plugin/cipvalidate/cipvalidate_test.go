package cipvalidate

import (
	"context"
	"errors"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

// answering is a next plugin that answers every A query, authoritatively, with
// a public IP.
func answering() test.Handler {
	return test.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{test.A(r.Question[0].Name + " 300 IN A 93.184.215.14")}
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
}

func TestServeDNSPassesThrough(t *testing.T) {
	errNext := errors.New("next failed")
	tests := []struct {
		name      string
		next      plugin.Handler
		qname     string
		wantRcode int
		wantErr   error
		wantMsg   *test.Case // nil: nothing written
	}{
		{
			name:      "answer is unchanged",
			next:      answering(),
			qname:     "example.org.",
			wantRcode: dns.RcodeSuccess,
			wantMsg: &test.Case{
				Qname: "example.org.", Qtype: dns.TypeA,
				Answer: []dns.RR{test.A("example.org. 300 IN A 93.184.215.14")},
			},
		},
		{
			name:      "query outside the zones is unchanged",
			next:      answering(),
			qname:     "example.net.",
			wantRcode: dns.RcodeSuccess,
			wantMsg: &test.Case{
				Qname: "example.net.", Qtype: dns.TypeA,
				Answer: []dns.RR{test.A("example.net. 300 IN A 93.184.215.14")},
			},
		},
		{
			name:      "rcode of the next plugin",
			next:      test.NextHandler(dns.RcodeNameError, nil),
			qname:     "example.org.",
			wantRcode: dns.RcodeNameError,
		},
		{
			name:      "error of the next plugin",
			next:      test.NextHandler(dns.RcodeServerFailure, errNext),
			qname:     "example.org.",
			wantRcode: dns.RcodeServerFailure,
			wantErr:   errNext,
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cv := &CIPValidate{Next: tc.next, Zones: []string{"example.org."}}
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, dns.TypeA)
			rec := dnstest.NewRecorder(&test.ResponseWriter{})

			rcode, err := cv.ServeDNS(context.Background(), rec, req)

			if rcode != tc.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[rcode], dns.RcodeToString[tc.wantRcode])
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg == nil {
				if rec.Msg != nil {
					t.Errorf("a message was written: %v", rec.Msg)
				}
				return
			}
			if rec.Msg == nil {
				t.Fatal("no message was written")
			}
			if err := test.SortAndCheck(rec.Msg, *tc.wantMsg); err != nil {
				t.Error(err)
			}
			if !rec.Msg.Authoritative {
				t.Error("the AA bit of the answer was lost")
			}
		})
	}
}

func TestServeDNSWithoutNext(t *testing.T) {
	cv := &CIPValidate{}
	req := new(dns.Msg)
	req.SetQuestion("example.org.", dns.TypeA)

	rcode, err := cv.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), req)
	if rcode != dns.RcodeServerFailure || err == nil {
		t.Errorf("got %s, %v; want SERVFAIL and an error", dns.RcodeToString[rcode], err)
	}
}

func TestReady(t *testing.T) {
	if !(&CIPValidate{}).Ready() {
		t.Error("Ready() = false, want true")
	}
}

// TestServeDNSAllocatesNothingOfItsOwn compares the handler with a bare
// plugin.NextOrFailure call: whatever the chain allocates per query, the
// pass-through adds nothing to it.
func TestServeDNSAllocatesNothingOfItsOwn(t *testing.T) {
	next := test.NextHandler(dns.RcodeSuccess, nil)
	cv := &CIPValidate{Next: next}
	ctx := context.Background()
	w := &test.ResponseWriter{}
	req := new(dns.Msg)
	req.SetQuestion("example.org.", dns.TypeA)

	bare := testing.AllocsPerRun(100, func() { plugin.NextOrFailure("bare", next, ctx, w, req) })
	ours := testing.AllocsPerRun(100, func() { cv.ServeDNS(ctx, w, req) })
	if ours > bare {
		t.Errorf("ServeDNS allocates %.0f per query, a bare plugin.NextOrFailure %.0f", ours, bare)
	}
}

func BenchmarkServeDNS(b *testing.B) {
	cv := &CIPValidate{Next: test.NextHandler(dns.RcodeSuccess, nil)}
	ctx := context.Background()
	w := &test.ResponseWriter{}
	req := new(dns.Msg)
	req.SetQuestion("example.org.", dns.TypeA)

	b.ReportAllocs()
	for b.Loop() {
		cv.ServeDNS(ctx, w, req)
	}
}
