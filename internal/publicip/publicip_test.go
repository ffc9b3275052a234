package publicip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestIs(t *testing.T) {
	tests := []struct {
		ip     string
		public bool
	}{
		{"45.83.0.10", true},
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"172.32.0.1", true},
		{"192.168.1.1", false},
		{"127.0.0.1", false},
		{"169.254.10.10", false},
		{"100.64.0.1", false},
		{"100.128.0.1", true},
		{"192.0.2.1", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"198.18.0.1", false},
		{"224.0.0.251", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"0.0.0.0", false},
		{"2a00:1450:4001:80b::200e", true},
		{"2606:4700:4700::1111", true},
		{"2001:db8::1", false},
		{"3fff::1", false},
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fd00::1", false},
		{"ff02::1", false},
		{"2002:c000:0204::1", false},
		{"64:ff9b:1::1", false},
		{"2001:4860::1", true}, // outside 2001::/23
		{"2001:3::1", true},    // AMT, globally reachable inside 2001::/23
		{"2001:2::1", false},   // benchmarking, inside 2001::/23
		{"4000::1", false},     // outside 2000::/3
		{"::ffff:10.0.0.1", false},
		{"::ffff:45.83.0.10", true},
		{"fe80::1%eth0", false},
	}
	for _, tc := range tests {
		got := Is(netip.MustParseAddr(tc.ip))
		if got != tc.public {
			t.Errorf("Is(%s) = %v, want %v (why: %q)", tc.ip, got, tc.public, Why(netip.MustParseAddr(tc.ip)))
		}
	}
}

func TestCheck(t *testing.T) {
	if _, err := Check("not-an-ip"); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("Check(not-an-ip) error = %v, want 'not an IP address'", err)
	}
	_, err := Check("10.0.0.1")
	if err == nil || !strings.Contains(err.Error(), "RFC 1918") || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Errorf("Check(10.0.0.1) error = %v, want it to name the IP and RFC 1918", err)
	}
	addr, err := Check("::ffff:45.83.0.10")
	if err != nil || addr != netip.MustParseAddr("45.83.0.10") {
		t.Errorf("Check(::ffff:45.83.0.10) = %v, %v; want 45.83.0.10 unmapped", addr, err)
	}
}

func TestUnwrap(t *testing.T) {
	tests := []struct{ in, want string }{
		{"45.83.0.21", "45.83.0.21"},
		{"::ffff:45.83.0.21", "45.83.0.21"},
		{"64:ff9b::2d53:15", "45.83.0.21"},
		{"64:ff9b::45.83.0.21", "45.83.0.21"},
		{"64:ff9b::a00:5", "10.0.0.5"},                       // judged as the private address it reaches
		{"64:ff9b:1::2d53:15", "64:ff9b:1::2d53:15"},         // local-use: the IPv4 position is not known
		{"64:ff9b:0:0:1::2d53:15", "64:ff9b:0:0:1::2d53:15"}, // outside the /96
		{"2a0c:9a40:1::21", "2a0c:9a40:1::21"},
		{"fe80::1%eth0", "fe80::1%eth0"},
	}
	for _, tc := range tests {
		if got := Unwrap(netip.MustParseAddr(tc.in)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("Unwrap(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if Is(netip.MustParseAddr("64:ff9b::2d53:15")) {
		t.Error("Is(64:ff9b::2d53:15) = true: the NAT64 address itself must never reach the API, its IPv4 address does")
	}
}

func BenchmarkIs(b *testing.B) {
	addrs := []netip.Addr{
		netip.MustParseAddr("45.83.0.10"),
		netip.MustParseAddr("10.1.2.3"),
		netip.MustParseAddr("2606:4700:4700::1111"),
	}
	for i := 0; b.Loop(); i++ {
		Is(addrs[i%len(addrs)])
	}
}

// TestIsAgreesWithWhy checks the fast paths of Is against the full scan of
// Why over every first octet and a spread of IPv6 prefixes.
func TestIsAgreesWithWhy(t *testing.T) {
	for o := 0; o < 256; o++ {
		for _, rest := range [][3]byte{{0, 0, 1}, {64, 0, 1}, {100, 7, 9}, {168, 1, 1}, {255, 255, 255}, {18, 0, 1}, {51, 100, 1}, {0, 2, 1}} {
			a := netip.AddrFrom4([4]byte{byte(o), rest[0], rest[1], rest[2]})
			if Is(a) != (Why(a) == "") {
				t.Fatalf("Is(%s) = %v but Why says %q", a, Is(a), Why(a))
			}
		}
	}
	for hi := 0; hi < 256; hi++ {
		for _, second := range []byte{0x00, 0x01, 0x0d, 0xff} {
			var b [16]byte
			b[0], b[1], b[2], b[3], b[15] = byte(hi), second, 0x0d, 0xb8, 1
			a := netip.AddrFrom16(b)
			if Is(a) != (Why(a) == "") {
				t.Fatalf("Is(%s) = %v but Why says %q", a, Is(a), Why(a))
			}
		}
	}
}
