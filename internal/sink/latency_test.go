package sink

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// signalSink tells, on every Apply, how many changes it was handed.
type signalSink struct{ applied chan int }

func (s *signalSink) Name() string { return "signal" }

func (s *signalSink) Apply(_ context.Context, batch []Change) error {
	s.applied <- len(batch)
	return nil
}

// BenchmarkDispatcherLatency measures what the Dispatcher adds between a
// Submit and the Apply that carries the change, for one change to an idle
// hook and for the last of a burst of 10 (an event's IPs), with a sink
// that costs nothing. It reports the median and the 99th percentile.
func BenchmarkDispatcherLatency(b *testing.B) {
	for _, burst := range []int{1, 10} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			s := &signalSink{applied: make(chan int, 16)}
			d := NewDispatcher(Config{Sinks: []Sink{s}})
			d.Start()
			defer d.Stop(context.Background())
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				for j := range burst {
					d.Submit(block(i*burst+j, "d"))
				}
				for got := 0; got < burst; {
					got += <-s.applied
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Microsecond), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100])/float64(time.Microsecond), "p99-µs")
		})
	}
}
