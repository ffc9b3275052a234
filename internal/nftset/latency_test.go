package nftset

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/netnstest"
	"github.com/coredns-cip/coredns-cip/internal/sink"
)

// BenchmarkDispatchToSet measures a block decision's way from the hooks'
// queue into a real nftables set (in a namespace of its own): from the
// Submit of the first change of a burst to the end of the Apply that put
// the last one in the set, for 1 and 10 IPs (an event's worth). It
// reports the median and the 99th percentile.
func BenchmarkDispatchToSet(b *testing.B) {
	for _, burst := range []int{1, 10} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			n := netnstest.New(b)
			cfg := inetCreate
			cfg.NetNS = n.FD
			s, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			applied := make(chan int, 64)
			d := sink.NewDispatcher(sink.Config{Sinks: []sink.Sink{s}, OnResult: func(r sink.Result) {
				if r.Outcome == sink.Applied {
					applied <- len(r.Batch)
				}
			}})
			d.Start()
			defer d.Stop(context.Background())
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				for j := range burst {
					k := i*burst + j
					d.Submit(sink.Change{Action: sink.Block, IP: netip.AddrFrom4([4]byte{45, 83, byte(k >> 8), byte(k)}),
						TTL: time.Hour, Decision: "bench"})
				}
				for got := 0; got < burst; {
					got += <-applied
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100])/float64(time.Millisecond), "p99-ms")
		})
	}
}
