package clientid

import (
	"net"
	"testing"
)

type wrapped struct{ net.Addr }

func (w wrapped) Unwrap() net.Addr { return w.Addr }

type textAddr string

func (textAddr) Network() string  { return "x" }
func (a textAddr) String() string { return string(a) }

func TestAddr(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("10.1.2.3"), Port: 53}, "10.1.2.3"}, // ParseIP gives the 16-byte form: unmapped
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 53}, "2001:db8::1"},
		{wrapped{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}}, "192.0.2.7"},
		{textAddr("[::ffff:198.51.100.1]:53"), "198.51.100.1"},
		{textAddr("not an address"), "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := Addr(tc.in); got.String() != tc.want {
			t.Errorf("Addr(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	var a net.Addr = &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 53}
	if allocs := testing.AllocsPerRun(100, func() { _ = Addr(a) }); allocs != 0 {
		t.Errorf("Addr allocates %v times per call on the DNS path, want 0", allocs)
	}
}
