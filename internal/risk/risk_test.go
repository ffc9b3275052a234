package risk

import (
	"slices"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/criminalip"
	"github.com/coredns-cip/coredns-cip/internal/fixtures"
)

func decode(t *testing.T, file string) *criminalip.Report {
	t.Helper()
	r, err := criminalip.Decode(fixtures.Body(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return r
}

func sortedFactors(v Verdict) []string {
	out := make([]string, 0, len(v.Reasons))
	for _, f := range v.Factors() {
		out = append(out, string(f))
	}
	slices.Sort(out)
	return out
}

// TestManifest checks every non-error fixture gives the manifest's verdict
// and exactly its set of reasons, with no hints.
func TestManifest(t *testing.T) {
	n := 0
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict == "error" {
			continue
		}
		n++
		t.Run(e.File, func(t *testing.T) {
			v := Evaluate(decode(t, e.File), Hints{})
			want := slices.Clone(e.Reasons)
			slices.Sort(want)
			if v.Suspicious != e.Suspicious {
				t.Errorf("suspicious = %v, want %v (reasons %v)", v.Suspicious, e.Suspicious, v.Reasons)
			}
			if got := sortedFactors(v); !slices.Equal(got, want) {
				t.Errorf("reasons = %v, want %v", got, want)
			}
			for _, r := range v.Reasons {
				if r.Detail == "" {
					t.Errorf("reason %s has no detail", r.Factor)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("manifest has no verdict fixtures")
	}
}

func TestDetails(t *testing.T) {
	v := Evaluate(decode(t, "multi_factor.json"), Hints{})
	details := map[Factor]string{}
	for _, r := range v.Reasons {
		details[r.Factor] = r.Detail
	}
	for f, want := range map[Factor]string{
		Score:               "inbound Critical, outbound Dangerous",
		SSLSelfSigned:       "port 443",
		TagDirectoryListing: "port 8080",
		TagMining:           "port 3333",
		SSHOpenSSH:          "OpenSSH on port 22",
		AnonTor:             "issues.is_tor",
		AnonAnonymousVPN:    "category anonymous_vpn",
	} {
		if !strings.Contains(details[f], want) {
			t.Errorf("%s detail = %q, want it to contain %q", f, details[f], want)
		}
	}
	if v.Score != "Critical" {
		t.Errorf("score = %q, want Critical", v.Score)
	}
	if got := Evaluate(decode(t, "clean.json"), Hints{}).Score; got != "Low" {
		t.Errorf("clean score = %q, want Low (highest of Safe/Low)", got)
	}
	if got := Evaluate(decode(t, "variant_score_string.json"), Hints{}).Score; got != "Dangerous" {
		t.Errorf("string score = %q, want Dangerous", got)
	}
}

func TestHints(t *testing.T) {
	clean := decode(t, "clean.json")
	tests := []struct {
		name       string
		hints      Hints
		suspicious bool
		detail     string
	}{
		{"no hints", Hints{}, false, ""},
		{"port 443", Hints{Port: 443}, false, ""},
		{"port 22", Hints{Port: 22}, true, "destination port 22"},
		{"openssh on 2222", Hints{Port: 2222, Product: "OpenSSH_8.9p1"}, true, "non-22 port 2222"},
		{"openssh without port", Hints{Product: "openssh"}, true, "product hint"},
		{"other product", Hints{Port: 8443, Product: "nginx"}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(clean, tc.hints)
			if v.Suspicious != tc.suspicious {
				t.Fatalf("suspicious = %v, want %v (%v)", v.Suspicious, tc.suspicious, v.Reasons)
			}
			if tc.suspicious && (len(v.Reasons) != 1 || v.Reasons[0].Factor != SSHOpenSSH || !strings.Contains(v.Reasons[0].Detail, tc.detail)) {
				t.Errorf("reasons = %+v, want one SSH_OPENSSH containing %q", v.Reasons, tc.detail)
			}
		})
	}
	// A report that shows OpenSSH on 22 and a port-22 hint: the report's
	// reason (part of the verdict) and the hint's (part of the finding only).
	v := Evaluate(decode(t, "ssh_openssh_22.json"), Hints{Port: 22})
	if len(v.Reasons) != 2 || v.Reasons[0].Hint || !strings.Contains(v.Reasons[0].Detail, "OpenSSH on port 22") ||
		!v.Reasons[1].Hint || !strings.Contains(v.Reasons[1].Detail, "destination port 22") {
		t.Errorf("reasons = %+v, want the report's SSH_OPENSSH, then the hint's", v.Reasons)
	}
}

// TestScopes: the default reach of each factor, the Corefile's overrides,
// and a finding's scope as the widest of its reasons'.
func TestScopes(t *testing.T) {
	p := DefaultPolicy()
	for f, want := range map[Factor]Scope{Score: ScopeEveryone, AnonTor: ScopeEveryone, TagMining: ScopeEveryone,
		SSHOpenSSH: ScopeTagged, SSLSelfSigned: ScopeTagged, SSLExpired: ScopeTagged, TagDirectoryListing: ScopeTagged,
		AnonVPN: ScopeTagged, AnonAnonymousVPN: ScopeTagged, AnonProxy: ScopeTagged} {
		if got := p.ScopeOfFactor(f); got != want {
			t.Errorf("default scope of %s = %s, want %s", f, got, want)
		}
	}
	ssh := Evaluate(decode(t, "ssh_openssh_22.json"), Hints{})
	if got := p.ScopeOf(ssh.Reasons); got != ScopeTagged {
		t.Errorf("OpenSSH report: scope %s, want tagged", got)
	}
	if got := p.ScopeOf(p.HintReasons(Hints{Port: 22})); got != ScopeTagged {
		t.Errorf("port-22 hint: scope %s, want tagged", got)
	}
	if got := p.ScopeOf(Evaluate(decode(t, "multi_factor.json"), Hints{}).Reasons); got != ScopeEveryone {
		t.Errorf("multi-factor report: scope %s, want everyone (it has a Critical score)", got)
	}
	if got := p.ScopeOf(nil); got != ScopeMonitor {
		t.Errorf("no reasons: scope %s, want monitor", got)
	}
	all, err := p.WithScope(ScopeEveryone, "all")
	if err != nil {
		t.Fatal(err)
	}
	if got := all.ScopeOf(ssh.Reasons); got != ScopeEveryone {
		t.Errorf("scope everyone all: OpenSSH reaches %s", got)
	}
	if got := all.ScopeOf(p.HintReasons(Hints{Port: 22})); got != ScopeTagged {
		t.Errorf("scope everyone all: a port hint reaches %s, want tagged (it is about one connection)", got)
	}
	mon, err := p.WithScope(ScopeMonitor, "ssh", "ANON_VPN")
	if err != nil {
		t.Fatal(err)
	}
	if got := mon.ScopeOf(ssh.Reasons); got != ScopeMonitor {
		t.Errorf("scope monitor ssh: %s", got)
	}
	if _, err := p.WithScope(ScopeTagged, "nonsense"); err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Errorf("unknown factor: %v", err)
	}
	if _, err := ParseScope("everybody"); err == nil {
		t.Error("ParseScope accepted everybody")
	}
	if !ScopeEveryone.Reaches(false) || ScopeTagged.Reaches(false) || !ScopeTagged.Reaches(true) || ScopeMonitor.Reaches(true) {
		t.Error("Reaches is wrong")
	}
}

func TestPolicy(t *testing.T) {
	multi := decode(t, "multi_factor.json")
	p, err := DefaultPolicy().WithFactors("score", "SSH")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedFactors(p.Evaluate(multi, Hints{})); !slices.Equal(got, []string{"SCORE", "SSH_OPENSSH"}) {
		t.Errorf("factors score ssh: reasons = %v", got)
	}
	p, err = DefaultPolicy().WithFactors("anon_tor")
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedFactors(p.Evaluate(multi, Hints{})); !slices.Equal(got, []string{"ANON_TOR"}) {
		t.Errorf("factors ANON_TOR: reasons = %v", got)
	}
	if _, err := DefaultPolicy().WithFactors("score", "geo"); err == nil || !strings.Contains(err.Error(), `"geo"`) {
		t.Errorf("unknown factor error = %v, want it to name \"geo\"", err)
	}
	if _, err := DefaultPolicy().WithFactors(); err == nil {
		t.Error("empty factor list accepted")
	}

	// Only Critical counts: the inbound-Dangerous fixture becomes clean.
	p, err = DefaultPolicy().WithScoreLevels("critical")
	if err != nil {
		t.Fatal(err)
	}
	if v := p.Evaluate(decode(t, "score_dangerous_inbound_only.json"), Hints{}); v.Suspicious {
		t.Errorf("score_levels critical: dangerous fixture still suspicious: %+v", v.Reasons)
	}
	if v := p.Evaluate(decode(t, "score_critical.json"), Hints{}); !v.Suspicious {
		t.Error("score_levels critical: critical fixture not suspicious")
	}
	// Moderate added: tag_mining's Moderate score now counts too.
	p, _ = DefaultPolicy().WithScoreLevels("moderate", "dangerous", "critical")
	if got := sortedFactors(p.Evaluate(decode(t, "tag_mining.json"), Hints{})); !slices.Equal(got, []string{"SCORE", "TAG_MINING"}) {
		t.Errorf("score_levels moderate: reasons = %v", got)
	}
	if _, err := DefaultPolicy().WithScoreLevels("bad"); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("unknown level error = %v", err)
	}
}

func TestVariants(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"tags as objects", `{"port":{"data":[{"open_port_no":80,"tags":[{"name":"Directory Listing"},{"tag":"mining"}]}]},"status":200}`, []string{"TAG_DIRECTORY_LISTING", "TAG_MINING"}},
		{"tags hyphenated", `{"port":{"data":[{"open_port_no":80,"tags":["directory-listing"]}]}}`, []string{"TAG_DIRECTORY_LISTING"}},
		{"ssl as object", `{"port":{"data":[{"open_port_no":443,"ssl_info_raw":{"verify":"self signed certificate"}}]}}`, []string{"SSL_SELF_SIGNED"}},
		{"banner does not count", `{"port":{"data":[{"open_port_no":443,"banner":"expired self-signed","ssl_info_raw":null}]}}`, nil},
		{"legacy integer score", `{"score":{"inbound":5,"outbound":1}}`, []string{"SCORE"}},
		{"nulls everywhere", `{"ip":null,"issues":null,"score":null,"port":null,"ip_category":{"count":null,"data":null}}`, nil},
		{"flags as strings", `{"issues":{"is_vpn":"True","is_tor":"false"}}`, []string{"ANON_VPN"}},
		{"category case", `{"ip_category":{"data":[{"type":"Anonymous VPN"},{"type":"TOR"}]}}`, []string{"ANON_ANONYMOUS_VPN", "ANON_TOR"}},
		{"other flags are not factors", `{"issues":{"is_scanner":true,"is_snort":true,"is_darkweb":true},"ip_category":{"data":[{"type":"C2"}]}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := criminalip.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := sortedFactors(Evaluate(r, Hints{}))
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("reasons = %v, want %v", got, tc.want)
			}
		})
	}
	if v := Evaluate(nil, Hints{}); v.Suspicious {
		t.Error("nil report is suspicious")
	}
}

func BenchmarkEvaluate(b *testing.B) {
	r, err := criminalip.Decode(fixtures.Body(b, "multi_factor.json"))
	if err != nil {
		b.Fatal(err)
	}
	p := DefaultPolicy()
	for b.Loop() {
		p.Evaluate(r, Hints{Port: 22})
	}
}
