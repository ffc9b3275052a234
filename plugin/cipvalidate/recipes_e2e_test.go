package cipvalidate

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	yaml "go.yaml.in/yaml/v2"
)

// docHookLine is the `hook exec` line of docs/integrations/PAGE for
// script, with the install path replaced by the contrib script and each
// pair of replace applied: the line a test runs is the one the page gives.
func docHookLine(t *testing.T, page, script string, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../docs/integrations", page))
	if err != nil {
		t.Fatal(err)
	}
	installed := "/usr/local/lib/coredns-cip/" + strings.TrimSuffix(filepath.Base(script), ".sh")
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "hook exec "+installed+" ") {
			line = strings.Replace(line, installed, script, 1)
			for i := 0; i+1 < len(replace); i += 2 {
				if !strings.Contains(line, replace[i]) {
					t.Fatalf("%s: the hook line %q has no %q", page, line, replace[i])
				}
				line = strings.ReplaceAll(line, replace[i], replace[i+1])
			}
			return line
		}
	}
	t.Fatalf("%s has no `hook exec %s` line", page, installed)
	return ""
}

// panosEDLMaxEntries is the smallest per-model IP entry capacity PAN-OS
// documents for external dynamic lists (50,000 on all but the largest
// models; entries past it are skipped with a System log).
const panosEDLMaxEntries = 50000

// validatePANOSIPList checks an EDL body against PAN-OS's IP address list
// format (PAN-OS docs, "Formatting Guidelines for an External Dynamic
// List", IP Address List) as strictly as coredns-cip promises to serve it,
// and returns the entries.
func validatePANOSIPList(body []byte) (entries []string, problems []string) {
	bad := func(n int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d: ", n)+fmt.Sprintf(format, args...))
	}
	// The list is plain text; an empty list is a valid (empty) body.
	if len(body) == 0 {
		return nil, nil
	}
	// "Enter each IP address/range/subnet in a new line": every line ends in
	// a newline (we serve \n; PAN-OS also takes \r\n, which we never send).
	if body[len(body)-1] != '\n' {
		bad(bytes.Count(body, []byte("\n"))+1, "does not end in a newline")
	}
	seen := map[string]int{}
	for n, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		n++
		// "[IP address, IP/Mask, or IP start range-IP end range] [space]
		// [comment]": a comment would follow a space. We serve none, so any
		// space, tab or CR is a surprise, as is an empty line (it counts as
		// no entry on some releases and as a bad one on others).
		if line == "" {
			bad(n, "is blank")
			continue
		}
		if strings.ContainsAny(line, " \t\r#;") {
			bad(n, "%q has a space, comment or CR: coredns-cip serves bare entries", line)
			continue
		}
		// One of the three entry forms, IPv4 or IPv6.
		if !panosEntry(line) {
			bad(n, "%q is not an IP address, IP/mask or start-end range", line)
			continue
		}
		// A duplicate counts twice towards the model's capacity for nothing.
		if first, dup := seen[line]; dup {
			bad(n, "%q repeats line %d", line, first)
			continue
		}
		seen[line] = n
		entries = append(entries, line)
	}
	// "A subnet or an IP address range ... count as one IP address entry":
	// the entries must stay within the model's capacity.
	if len(entries) > panosEDLMaxEntries {
		problems = append(problems, fmt.Sprintf("%d entries, over PAN-OS's %d", len(entries), panosEDLMaxEntries))
	}
	return entries, problems
}

// panosEntry reports whether s is an address, a CIDR whose address is the
// network's (PAN-OS takes host bits, but coredns-cip never sends them) or a
// range of one family with start <= end.
func panosEntry(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == "" && !a.Is4In6()
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p == p.Masked()
	}
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := netip.ParseAddr(lo)
	b, err2 := netip.ParseAddr(hi)
	return ok && err1 == nil && err2 == nil && a.Is4() == b.Is4() && a.Compare(b) <= 0
}

