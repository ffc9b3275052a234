package coretest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns/coredns/plugin/test"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/miekg/dns"
)

func TestStartWhoami(t *testing.T) {
	_, udp, tcp := coretest.Start(t, ".:0 {\n    whoami\n}\n")

	for _, tc := range []struct {
		transport string
		addr      string
		exchange  func(testing.TB, string, *dns.Msg) *dns.Msg
	}{
		{"udp", udp, coretest.Exchange},
		{"tcp", tcp, coretest.ExchangeTCP},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			if !strings.HasPrefix(tc.addr, "127.0.0.1:") || strings.HasSuffix(tc.addr, ":0") {
				t.Fatalf("address %q, want 127.0.0.1 and the port the kernel chose", tc.addr)
			}
			m := new(dns.Msg)
			m.SetQuestion("example.org.", dns.TypeA)
			r := tc.exchange(t, tc.addr, m)

			// whoami tells the client its own address and transport.
			var gotA, gotSRV bool
			for _, rr := range r.Extra {
				switch rr := rr.(type) {
				case *dns.A:
					gotA = rr.A.String() == "127.0.0.1"
				case *dns.SRV:
					gotSRV = rr.Hdr.Name == "_"+tc.transport+".example.org."
				}
			}
			if !gotA || !gotSRV {
				t.Errorf("whoami answer does not describe a %s client on 127.0.0.1:\n%v", tc.transport, r)
			}
		})
	}
}

const zone = `$ORIGIN example.org.
@	3600 IN	SOA ns.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 3600
	3600 IN NS  ns.example.org.
ns	3600 IN A   127.0.0.53
www	300  IN A   198.51.100.7
`

func TestStartFile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db.example.org")
	if err := os.WriteFile(db, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	_, udp, _ := coretest.Start(t, fmt.Sprintf("example.org:0 {\n    file %s\n}\n", db))

	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	r := coretest.Exchange(t, udp, m)

	err := test.SortAndCheck(r, test.Case{
		Qname: "www.example.org.", Qtype: dns.TypeA,
		Answer: []dns.RR{test.A("www.example.org. 300 IN A 198.51.100.7")},
		Ns:     []dns.RR{test.NS("example.org. 3600 IN NS ns.example.org.")},
	})
	if err != nil {
		t.Error(err)
	}
	if !r.Authoritative {
		t.Error("the answer of the file plugin is not authoritative")
	}
}

func TestAddrsOfSeveralServers(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db.example.org")
	if err := os.WriteFile(db, []byte(zone), 0o600); err != nil {
		t.Fatal(err)
	}
	corefile := fmt.Sprintf(".:0 {\n    bind 127.0.0.1\n    whoami\n}\nexample.org:0 {\n    bind 127.0.0.2\n    file %s\n}\n", db)
	inst, _, _ := coretest.Start(t, corefile)

	var servers []string
	for k := range inst.Servers() {
		udp, tcp := coretest.Addrs(inst, k)
		servers = append(servers, udp, tcp)
	}
	if len(servers) != 4 {
		t.Fatalf("two bound server blocks gave addresses %q, want two servers", servers)
	}
	if udp, tcp := coretest.Addrs(inst, 2); udp != "" || tcp != "" {
		t.Errorf("Addrs of a server that does not exist = %q, %q; want empty", udp, tcp)
	}
}

// fatalRecorder stands in for a test to see how Start fails one.
type fatalRecorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestStartReportsCorefileError(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		coretest.Start(rec, ".:0 {\n    whoami\n    nosuchplugin\n}\n")
	}()
	<-done

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !strings.Contains(rec.fatal, "nosuchplugin") || !strings.Contains(rec.fatal, "Corefile:3") {
		t.Errorf("Start failed the test with %q, want the unknown directive and its line", rec.fatal)
	}
}

// TestStopRightAfterStart stops servers that never served a query. Without
// waiting for them to serve, Stop misses them and they run on forever.
func TestStopRightAfterStart(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 20 {
		t.Run("start-stop", func(t *testing.T) {
			coretest.Start(t, ".:0 {\n    whoami\n}\n")
		})
	}

	// Goroutines of the stopped servers may take a moment to be gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines before 20 starts and stops, %d after", before, after)
	}
}
