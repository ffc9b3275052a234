package criminalip

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

func TestDecodeFixtures(t *testing.T) {
	for _, e := range fixtures.Manifest(t) {
		t.Run(e.File, func(t *testing.T) {
			r, err := Decode(fixtures.Body(t, e.File))
			if e.ErrorKind == "parse" {
				if err == nil {
					t.Fatal("malformed body decoded without error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.IP != "" && r.IP != e.IP {
				t.Errorf("ip = %q, want %q", r.IP, e.IP)
			}
			if !r.HasStatusCode {
				t.Error("body status not seen")
			}
		})
	}
}

func TestDecodeShapes(t *testing.T) {
	r, err := Decode(fixtures.Body(t, "multi_factor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Score.Inbound != "Critical" || r.Score.Outbound != "Dangerous" {
		t.Errorf("score = %+v", r.Score)
	}
	if !r.Issues.Tor || !r.Issues.Proxy || !r.Issues.Scanner || r.Issues.VPN {
		t.Errorf("issues = %+v", r.Issues)
	}
	if len(r.Ports) != 4 || len(r.Categories) != 3 || len(r.Vulns) != 1 || r.Vulns[0].CVE != "CVE-2023-38408" {
		t.Errorf("ports %d categories %d vulns %+v", len(r.Ports), len(r.Categories), r.Vulns)
	}
	if len(r.Whois) != 1 || r.Whois[0].ASNumber == 0 {
		t.Errorf("whois = %+v", r.Whois)
	}

	r, _ = Decode(fixtures.Body(t, "variant_tags_string.json"))
	if len(r.Ports) != 1 || len(r.Ports[0].Tags) != 1 || r.Ports[0].Tags[0] != "Directory Listing" {
		t.Errorf("string tags = %+v", r.Ports)
	}
	r, _ = Decode(fixtures.Body(t, "variant_score_string.json"))
	if r.Score.Overall != "Dangerous" || r.Score.Inbound != "" {
		t.Errorf("string score = %+v", r.Score)
	}

	tests := []struct {
		body  string
		check func(*Report) bool
	}{
		{`{"port":{"data":[{"ssl_info_raw":{"a":"self signed"}}]}}`, func(r *Report) bool { return r.Ports[0].SSLInfo == `{"a":"self signed"}` }},
		{`{"port":{"data":[{"open_port_no":"8080"}]}}`, func(r *Report) bool { return r.Ports[0].Port == 8080 }},
		{`{"port":{"data":[1,"x",{"open_port_no":22}]}}`, func(r *Report) bool { return len(r.Ports) == 1 && r.Ports[0].Port == 22 }},
		{`{"port":[{"open_port_no":22}]}`, func(r *Report) bool { return len(r.Ports) == 1 }},
		{`{"score":{"inbound":4}}`, func(r *Report) bool { return r.Score.Inbound == "Dangerous" }},
		{`{"status":"429","message":"limit exceeded"}`, func(r *Report) bool { return r.Status == 429 && r.HasStatusCode }},
		{`{"ip":"45.83.0.1"}`, func(r *Report) bool { return !r.HasStatusCode && r.Status == 0 }},
		{`{"port":{"data":[{"tags":null,"app_name":null}]}}`, func(r *Report) bool { return r.Ports[0].Tags == nil && r.Ports[0].AppName == "" }},
	}
	for _, tc := range tests {
		r, err := Decode([]byte(tc.body))
		if err != nil || !tc.check(r) {
			t.Errorf("Decode(%s) = %+v, %v", tc.body, r, err)
		}
	}
	for _, bad := range []string{``, `null`, `[]`, `"x"`, `{"ip":`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

// FuzzDecode checks decoding never panics and that whatever it accepts is a
// JSON object. The corpus starts from every fixture.
func FuzzDecode(f *testing.F) {
	for _, b := range fuzzFixtureSeeds() {
		f.Add(b)
	}
	f.Add([]byte(`{"score":"Dangerous","port":{"data":[{"tags":"Mining","ssl_info_raw":{"x":1}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Decode(body)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		_ = r.Score.Levels()
	})
}

// fuzzFixtureSeeds returns the bytes of every fixture file, if the fixtures
// are there.
func fuzzFixtureSeeds() [][]byte {
	var out [][]byte
	if dir := fixturesDirForFuzz(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func fixturesDirForFuzz() string {
	dir := filepath.Join("..", "..", "..", "shared", "fixtures", "criminalip")
	if d := os.Getenv("CIP_FIXTURES"); d != "" {
		dir = d
	}
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	return dir
}
