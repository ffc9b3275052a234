package criminalip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
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
	`{"domain":{"count":"2500","data":[{"domain":"a.example"},{},3]}}`,
	`{"vulnerABilitY":{"dAtA":[{"0":1e700}]}}`,
	`{"domain":[{},{}],"domain":{"count":-4,"data":[{}]}}`,
	`{"domain":{"count":1e12,"data":"x"}}`,
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

// checkEquivalent fails unless Decode and decodeReference agree on body: both
// fail (with the same message for a syntax error), or both return deeply
// equal reports. Bodies with a member name that encoding/json would match to
// one of Report's in another case are only checked for agreement on failure:
// there Decode follows encoding/json's rule, and the reference a map's.
func checkEquivalent(t *testing.T, name string, body []byte) {
	t.Helper()
	got, gotErr := Decode(body)
	want, wantErr := decodeReference(body)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s: Decode error %v, reference error %v, body %s", name, gotErr, wantErr, quoteBody(body))
	}
	if _, syntax := errors.AsType[*json.SyntaxError](wantErr); syntax && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%s: Decode error %q, reference error %q, body %s", name, gotErr, wantErr, quoteBody(body))
	}
	if gotErr != nil || hasFoldedName(body) {
		return
	}
	if !sameReport(got, want) {
		g, w := *got, *want
		g.Raw, w.Raw = nil, nil
		t.Fatalf("%s: Decode and reference differ for %s\n got  %#v\n want %#v", name, quoteBody(body), g, w)
	}
}

// hasFoldedName reports whether an object in the valid JSON body has a
// member name that encoding/json's case folding could match to a different,
// lower-case ASCII name: one with an upper-case ASCII letter, or with a rune
// that folds to ASCII (the Kelvin sign to k, the long s to s).
func hasFoldedName(body []byte) bool {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // a number beyond float64 (1e700) must not hide a folded name
	if dec.Decode(&v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if foldsToASCII(k) || walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func foldsToASCII(name string) bool {
	for _, r := range name {
		if 'A' <= r && r <= 'Z' {
			return true
		}
		if r < utf8.RuneSelf {
			continue
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

// TestDecodeNameCase holds the one place where Decode parts from the
// reference on purpose: a member name in another case still fills its field,
// so a body status written "Status" still classifies the answer.
func TestDecodeNameCase(t *testing.T) {
	tests := []struct {
		body string
		want Report
	}{
		{`{"IP":"1.2.3.4","Status":401}`, Report{IP: "1.2.3.4", Status: 401, HasStatusCode: true}},
		{`{"ip":"1.2.3.4","IP":"5.6.7.8"}`, Report{IP: "5.6.7.8"}},
		{`{"port":{"Data":[{"Open_Port_No":22}]}}`, Report{Ports: []Port{{Port: 22}}}},
		{"{\"\u017ftatus\":429}", Report{Status: 429, HasStatusCode: true}},
	}
	for _, tc := range tests {
		if !hasFoldedName([]byte(tc.body)) {
			t.Errorf("hasFoldedName(%s) = false", tc.body)
		}
		got, err := Decode([]byte(tc.body))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.body, err)
			continue
		}
		got.Raw = nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("Decode(%s) = %+v, want %+v", tc.body, *got, tc.want)
		}
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
// decoder on arbitrary input, errors included (see checkEquivalent). The
// corpus starts from every fixture and the seeds above.
func FuzzDecodeEquivalent(f *testing.F) {
	for _, b := range fuzzFixtureSeeds() {
		f.Add(b)
	}
	for _, s := range equivalenceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkEquivalent(t, "fuzz", body)
	})
}

// quoteBody quotes body, cut to a readable length.
func quoteBody(body []byte) string {
	if len(body) > 400 {
		return fmt.Sprintf("%q... (%d bytes)", body[:400], len(body))
	}
	return fmt.Sprintf("%q", body)
}
