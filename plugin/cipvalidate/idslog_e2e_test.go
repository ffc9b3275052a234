package cipvalidate

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
