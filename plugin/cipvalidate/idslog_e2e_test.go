package cipvalidate

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// `connlog` follows Suricata's eve.json and Zeek's conn.log (TSV and JSON):
// each flow, alert and conn record lands its destination in the client's
// window; EVE records of other kinds (dns) do not, and a Zeek header
// appended to the log is read before the records under it.
func TestE2EConnlogSuricataZeek(t *testing.T) {
	dir := t.TempDir()
	eve, zeekTSV, zeekJSON := filepath.Join(dir, "eve.json"), filepath.Join(dir, "conn.log"), filepath.Join(dir, "conn.json")
	e := startE2E(t, fmt.Sprintf("connlog %s suricata\n        connlog %s zeek\n        connlog %s zeek", eve, zeekTSV, zeekJSON))
	now := e.clock.Now()
	ts := now.Format("2006-01-02T15:04:05.000000-0700")
	epoch := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
	appends := map[string]string{
		eve: `{"timestamp":"` + ts + `","flow_id":11,"event_type":"flow","src_ip":"10.9.9.1","src_port":51234,"dest_ip":"45.83.1.1","dest_port":443,"proto":"TCP","app_proto":"tls","flow":{"pkts_toserver":12,"pkts_toclient":10,"bytes_toserver":1830,"bytes_toclient":5120,"start":"` + ts + `","end":"` + ts + `","age":0,"state":"closed","reason":"timeout","alerted":false}}` + "\n" +
			`{"timestamp":"` + ts + `","flow_id":12,"event_type":"alert","src_ip":"10.9.9.2","src_port":50096,"dest_ip":"45.83.1.2","dest_port":8080,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,"signature":"ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1","category":"Potentially Bad Traffic","severity":2},"app_proto":"http"}` + "\n" +
			`{"timestamp":"` + ts + `","flow_id":13,"event_type":"dns","src_ip":"10.9.9.1","src_port":40001,"dest_ip":"45.83.1.99","dest_port":53,"proto":"UDP","dns":{"type":"query","id":4660,"rrname":"example.com","rrtype":"A","tx_id":0}}` + "\n",
		// Columns in an order of their own: only the header says where the addresses are.
		zeekTSV: "#separator \\x09\n#unset_field\t-\n#path\tconn\n#fields\tuid\tproto\tid.resp_p\tid.resp_h\tid.orig_p\tid.orig_h\tts\n" +
			"CHhAvVGS1DHFjwGM9\ttcp\t22\t45.83.1.3\t51000\t10.9.9.3\t" + epoch + "\n",
		zeekJSON: `{"ts":` + epoch + `,"uid":"C4J4Th3PJpwUYZZ6gc","id.orig_h":"2001:db8::4","id.orig_p":51001,"id.resp_h":"2a00:1450:4001:829::200e","id.resp_p":993,"proto":"tcp","service":"ssl","conn_state":"SF","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"ShADadFf","orig_pkts":6,"orig_ip_bytes":820,"resp_pkts":5,"resp_ip_bytes":3260}` + "\n",
	}
	want := map[string]string{"10.9.9.1": "45.83.1.1:443", "10.9.9.2": "45.83.1.2:8080", "10.9.9.3": "45.83.1.3:22", "2001:db8::4": "2a00:1450:4001:829::200e:993"}
	window := e.owner().eng.State().Window()
	seen := func(client string) []string {
		var got []string
		for _, s := range window.Sightings(netip.MustParseAddr(client), now.Add(-time.Minute), now.Add(time.Minute)) {
			for _, p := range s.Ports {
				got = append(got, s.IP.String()+":"+fmt.Sprint(p))
			}
		}
		return got
	}
	// The followers read what is appended once they have the files open;
	// append until every destination is in its client's window.
	deadline := time.Now().Add(15 * time.Second)
	for {
		for path, text := range appends {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(text)
			f.Close()
		}
		missing := 0
		for client, dst := range want {
			got := seen(client)
			if len(got) == 0 {
				missing++
				continue
			}
			if strings.Join(got, " ") != dst {
				t.Fatalf("window of %s holds %v, want %s", client, got, dst)
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients have nothing in their window after 15s", missing, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := seen("10.9.9.1"); len(got) != 1 {
		t.Errorf("10.9.9.1's window holds %v: an EVE dns record was taken for a connection", got)
	}
}

// `connlog PATH suricata alerts`: an EVE alert record tags its internal
// endpoint as an event does, with the signature in the tag's ref, and
// backtracks its window: the suspicious IP the client resolved through
// the server is validated and blocked for it. A flow record tags nothing,
// and neither does an alert in a connlog without `alerts`.
func TestE2EConnlogSuricataAlerts(t *testing.T) {
	dir := t.TempDir()
	eve, quiet := filepath.Join(dir, "eve.json"), filepath.Join(dir, "quiet.json")
	e := startE2E(t, fmt.Sprintf("connlog %s suricata alerts 2\n        connlog %s suricata", eve, quiet))
	e.query("127.0.0.2", "bad.example.org", dns.TypeA) // 45.83.0.21 in its window
	if r := e.query("127.0.0.2", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"45.83.0.21"}) {
		t.Fatalf("untagged client's answer changed before any alert: %v", r)
	}
	e.clock.Set(e.clock.Now().Add(time.Second)) // the alert comes after the answer, in EVE's microseconds
	ts := e.clock.Now().Format("2006-01-02T15:04:05.000000-0700")
	alert := func(src string, sev int) string {
		return `{"timestamp":"` + ts + `","flow_id":21,"event_type":"alert","src_ip":"` + src + `","src_port":50096,"dest_ip":"45.83.0.10","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2018358,"rev":10,"signature":"ET HUNTING GENERIC SUSPICIOUS POST\u001b[2J","category":"Potentially Bad Traffic","severity":` + fmt.Sprint(sev) + `}}` + "\n"
	}
	appends := [][2]string{
		{quiet, alert("127.0.0.4", 1)},
		{eve, `{"timestamp":"` + ts + `","flow_id":20,"event_type":"flow","src_ip":"127.0.0.3","src_port":51234,"dest_ip":"45.83.0.10","dest_port":443,"proto":"TCP"}` + "\n" +
			alert("127.0.0.5", 3) + // less severe than the connlog's bound
			alert("127.0.0.2", 1)},
	}
	type client struct {
		Client string `json:"client"`
		Ref    string `json:"ref"`
	}
	tagged := func() map[string]string {
		var body struct {
			Clients []client `json:"clients"`
		}
		if code := e.api("GET", "/v1/clients", nil, &body); code != http.StatusOK {
			t.Fatalf("GET /v1/clients: %d", code)
		}
		out := map[string]string{}
		for _, c := range body.Clients {
			out[c.Client] = c.Ref
		}
		return out
	}
	// The followers read what is appended once they have the files open.
	deadline := time.Now().Add(15 * time.Second)
	quietRead := func() bool {
		return len(e.owner().eng.State().Window().Sightings(netip.MustParseAddr("127.0.0.4"), time.Time{}, e.clock.Now().Add(time.Minute))) > 0
	}
	for len(tagged()) == 0 || !quietRead() {
		for _, a := range appends {
			path, text := a[0], a[1]
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(text)
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after the EVE alerts: tagged %v, quiet log read %v", tagged(), quietRead())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The flow and the less severe alert precede the tagging alert in its
	// file, and the quiet file's alert is in its client's window: all read.
	got := tagged()
	if ref := got["127.0.0.2"]; ref != `sid:2018358 ET HUNTING GENERIC SUSPICIOUS POST?[2J` {
		t.Errorf("127.0.0.2's tag ref = %q, want the sid and the signature, its escape made harmless", ref)
	}
	for _, c := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		if _, ok := got[c]; ok {
			t.Errorf("%s tagged: by a flow record, an alert in a connlog without alerts, or one less severe than the bound", c)
		}
	}
	if v := e.waitVerdict("45.83.0.21"); v.Outcome != "suspicious" {
		t.Fatalf("verdict for 45.83.0.21 = %+v, want suspicious", v)
	}
	e.waitBlock("45.83.0.21", "127.0.0.2")
	if r := e.query("127.0.0.2", "bad.example.org", dns.TypeA); !slices.Equal(answerIPs(r), []string{"0.0.0.0"}) {
		t.Errorf("tagged client's answer for bad.example.org: %v, want sinkholed", r)
	}
}
