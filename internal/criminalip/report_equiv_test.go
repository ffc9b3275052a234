package criminalip

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// equivalenceSeeds are bodies that probe the corners of the tolerant
// contract: escapes in names and values, repeated members, odd kinds,
// surrogates, invalid UTF-8, numbers at the edges, and invalid JSON.
var equivalenceSeeds = []string{
	`{}`, `null`, ` null `, `[]`, `"x"`, `1`, `true`, ``, ` `, `{"ip":`, `{"ip":"x"} x`, `{"ip":"x"}{}`,
	"\ufeff{}", `{"a":1,}`, `{,}`, `[1,]`, `{"a" 1}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
	`{"a":.5}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}",
	`{"a":"\u00e9\ud83d\ude00\ud800x\udc00\ud800\u0041"}`,
	"{\"ip\":\"\xff\xfe45.83\xc3\"}",
	`{"IP":"1.2.3.4","Status":401}`,
	`{"\u0069p":"45.83.0.1","st\u0061tus":"401","message":"a\nb\"c\\d\/e\tf\b\r\f"}`,
	`{"ip":"a","ip":"b","ip":null}`,
	`{"ip":12.50,"message":-0.0e+1,"status":1e400}`,
	`{"status":"NaN"}`, `{"status":"inf"}`, `{"status":" 429 "}`, `{"status":2147483648}`, `{"status":-2147483648}`,
	`{"status":"0x1p4"}`, `{"status":true}`, `{"status":{}}`, `{"status":[]}`, `{"status":null}`, `{"status":"null"}`,
	`{"issues":{"is_vpn":"True","is_tor":1,"is_proxy":"yes","is_hosting":2.5,"is_cloud":"0","is_mobile":"T","is_darkweb":" true ","is_scanner":"-1","is_snort":[true],"is_anonymous_vpn":"\u0031"}}`,
	`{"issues":{"is_vpn":true,"is_vpn":false,"is_tor":"F","is_proxy":"NaN","is_hosting":"1e400"}}`,
	`{"issues":[{"is_vpn":true}]}`, `{"issues":"is_vpn"}`,
	`{"score":{"inbound":"Critical","outbound":5,"overall":null,"total":"Dangerous"}}`,
	`{"score":{"total":"Dangerous"}}`, `{"score":{"inbound":"  Low\u00a0","outbound":"4.7","overall":-1}}`,
	`{"score":3}`, `{"score":"  Moderate "}`, `{"score":[1]}`, `{"score":null}`, `{"score":{"inbound":4.9999}}`,
	`{"port":{"count":2,"data":[{"open_port_no":"8080","tags":["a",{"name":"b","tag":null},{"label":"c"},{"title":" d "},3,null,[1],"  "]},{"tags":"  x  "}]}}`,
	`{"port":{"data":[{"tags":{"tag":"a"}}, {"tags":5}, {"tags":true}, {"tags":""}]}}`,
	`{"port":{"data":[{"ssl_info_raw":{ "a" : [ 1 , "x y" ,{"b\"":"\n"} ] }},{"ssl_info_raw":[ ]},{"ssl_info_raw":"TLS\nVersion: 3"},{"ssl_info_raw":7}]}}`,
	`{"port":{"data":[1,"x",null,{"open_port_no":22}],"data":null}}`,
	`{"port":{"data":[{"open_port_no":22}],"data":{"x":1}}}`,
	`{"port":{"data":[{"open_port_no":22}]},"port":[{"open_port_no":23},{"open_port_no":24}]}`,
	`{"port":"x","ip_category":{"count":1},"vpn":{"data":"x"},"whois":null}`,
	`{"port":{"Data":[{"open_port_no":22}]}}`,
	`{"port":[{"open_port_no":22,"open_port_no":"23","is_vulnerability":"False","socket":"tcp","protocol":null,"app_name":"OpenSSH","app_version":8.9,"confirmed_time":"2024-01-01 00:00:00"}]}`,
	`{"ip_category":{"data":[{"type":"tor","detect_source":"x"},{"type":["proxy"]},{}]}}`,
	`{"vpn":{"data":[{"vpn_name":"n","vpn_url":"u"},{}]},"anonymous_vpn":[{"vpn_name":1}],"protected_ip":{"data":[{},{},3]}}`,
	`{"vulnerability":{"data":[{"cve_id":"CVE-1","cvssv3_score":"9.8","app_name":"x"},{"cvssv3_score":"nan"},{"cvssv3_score":1e309}]}}`,
	`{"whois":{"data":[{"as_name":"a","as_no":"64496","org_name":"o","org_country_code":"kr"},{"as_no":6.4e4}]}}`,
	" \t\r\n{ \"ip\" : \"45.83.0.1\" , \"port\" : { \"data\" : [ { \"open_port_no\" : 22 } ] } } \n",
	`{"a":[[[[[[[[[[{"ip":"x"}]]]]]]]]]],"ip":"y"}`,
	`{"message":"\u003cb\u003e \u2028 <&>"}`,
}

