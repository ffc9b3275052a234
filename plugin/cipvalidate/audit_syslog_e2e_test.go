package cipvalidate

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/miekg/dns"
)

// A block decision reaches a syslog receiver as an RFC 5424 message with
// an ECS body, while a second destination, a TCP receiver that is down,
// costs the DNS path nothing: answers keep flowing, rewritten.
func TestE2EAuditSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var bodies []map[string]any
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := rfc5424.NewParser().Parse(append([]byte(nil), buf[:n]...))
			if err != nil {
				t.Errorf("not RFC 5424: %v: %q", err, buf[:n])
				continue
			}
			var body map[string]any
			if msg := m.(*rfc5424.SyslogMessage).Message; msg == nil || json.Unmarshal([]byte(*msg), &body) != nil {
				t.Errorf("no ECS body in %q", buf[:n])
				continue
			}
			mu.Lock()
			bodies = append(bodies, body)
			mu.Unlock()
		}
	}()
	// A port nobody listens on: the TCP receiver is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	e := startE2E(t, "        audit syslog udp://"+pc.LocalAddr().String()+" format ecs\n        audit syslog tcp://"+down+" format cef")
	T := e.clock.Now()
	e.query("127.0.0.2", "bad.example.org", dns.TypeA)
	e.postEvent("127.0.0.2", T, "5m")
	e.waitBlock("45.83.0.21", "127.0.0.2")

	deadline := time.Now().Add(15 * time.Second)
	for found := false; !found; {
		mu.Lock()
		for _, b := range bodies {
			ev, _ := b["event"].(map[string]any)
			dst, _ := b["destination"].(map[string]any)
			if ev["action"] == "block" && ev["kind"] == "alert" && dst["ip"] == "45.83.0.21" {
				found = true
			}
		}
		mu.Unlock()
		if !found && time.Now().After(deadline) {
			t.Fatal("no ECS block message for 45.83.0.21 at the syslog receiver")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every answer for the blocked IP is a rewrite, and so an audit entry
	// for the receiver that is down: the answers still come.
	for range 50 {
		r := e.query("127.0.0.2", "bad.example.org", dns.TypeA)
		if len(r.Answer) == 0 || strings.Contains(r.Answer[0].String(), "45.83.0.21") {
			t.Fatalf("answer %v, want rewritten", r.Answer)
		}
	}
}