// The validator itself: what it must refuse.
func TestValidatePANOSIPList(t *testing.T) {
	good := "45.83.0.10\n2001:db8::1\n45.83.0.80/28\n2001:db8:66::/48\n45.83.0.1-45.83.0.9\n"
	if _, p := validatePANOSIPList([]byte(good)); len(p) != 0 {
		t.Errorf("a good list: %q", p)
	}
	for _, body := range []string{
		"45.83.0.10",                 // no final newline
		"45.83.0.10\n\n45.83.0.11\n", // blank line
		"45.83.0.10\r\n",             // CR
		"45.83.0.10 # C2\n",          // comment
		"example.org\n",              // not an IP
		"45.83.0.81/28\n",            // host bits
		"45.83.0.9-45.83.0.1\n",      // backwards range
		"45.83.0.10\n45.83.0.10\n",   // duplicate
		"fe80::1%eth0\n",             // zone
		"45.83.0.1-2001:db8::1\n",    // mixed range
	} {
		if _, p := validatePANOSIPList([]byte(body)); len(p) == 0 {
			t.Errorf("%q passed the validator", body)
		}
	}
	var many strings.Builder
	for i := range panosEDLMaxEntries + 1 {
		fmt.Fprintf(&many, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	if _, p := validatePANOSIPList([]byte(many.String())); len(p) != 1 || !strings.Contains(p[0], "entries, over") {
		t.Errorf("%d entries: %q, want the capacity problem", panosEDLMaxEntries+1, p)
	}
}

// fetchEDL gets /v1/blocklist.txt the way PAN-OS and FortiOS do: basic auth
// with the token as the password.
func (e *e2e) fetchEDL() (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.apiBase+"/v1/blocklist.txt", nil)
	req.SetBasicAuth("paloalto", e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// The EDL a firewall polls, from a running coredns-cip with blocks of IPv4
// and IPv6 addresses and ranges (one IP blocked twice, one inside a blocked
// range): every line passes PAN-OS's IP list rules, and the entries are
// exactly the blocks.
func TestE2EEDLFormat(t *testing.T) {
	e := startE2E(t, "")
	resp, body := e.fetchEDL()
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("the EDL with no blocks: %d %q, want 200 and an empty body", resp.StatusCode, body)
	}
	blocks := []map[string]string{
		{"ip": "45.83.0.10"}, {"ip": "45.83.0.10"}, {"ip": "45.83.0.11"},
		{"ip": "2606:4700::10"}, {"ip": "45.83.0.85"},
		{"range": "45.83.0.80/28"}, {"range": "2606:4700:66::/48"},
	}
	for _, b := range blocks {
		b["ttl"], b["reason"] = "2h", "IR-12: EDL format"
		// 409: already blocked, the repeat the EDL must not show twice.
		if code := e.api("POST", "/v1/blocks", b, nil); code != http.StatusCreated && code != http.StatusConflict {
			t.Fatalf("POST /v1/blocks %v = %d", b, code)
		}
	}
	resp, body = e.fetchEDL()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/blocklist.txt with basic auth = %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	entries, problems := validatePANOSIPList(body)
	for _, p := range problems {
		t.Errorf("EDL %s", p)
	}
	want := []string{"2606:4700:66::/48", "2606:4700::10", "45.83.0.10", "45.83.0.11", "45.83.0.80/28", "45.83.0.85"}
	slices.Sort(entries)
	if !slices.Equal(entries, want) {
		t.Errorf("EDL entries %q, want %q", entries, want)
	}
}

// cloudStubs are the aws, az and curl stubs, each in a directory of its
// own (the hooks run concurrently), all first on this process's PATH so
// the exec hooks of an in-process CoreDNS run them.
func cloudStubs(t *testing.T) (aws, az, cf *stubTools) {
	aws, az, cf = newStubTools(t), newStubTools(t), newStubTools(t)
	aws.add("aws", awsStub)
	az.add("az", azStub)
	cf.add("curl", cfStub)
	az.file("rule.cip-block4", "192.0.2.1/32\n")
	az.file("rule.cip-block6", "2001:db8::1/128\n")
	// Only the stubs' directories come before the real PATH: a real aws, az
	// or curl must never run here.
	bins := []string{}
	for _, st := range []*stubTools{aws, az, cf} {
		bins = append(bins, filepath.Join(st.dir, "bin"))
	}
	t.Setenv("PATH", strings.Join(append(bins, os.Getenv("PATH")), ":"))
	return aws, az, cf
}

// The AWS, Azure and Cloudflare recipes through coredns-cip's real exec
// hook, with the Corefile lines of their pages: an operator's block of an
// IP and of an IPv6 range reaches the WAF IP sets, the NSG rules and the
// Cloudflare list, and the lifts take them out again.
func TestE2ECloudHooks(t *testing.T) {
	aws, az, cf := cloudStubs(t)
	tokenFile := filepath.Join(t.TempDir(), "cloudflare.token")
	if err := os.WriteFile(tokenFile, []byte("cf-token-for-tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		docHookLine(t, "aws.md", awsWAFHook),
		docHookLine(t, "azure.md", azureNSGHook),
		docHookLine(t, "cloudflare.md", cloudflareHook, "/etc/coredns/cloudflare.token", tokenFile),
	}
	e := startE2E(t, strings.Join(lines, "\n"))

	var ip, rng decisionAnswer
	if code := e.api("POST", "/v1/blocks", map[string]string{"ip": "45.83.0.10", "ttl": "2h", "reason": "IR-7: C2"}, &ip); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks = %d", code)
	}
	if code := e.api("POST", "/v1/blocks", map[string]string{"range": "2606:4700:66::/48", "ttl": "2h", "reason": "IR-9"}, &rng); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks with a range = %d", code)
	}
	in := func() string {
		return fmt.Sprintf("waf4=%q waf6=%q nsg4=%q nsg6=%q cf=%q", aws.file("state.cip-block4"), aws.file("state.cip-block6"),
			az.file("rule.cip-block4"), az.file("rule.cip-block6"), cf.file("items"))
	}
	blocked := func() bool {
		return in() == fmt.Sprintf("waf4=%q waf6=%q nsg4=%q nsg6=%q cf=%q", "45.83.0.10/32", "2606:4700:66::/48",
			"45.83.0.10", "2606:4700:66::/48", itemsLike(cf.file("items"), "45.83.0.10", "2606:4700:66::/48"))
	}
	eventually(t, "the blocks in the WAF sets, NSG rules and Cloudflare list", blocked)
	for _, id := range []string{ip.ID, rng.ID} {
		if code := e.api("DELETE", "/v1/decisions/"+id+"?reason=contained", nil, nil); code != http.StatusOK {
			t.Fatalf("lift %s: %d", id, code)
		}
	}
	lifted := `waf4="" waf6="" nsg4="192.0.2.1/32" nsg6="2001:db8::1/128" cf=""`
	eventually(t, "everything lifted (now "+in()+")", func() bool { return in() == lifted })
}

// itemsLike is the stub's item lines when they hold exactly ips, in any
// order and with any ids; otherwise a value no state matches.
func itemsLike(items string, ips ...string) string {
	var got []string
	sc := bufio.NewScanner(strings.NewReader(items))
	for sc.Scan() {
		if _, ip, ok := strings.Cut(sc.Text(), " "); ok {
			got = append(got, ip)
		}
	}
	slices.Sort(got)
	ips = slices.Clone(ips)
	slices.Sort(ips)
	if !slices.Equal(got, ips) {
		return "\x00mismatch"
	}
	return items
}

// kubectlStub keeps kubectl's stdin; the rename makes the file appear whole,
// since the call is recorded before the body runs.
const kubectlStub = `cat > "$stub/stdin.$n.part" && mv "$stub/stdin.$n.part" "$stub/stdin.$n"`

// k8sManifest is the part of the rendered objects the test checks.
type k8sManifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Description       string          `yaml:"description"`
		EndpointSelector  *map[string]any `yaml:"endpointSelector"`
		EnableDefaultDeny struct {
			Egress  *bool `yaml:"egress"`
			Ingress *bool `yaml:"ingress"`
		} `yaml:"enableDefaultDeny"`
		EgressDeny []struct {
			ToCIDRSet []struct {
				CIDR string `yaml:"cidr"`
			} `yaml:"toCIDRSet"`
		} `yaml:"egressDeny"`
		Nets *[]string `yaml:"nets"`
	} `yaml:"spec"`
}

