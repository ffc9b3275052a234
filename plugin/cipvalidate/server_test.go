package cipvalidate

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns/coredns/plugin/test"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/file"

	"github.com/miekg/dns"
)

const exampleZone = `$ORIGIN example.org.
@	3600 IN	SOA ns.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 3600
	3600 IN NS   ns.example.org.
ns	3600 IN A    127.0.0.53
www	300  IN A    93.184.215.14
www	300  IN AAAA 2606:2800:21f:cb07:6820:80da:af6b:8b2c
`

// TestServerPassesAnswersThrough runs cipvalidate in a real server, in front
// of cache and file, and queries it over UDP and TCP; the second query of each
// pair is a cache hit.
func TestServerPassesAnswersThrough(t *testing.T) {
	RegisterDirective()
	db := filepath.Join(t.TempDir(), "db.example.org")
	if err := os.WriteFile(db, []byte(exampleZone), 0o600); err != nil {
		t.Fatal(err)
	}
	corefile := fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key unit
        api_url http://127.0.0.1:9
    }
    cache
    file %s example.org
}
`, db)
	_, udp, tcp := coretest.Start(t, corefile)

	tests := []struct {
		qtype  uint16
		answer []dns.RR
	}{
		{dns.TypeA, []dns.RR{test.A("www.example.org. 300 IN A 93.184.215.14")}},
		{dns.TypeAAAA, []dns.RR{test.AAAA("www.example.org. 300 IN AAAA 2606:2800:21f:cb07:6820:80da:af6b:8b2c")}},
	}
	for _, tc := range tests {
		for _, exchange := range []struct {
			name string
			addr string
			do   func(testing.TB, string, *dns.Msg) *dns.Msg
		}{
			{"udp", udp, coretest.Exchange},
			{"tcp", tcp, coretest.ExchangeTCP},
		} {
			t.Run(exchange.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
				for _, attempt := range []string{"first", "cached"} {
					m := new(dns.Msg)
					m.SetQuestion("www.example.org.", tc.qtype)
					r := exchange.do(t, exchange.addr, m)

					if r.Rcode != dns.RcodeSuccess || len(r.Answer) != len(tc.answer) {
						t.Fatalf("%s answer: %v", attempt, r)
					}
					// A cache hit may have a lower TTL; the data is the same.
					for i, rr := range r.Answer {
						rr.Header().Ttl = tc.answer[i].Header().Ttl
						if rr.String() != tc.answer[i].String() {
							t.Errorf("%s answer[%d] %q, want %q", attempt, i, rr, tc.answer[i])
						}
					}
				}
			})
		}
	}
}
