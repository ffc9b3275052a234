package cipvalidate

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/coretest"
)

// `connlog syslog`: netfilter and FortiGate lines sent over UDP, TCP with
// octet counting and TCP with newlines, in RFC 3164, RFC 5424 and
// FortiGate's header-less form, land in their clients' windows exactly as
// the same lines do from a file; an EVE alert over syslog with `alerts`
// tags its client; and a reload onto the same ports keeps listening.
func TestE2EConnlogSyslog(t *testing.T) {
	dir := t.TempDir()
	nfFile, fgFile := filepath.Join(dir, "kern.log"), filepath.Join(dir, "forti.log")
	e := startE2E(t, fmt.Sprintf(`connlog %s netfilter
        connlog %s fortigate
        connlog syslog udp://127.0.0.1:0 netfilter
        connlog syslog tcp://127.0.0.1:0 iptables allow 127.0.0.0/8
        connlog syslog udp://127.0.0.1:0 fortigate
        connlog syslog tcp://127.0.0.1:0 fortigate
        connlog syslog udp://127.0.0.1:0 suricata alerts 2`, nfFile, fgFile))
	addrs := e.owner().eng.SyslogAddrs()
	if len(addrs) != 5 {
		t.Fatalf("syslog addresses %v, want 5", addrs)
	}
	now := e.clock.Now().Truncate(time.Second)
	bsd, iso := now.Format(time.Stamp), now.Format(time.RFC3339)
	nf := func(src string) string {
		return "fw1 kernel: [12345.678901] DROP IN=eth0 OUT=eth1 SRC=" + src + " DST=45.83.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0"
	}
	fg := func(src string) string {
		return `date=` + now.Format("2006-01-02") + ` time=` + now.Format("15:04:05") + ` tz="` + now.Format("-0700") + `" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=` + src + ` srcport=51234 srcintf="port2" dstip=45.83.2.2 dstport=443 dstintf="port1" proto=6 action="accept" service="HTTPS"`
	}
	octets := func(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }
	alert := `{"timestamp":"` + now.Format("2006-01-02T15:04:05.000000-0700") + `","flow_id":21,"event_type":"alert","src_ip":"127.0.0.2","src_port":50096,"dest_ip":"45.83.0.10","dest_port":80,"proto":"TCP","alert":{"signature_id":2018358,"signature":"ET HUNTING test","severity":1}}`
	sends := []struct {
		addr net.Addr
		data string
	}{
		{addrs[0], "<4>" + bsd + " " + nf("10.9.7.2")},                                 // rsyslog forwarding the kernel, RFC 3164
		{addrs[1], octets("<4>1 " + iso + " fw1 kernel - - - " + nf("10.9.7.3")[12:])}, // RFC 5424, octet counting
		{addrs[1], "<4>" + bsd + " " + nf("10.9.7.4") + "\n"},                          // RFC 3164, newline framing
		{addrs[2], "<189>" + fg("10.9.6.2")},                                           // FortiGate itself: no header
		{addrs[3], octets("<189>1 " + iso + " fw1 - - - - " + fg("10.9.6.3"))},         // RFC 5424, octet counting
		{addrs[3], "<189>" + bsd + " fw1 " + fg("10.9.6.4") + "\n"},                    // through a relay, newlines
		{addrs[4], "<14>" + bsd + " ids suricata[42]: " + alert},
		{addrs[3], "<189>" + bsd + " fw1 not a record\n"}, // broken, counted and skipped
		{addrs[3], "<189>" + bsd + " fw1 not a record\n"}, // EVE alert
	}
	for _, s := range sends {
		c, err := net.Dial(s.addr.Network(), s.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(s.data)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	window := e.owner().eng.State().Window()
	seen := func(client string) string {
		var out []string
		for _, s := range window.Sightings(netip.MustParseAddr(client), now.Add(-time.Minute), now.Add(time.Minute)) {
			out = append(out, fmt.Sprintf("%s %v %s %s", s.IP, s.Ports, s.First.UTC(), s.Last.UTC()))
		}
		return strings.Join(out, "; ")
	}
	clients := []string{"10.9.7.1", "10.9.7.2", "10.9.7.3", "10.9.7.4", "10.9.6.1", "10.9.6.2", "10.9.6.3", "10.9.6.4"}
	// The followers read what is appended once they have the files open.
	deadline := time.Now().Add(15 * time.Second)
	for {
		for path, line := range map[string]string{nfFile: bsd + " " + nf("10.9.7.1"), fgFile: fg("10.9.6.1")} {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(line + "\n")
			f.Close()
		}
		missing := 0
		for _, c := range clients {
			if seen(c) == "" {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range clients {
				t.Logf("%s: %s", c, seen(c))
			}
			t.Fatalf("%d of %d clients have nothing in their window after 15s", missing, len(clients))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range clients {
		file := clients[0]
		if strings.HasPrefix(c, "10.9.6.") {
			file = clients[4]
		}
		if got, want := seen(c), seen(file); got != want {
			t.Errorf("window of %s (syslog) holds %q; from the file: %q", c, got, want)
		}
	}
	if want := "45.83.2.1 [22] " + now.UTC().String(); !strings.HasPrefix(seen(clients[0]), want) {
		t.Errorf("window from the file holds %q, want %q...", seen(clients[0]), want)
	}
	var body struct {
		Clients []struct {
			Client, Ref string
		} `json:"clients"`
	}
	if code := e.api("GET", "/v1/clients", nil, &body); code != http.StatusOK || len(body.Clients) != 1 || body.Clients[0].Client != "127.0.0.2" {
		t.Errorf("GET /v1/clients: %d %+v, want 127.0.0.2 tagged by the EVE alert over syslog", code, body.Clients)
	}

	// A reload onto the ports picked for port 0 takes the open sockets over.
	corefile := e.corefile
	for _, a := range addrs {
		corefile = strings.Replace(corefile, "://127.0.0.1:0 ", "://"+a.String()+" ", 1)
	}
	e.inst = coretest.Reload(t, e.inst, corefile)
	if got := e.owner().eng.SyslogAddrs(); fmt.Sprint(got) != fmt.Sprint(addrs) {
		t.Fatalf("after reload, syslog on %v, want %v", got, addrs)
	}
	c, err := net.Dial("udp", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); seen("10.9.7.9") == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("after reload, a netfilter line over UDP did not land in 10s")
		}
		c.Write([]byte("<4>" + bsd + " " + nf("10.9.7.9")))
	}
}