// lastKubectl is the last kubectl call and, for an apply, its manifest.
func lastKubectl(t *testing.T, s *stubTools) (call string, m k8sManifest, ok bool) {
	t.Helper()
	calls := s.calls()
	if len(calls) == 0 {
		return "", m, false
	}
	call = calls[len(calls)-1]
	stdin := s.file("stdin." + strconv.Itoa(len(calls)))
	if strings.Contains(call, "[apply]") {
		if stdin == "" { // the stub has not finished reading it
			return "", m, false
		}
		if err := yaml.UnmarshalStrict([]byte(stdin), &m); err != nil {
			t.Fatalf("kubectl apply got a manifest that is not the YAML expected: %v\n%s", err, stdin)
		}
	}
	return call, m, true
}

// ciliumCIDRs checks the fixed parts of the Cilium policy and returns its
// CIDRs, sorted.
func ciliumCIDRs(t *testing.T, m k8sManifest) []string {
	t.Helper()
	if m.APIVersion != "cilium.io/v2" || m.Kind != "CiliumClusterwideNetworkPolicy" || m.Metadata.Name != "cip-blocklist" ||
		m.Metadata.Labels["app.kubernetes.io/managed-by"] != "coredns-cip" {
		t.Errorf("manifest %+v, want cilium.io/v2 CiliumClusterwideNetworkPolicy cip-blocklist managed by coredns-cip", m)
	}
	if m.Spec.EndpointSelector == nil || len(*m.Spec.EndpointSelector) != 0 {
		t.Errorf("endpointSelector %v, want {} (every endpoint)", m.Spec.EndpointSelector)
	}
	if e, i := m.Spec.EnableDefaultDeny.Egress, m.Spec.EnableDefaultDeny.Ingress; e == nil || *e || i == nil || *i {
		t.Errorf("enableDefaultDeny egress %v ingress %v, want both false", e, i)
	}
	if len(m.Spec.EgressDeny) != 1 {
		t.Fatalf("egressDeny has %d rules, want 1", len(m.Spec.EgressDeny))
	}
	var cidrs []string
	for _, c := range m.Spec.EgressDeny[0].ToCIDRSet {
		cidrs = append(cidrs, c.CIDR)
	}
	slices.Sort(cidrs)
	return cidrs
}

