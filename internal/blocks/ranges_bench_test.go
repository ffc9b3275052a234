package blocks

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkInRange measures the DNS path's range lookup of an address
// outside every range: without range blocks, and with 1,000 of them.
func BenchmarkInRange(b *testing.B) {
	now := time.Now()
	ip := netip.MustParseAddr("45.83.0.10")
	for _, n := range []int{0, 1000} {
		m := New(Policy{}, nil)
		for i := range n {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{46, byte(i >> 8), byte(i), 0}), 24)
			if _, err := m.DecideRange(p, Verdict{Decision: "d", TTL: time.Hour}, now); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(map[int]string{0: "none", 1000: "1000"}[n], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := m.InRange(ip, now); ok {
					b.Fatal("in a range")
				}
			}
		})
	}
}
