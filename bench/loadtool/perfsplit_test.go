package main

import (
	"strings"
	"testing"
)

// TestPerfSplit: samples are counted per whole second under the first
// class whose marker is in their call chain; an event's handler is the
// storm's work even where it runs the engine's code, and a sample on no
// known stack is "other".
func TestPerfSplit(t *testing.T) {
	const script = `13315.2:
	ffffffff81621ffc udp_sendmsg
	            db8e github.com/miekg/dns.(*Server).serveUDPPacket

13315.7:
	          12ab github.com/coredns-cip/coredns-cip/internal/validate.(*Queue).SubmitAt
	          12ac net/http.(*conn).serve

13316.1:
	          12ab github.com/coredns-cip/coredns-cip/internal/validate.(*Queue).SubmitAt
	          12ad github.com/miekg/dns.(*Server).serveDNS

13316.4:
	ffffffff81000130 entry_SYSCALL_64_after_hwframe
	          33aa golang.org/x/sync/singleflight.(*Group).doCall

13316.9:
	ffffffff8223c951 pvm_irq_enable
`
	secs, err := splitSamples(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	if len(secs) != 2 {
		t.Fatalf("%d seconds, want 2", len(secs))
	}
	idx := map[string]int{"other": len(stormClasses)}
	for i, c := range stormClasses {
		idx[c.name] = i
	}
	want := []map[string]int{
		{"dns": 1, "events": 1},
		{"dns: submit": 1, "validation": 1, "other": 1},
	}
	for i, s := range secs {
		for name, k := range idx {
			if s.counts[k] != want[i][name] {
				t.Errorf("second %d, %s: %d samples, want %d", i+1, name, s.counts[k], want[i][name])
			}
		}
	}
	var out strings.Builder
	printSplit(&out, secs)
	if !strings.Contains(out.String(), "| all | 5 | 20.0 | 20.0 | 0.0 | 20.0 | 20.0 | 20.0 |") {
		t.Errorf("table:\n%s", out.String())
	}
}