// deepBody returns an object nesting depth containers in total.
func deepBody(depth int) string {
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

func TestDecodeEquivalent(t *testing.T) {
	for _, f := range fixtureBodies(t) {
		checkEquivalent(t, f.name, f.body)
	}
	for i, s := range equivalenceSeeds {
		checkEquivalent(t, fmt.Sprintf("seed %d", i), []byte(s))
	}
	for _, d := range []int{9999, 10000, 10001, 20000} {
		checkEquivalent(t, fmt.Sprintf("depth %d", d), []byte(deepBody(d)))
	}
	for _, s := range []string{"{", "{\"a\":[", "["} {
		checkEquivalent(t, "deep open "+s, []byte(s+strings.Repeat("[", 10005)))
	}
}

// checkEquivalent fails unless Decode and decodeReference agree on body:
// both fail with the same message, or both return deeply equal reports.
func checkEquivalent(t *testing.T, name string, body []byte) {
	t.Helper()
	if got, want := validDocument(body), json.Valid(body); got != want {
		t.Errorf("%s: validDocument = %v, json.Valid = %v for %s", name, got, want, quoteBody(body))
	}
	if start := skipSpace(body, 0); start < len(body) && body[start] == '{' {
		var scanned, walked topLevel
		if scanned.scan(body, start) {
			walked.walk(body, start)
			if !reflect.DeepEqual(scanned, walked) {
				t.Errorf("%s: scan and walk note different members", name)
			}
		}
	}
	got, gotErr := Decode(body)
	want, wantErr := decodeReference(body)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%s: Decode error %v, reference error %v, body %s", name, gotErr, wantErr, quoteBody(body))
	}
	if gotErr != nil {
		return
	}
	if !sameReport(got, want) {
		g, w := *got, *want
		g.Raw, w.Raw = nil, nil
		t.Fatalf("%s: Decode and reference differ for %s\n got  %#v\n want %#v", name, quoteBody(body), g, w)
	}
}

// sameReport is reflect.DeepEqual, except that NaN scores compare equal.
func sameReport(a, b *Report) bool {
	if len(a.Vulns) == len(b.Vulns) {
		a2, b2 := *a, *b
		a2.Vulns = append([]Vuln(nil), a.Vulns...)
		b2.Vulns = append([]Vuln(nil), b.Vulns...)
		if a.Vulns == nil {
			a2.Vulns = nil
		}
		if b.Vulns == nil {
			b2.Vulns = nil
		}
		for i := range a2.Vulns {
			if math.IsNaN(a2.Vulns[i].CVSSv3) && math.IsNaN(b2.Vulns[i].CVSSv3) {
				a2.Vulns[i].CVSSv3, b2.Vulns[i].CVSSv3 = 0, 0
			}
		}
		a, b = &a2, &b2
	}
	return reflect.DeepEqual(a, b)
}

// FuzzDecodeEquivalent checks that Decode agrees with the original map-based
// decoder on arbitrary input, errors included, and that the validator agrees
// with encoding/json. The corpus starts from every fixture and the seeds
// above.
func FuzzDecodeEquivalent(f *testing.F) {
	for _, b := range fuzzFixtureSeeds() {
		f.Add(b)
	}
	for _, s := range equivalenceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEquivalent(t, "fuzz", body)
		checkString(t, body)
	})
}

// quoteBody quotes body, cut to a readable length.
func quoteBody(body []byte) string {
	if len(body) > 400 {
		return fmt.Sprintf("%q... (%d bytes)", body[:400], len(body))
	}
	return fmt.Sprintf("%q", body)
}

// validDocument reports whether b is one valid JSON value, by the grammar
// check Decode uses.
func validDocument(b []byte) bool {
	i := validValue(b, skipSpace(b, 0), 0)
	return i >= 0 && skipSpace(b, i) == len(b)
}

// checkString checks the string helpers on s taken as the text between the
// quotes of a JSON string: plainRun against a byte loop, and, when that
// string is valid, skipString and unquote against encoding/json.
func checkString(t *testing.T, s []byte) {
	t.Helper()
	want := 0
	for want < len(s) && s[want] >= 0x20 && s[want] != '"' && s[want] != '\\' {
		want++
	}
	if got := plainRun(s, 0); got != want {
		t.Fatalf("plainRun(%q) = %d, want %d", s, got, want)
	}
	lit := append(append([]byte{'"'}, s...), '"')
	if !json.Valid(lit) {
		return
	}
	if end := skipString(lit, 0); end != len(lit) {
		t.Fatalf("skipString(%q) = %d, want %d", lit, end, len(lit))
	}
	var v string
	if err := json.Unmarshal(lit, &v); err != nil {
		t.Fatal(err)
	}
	if got := unquote(s); got != v {
		t.Fatalf("unquote(%q) = %q, want %q", s, got, v)
	}
}

func TestStringHelpers(t *testing.T) {
	for _, s := range []string{
		``, `a`, `abcdefgh`, `abcdefghi"`, `0123456\`, "0123456\x01", "01234567\x1f", `\n`, `ab\"cd`,
		`\u00e9\ud83d\ude00\ud800x\udc00\ud800\u0041\uDBFF\uDFFF`, "\xff\xfe\xc3(\xed\xa0\x80", "\u00e9\u00e9\u00e9 caf\u00e9",
		`TLS Certificate\nVersion: 3\nSerial Number: 0x04\tIssuer: C=--, O=SomeOrganization\/x`,
		"\x7f\x80\x9f\xa0\xff\xef\xbf\xbd", `\\\\\"`, `\b\f\r\t\/`,
	} {
		checkString(t, []byte(s))
	}
}