// edlProxy is a loopback server that forwards to the EDL of a coredns-cip
// started after it (the Corefile needs the URL before the API's port is
// known).
func edlProxy(t *testing.T) (edlURL string, target *atomic.Pointer[string]) {
	target = new(atomic.Pointer[string])
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		u, _ := url.Parse(*target.Load())
		r.SetURL(u)
	}}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/blocklist.txt", target
}

// The Kubernetes recipe through coredns-cip's real exec hook with the
// Corefile line of its page: each block re-renders the whole set from the
// EDL into one CiliumClusterwideNetworkPolicy applied server-side, and the
// empty list deletes it.
func TestE2EKubernetesHook(t *testing.T) {
	s := newStubTools(t)
	s.add("kubectl", kubectlStub)
	t.Setenv("PATH", s.path())
	edlURL, target := edlProxy(t)
	tokenFile := filepath.Join(t.TempDir(), "edl.token")
	if err := os.WriteFile(tokenFile, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	line := docHookLine(t, "kubernetes.md", k8sHook,
		"http://127.0.0.1:8053/v1/blocklist.txt", edlURL, "/etc/coredns/edl.token", tokenFile)
	e := startE2E(t, line)
	target.Store(&e.apiBase)

	var ids []string
	for _, b := range []map[string]string{{"ip": "45.83.0.10"}, {"range": "45.83.0.80/28"}, {"ip": "2606:4700::10"}} {
		var d decisionAnswer
		b["ttl"], b["reason"] = "2h", "IR-5"
		if code := e.api("POST", "/v1/blocks", b, &d); code != http.StatusCreated {
			t.Fatalf("POST /v1/blocks %v = %d", b, code)
		}
		ids = append(ids, d.ID)
	}
	want := []string{"2606:4700::10/128", "45.83.0.10/32", "45.83.0.80/28"}
	var got []string
	var call string // kept from the matching call: a later hook run may be under way
	eventually(t, "a Cilium policy with the three blocks", func() bool {
		c, m, ok := lastKubectl(t, s)
		if !ok || !strings.Contains(c, "[apply]") {
			return false
		}
		call, got = c, ciliumCIDRs(t, m)
		return slices.Equal(got, want)
	})
	if call != "kubectl [apply] [--server-side] [--field-manager=coredns-cip] [--force-conflicts] [-f] [-]" {
		t.Errorf("kubectl call %q, want a server-side apply from stdin", call)
	}
	for _, id := range ids {
		if code := e.api("DELETE", "/v1/decisions/"+id+"?reason=contained", nil, nil); code != http.StatusOK {
			t.Fatalf("lift %s: %d", id, code)
		}
	}
	eventually(t, "the policy deleted once nothing is blocked", func() bool {
		call, _, ok := lastKubectl(t, s)
		return ok && call == "kubectl [delete] [ciliumclusterwidenetworkpolicy] [cip-blocklist] [--ignore-not-found]"
	})
}

// The Kubernetes script on its own against a fake EDL: the Calico
// GlobalNetworkSet (empty too), the basic auth the EDL gets, an EDL that
// is not one, and bad arguments.
func TestK8sBlocklistHookScript(t *testing.T) {
	s := newStubTools(t)
	s.add("kubectl", kubectlStub)
	var edl atomic.Pointer[string]
	var auth atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, _ := r.BasicAuth()
		a := user + ":" + pw
		auth.Store(&a)
		_, _ = io.WriteString(w, *edl.Load())
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "edl.token")
	if err := os.WriteFile(tokenFile, []byte("read-token-for-k8s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(body string) (string, int) {
		edl.Store(&body)
		s.reset()
		return s.run(k8sHook, "calico", srv.URL+"/v1/blocklist.txt", tokenFile)
	}

	if out, code := run("45.83.0.10\n2001:db8::10\n45.83.0.80/28\n"); code != 0 {
		t.Fatalf("calico: exit %d: %s", code, out)
	}
	if a := *auth.Load(); a != "coredns-cip:read-token-for-k8s" {
		t.Errorf("the EDL got basic auth %q, want the token as password", a)
	}
	_, m, _ := lastKubectl(t, s)
	if m.APIVersion != "projectcalico.org/v3" || m.Kind != "GlobalNetworkSet" || m.Metadata.Name != "cip-blocklist" ||
		m.Metadata.Labels["coredns-cip/blocklist"] != "true" {
		t.Errorf("manifest %+v, want a projectcalico.org/v3 GlobalNetworkSet cip-blocklist labelled for the policy", m)
	}
	if m.Spec.Nets == nil || !slices.Equal(*m.Spec.Nets, []string{"45.83.0.10/32", "2001:db8::10/128", "45.83.0.80/28"}) {
		t.Errorf("nets %v, want the EDL as CIDRs", m.Spec.Nets)
	}
	if out, code := run(""); code != 0 {
		t.Fatalf("calico, nothing blocked: exit %d: %s", code, out)
	}
	if _, m, _ = lastKubectl(t, s); m.Spec.Nets == nil || len(*m.Spec.Nets) != 0 {
		t.Errorf("nets with nothing blocked: %v, want an empty list", m.Spec.Nets)
	}
	if out, code := run("<html>login</html>\n"); code != 2 || !strings.Contains(out, "is it the EDL?") || len(s.calls()) != 0 {
		t.Errorf("an EDL that is not one: exit %d %q, calls %q; want exit 2 and no kubectl", code, out, s.calls())
	}
	s.badInput(k8sHook, []badCase{
		{[]string{"flannel", srv.URL, tokenFile}, "flavor flannel"},
		{[]string{"cilium", "file:///etc/passwd", tokenFile}, "edl url file:///etc/passwd"},
		{[]string{"cilium", srv.URL + "/x y", tokenFile}, "has characters a URL cannot"},
		{[]string{"cilium", srv.URL, "/nonexistent/token"}, "token file /nonexistent/token"},
		{[]string{"cilium", srv.URL}, "want 3 arguments"},
	})
}
