package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/blocks"
	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/coretest"
	"github.com/coredns-cip/coredns-cip/internal/enforce"
	"github.com/coredns-cip/coredns-cip/internal/fakeapi/fakeapitest"
	"github.com/coredns-cip/coredns-cip/internal/fixtures"
	"github.com/coredns-cip/coredns-cip/plugin/cipvalidate"
)

var btAt = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// netfilterLine is a kernel LOG line as rsyslog writes it (RFC 3339 time).
func netfilterLine(t time.Time, src, dst string, dport int) string {
	return fmt.Sprintf("%s fw1 kernel: [12345.678901] CIP-OUT IN=eth1 OUT=eth0 SRC=%s DST=%s LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF PROTO=TCP SPT=51234 DPT=%d WINDOW=64240 RES=0x00 SYN URGP=0",
		t.Format("2006-01-02T15:04:05.000000-07:00"), src, dst, dport)
}

// bigLog writes a 100k-line netfilter log: client 10.9.9.9 reaches 2000
// unique public destinations in the 5 minutes before btAt (the manifest's
// fixture IPs among them), plus noise the selection must drop: other
// clients, private destinations, web ports, connections outside the
// window, and broken lines.
func bigLog(tb testing.TB, fixtureIPs []string) (path string, unique []string) {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	unique = slices.Clone(fixtureIPs)
	for i := 0; len(unique) < 2000; i++ {
		unique = append(unique, fmt.Sprintf("45.84.%d.%d", i/250, 1+i%250))
	}
	var b bytes.Buffer
	for i := 0; i < 100_000; i++ {
		in := btAt.Add(-time.Duration(r.IntN(290)+5) * time.Second)
		switch i % 10 {
		case 0:
			b.WriteString(netfilterLine(in, "10.9.9.10", unique[r.IntN(len(unique))], 8443)) // another client
		case 1:
			b.WriteString(netfilterLine(in, "10.9.9.9", "10.20.30.40", 3389)) // private
		case 2:
			b.WriteString(netfilterLine(in, "10.9.9.9", "45.85.0.1", 443)) // web, ignored by --ports-not
		case 3:
			b.WriteString(netfilterLine(btAt.Add(-time.Hour), "10.9.9.9", "45.86.0.1", 8443)) // before the window
		case 4:
			if i%1000 == 4 {
				b.WriteString("Nov 27 10:00:01 fw1 kernel: [12345.678901] CIP-OUT IN=eth1 SRC=10.9.9.9 DST=") // broken
				break
			}
			fallthrough
		default:
			dst := unique[i/10%len(unique)]
			b.WriteString(netfilterLine(in, "10.9.9.9", dst, 8443))
		}
		b.WriteByte('\n')
	}
	path = filepath.Join(tb.TempDir(), "fw.log")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path, unique
}

// TestBacktrack100k is the acceptance: 100k lines, 2k unique
// destinations, at most one API call per unique public destination, and
// the fixtures' verdicts as in the manifest.
func TestBacktrack100k(t *testing.T) {
	fake, url := fakeapitest.Start(t)
	want := map[string]bool{}
	var ips []string
	for _, e := range fixtures.Manifest(t) {
		if e.Verdict != "error" {
			want[e.IP] = e.Suspicious
			ips = append(ips, e.IP)
		}
	}
	path, unique := bigLog(t, ips)

	out, errOut, code := runBacktrackTest(t, "--log", path, "--format", "netfilter", "--client", "10.9.9.9",
		"--at", btAt.Format(time.RFC3339), "--window", "5m", "--ports-not", "80,443", "--api-url", url, "--rate", "-1",
		"--dry-run", "--json")
	if code != exitSuspicious {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	var res struct {
		Destinations []destination    `json:"destinations"`
		Summary      backtrackSummary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("output: %v\n%.500s", err, out)
	}
	s := res.Summary
	if s.Lines != 100_000 || s.Broken != 100 || s.Destinations != len(unique) || s.PortsNot == 0 || s.NotPublic == 0 {
		t.Errorf("summary %+v, want 100000 lines, 100 broken, %d destinations", s, len(unique))
	}
	if fake.Calls() > len(unique) || s.APICalls != fake.Calls() {
		t.Errorf("%d API calls (summary says %d) for %d unique destinations", fake.Calls(), s.APICalls, len(unique))
	}
	for _, ip := range []string{"10.20.30.40", "45.85.0.1", "45.86.0.1"} {
		if n := fake.CallsFor(ip); n != 0 {
			t.Errorf("%s cost %d API calls", ip, n)
		}
	}
	got := map[string]destination{}
	for _, d := range res.Destinations {
		got[d.IP.String()] = d
	}
	for ip, susp := range want {
		d, ok := got[ip]
		if !ok || (d.Verdict == "suspicious") != susp || d.Verdict == "error" {
			t.Errorf("%s: %+v, want suspicious=%v", ip, d, susp)
		}
	}
	if !strings.Contains(errOut, "validating: ") || !strings.Contains(errOut, "lines/s") {
		t.Errorf("no progress on stderr: %.300s", errOut)
	}
}

// The port hint: a destination reached on port 22 carries the SSH reason;
// --critical-ports marks and orders; the table output and the exit codes.
func TestBacktrackHintsAndTable(t *testing.T) {
	_, url := fakeapitest.Start(t)
	lines := strings.Join([]string{
		netfilterLine(btAt.Add(-time.Minute), "10.9.9.9", "45.83.0.10", 22),     // clean report, SSH port
		netfilterLine(btAt.Add(-2*time.Minute), "10.9.9.9", "45.83.0.52", 9001), // tor
		netfilterLine(btAt.Add(-2*time.Minute), "10.9.9.9", "45.83.0.99", 3389), // clean, critical
		"# a comment",
	}, "\n")
	path := filepath.Join(t.TempDir(), "fw.log")
	os.WriteFile(path, []byte(lines+"\n"), 0o600)
	out, errOut, code := runBacktrackTest(t, "--log", path, "--format", "netfilter", "--client", "10.9.9.9", "--at", btAt.Format(time.RFC3339),
		"--critical-ports", "22,3389", "--api-url", url, "--rate", "-1", "--dry-run")
	if code != exitSuspicious {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := strings.Split(out, "\n")
	if !strings.HasPrefix(rows[1], "SUSPICIOUS*") || !strings.Contains(rows[1], "45.83.0.10") || !strings.Contains(rows[1], "SSH_OPENSSH: destination port 22") {
		t.Errorf("first row %q, want 45.83.0.10 (critical, first) suspicious for SSH via the port hint", rows[1])
	}
	if !strings.Contains(out, "CLEAN*") || !strings.Contains(out, "ANON_TOR") || !strings.Contains(out, "dry run: nothing pushed") {
		t.Errorf("table:\n%s", out)
	}

	// Nothing suspicious: exit 0. Bad input: exit 2 naming the flag.
	os.WriteFile(path, []byte(netfilterLine(btAt.Add(-time.Minute), "10.9.9.9", "45.83.0.10", 443)+"\n"), 0o600)
	if _, errOut, code := runBacktrackTest(t, "--log", path, "--format", "netfilter", "--client", "10.9.9.9", "--at", btAt.Format(time.RFC3339), "--api-url", url, "--rate", "-1"); code != exitClean {
		t.Errorf("clean log: exit %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "netfilter", "--client", "10.9.9.9"}, "--log is required"},
		{[]string{"--log", path, "--format", "syslog", "--client", "10.9.9.9"}, "--format"},
		{[]string{"--log", path, "--format", "netfilter", "--client", "ten"}, "--client"},
		{[]string{"--log", path, "--format", "netfilter", "--client", "10.9.9.9", "--at", "noon"}, "--at"},
		{[]string{"--log", path, "--format", "netfilter", "--client", "10.9.9.9", "--ports-not", "80,http"}, "--ports-not"},
		{[]string{"--log", "/nonexistent", "--format", "netfilter", "--client", "10.9.9.9"}, "--log"},
	} {
		if _, errOut, code := runBacktrackTest(t, append(tc.args, "--api-url", url)...); code != exitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 naming %s", tc.args, code, errOut, tc.want)
		}
	}
}

// Without --dry-run, blocks go through the Corefile's hooks.
func TestBacktrackPushesThroughCorefileHooks(t *testing.T) {
	_, url := fakeapitest.Start(t)
	dir := t.TempDir()
	record := filepath.Join(dir, "exec.log")
	script := filepath.Join(dir, "fw.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+record+"\n"), 0o755)
	corefile := filepath.Join(dir, "Corefile")
	os.WriteFile(corefile, []byte(fmt.Sprintf(`. {
    cipvalidate {
        api_key {$CIP_BT_KEY}
        api_url %s
        block_ttl 6h
        hook exec %s {action} {ip} {ttl} {scope} {clients} {decision}
        state %s
    }
}
`, url, script, filepath.Join(dir, "state"))), 0o600)
	t.Setenv("CIP_BT_KEY", fakeapitest.Key)
	log := filepath.Join(dir, "fw.log")
	os.WriteFile(log, []byte(netfilterLine(btAt.Add(-time.Minute), "10.9.9.9", "45.83.0.21", 8443)+"\n"+
		netfilterLine(btAt.Add(-time.Minute), "10.9.9.9", "45.83.0.10", 8443)+"\n"), 0o600)
	out, errOut, code := runBacktrackTest(t, "--log", log, "--format", "netfilter", "--client", "10.9.9.9", "--at", btAt.Format(time.RFC3339),
		"--corefile", corefile, "--rate", "-1")
	if code != exitSuspicious || !strings.Contains(out, "1 block(s) pushed") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	data, _ := os.ReadFile(record)
	if f := strings.Fields(string(data)); len(f) != 6 || f[0] != "block" || f[1] != "45.83.0.21" || f[2] != "21600" || f[3] != "everyone" || f[4] != "10.9.9.9" {
		t.Errorf("exec hook ran with %q", data)
	}
	// The block went through the engine: audited in the state directory's
	// log, and recorded there for the server to list, publish and lift.
	audit, err := os.ReadFile(filepath.Join(dir, "state", "audit.log"))
	if err != nil || !strings.Contains(string(audit), `"kind":"block"`) || !strings.Contains(string(audit), `"ip":"45.83.0.21"`) {
		t.Errorf("audit log %q (%v), want the block of 45.83.0.21", audit, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("state directory: %v", err)
	}

	// A Corefile without a state directory pushes nothing.
	os.Remove(record)
	noState := filepath.Join(dir, "Corefile.nostate")
	os.WriteFile(noState, []byte(fmt.Sprintf(". {\n cipvalidate {\n  api_key {$CIP_BT_KEY}\n  api_url %s\n  hook exec %s {action} {ip}\n }\n}\n", url, script)), 0o600)
	out, _, code = runBacktrackTest(t, "--log", log, "--format", "netfilter", "--client", "10.9.9.9", "--at", btAt.Format(time.RFC3339),
		"--corefile", noState, "--rate", "-1")
	if code != exitSuspicious || !strings.Contains(out, "no state directory: nothing pushed") {
		t.Errorf("without state: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(record); err == nil {
		t.Error("without state, the exec hook ran")
	}
}

func runBacktrackTest(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := backtrack(context.Background(), args, &out, &errb, func(k string) string {
		if k == "CIP_API_KEY" {
			return fakeapitest.Key
		}
		return ""
	})
	return out.String(), errb.String(), code
}

// BenchmarkBacktrackScan measures the parse-and-select stage over the 100k
// line log, in lines per second.
func BenchmarkBacktrackScan(b *testing.B) {
	path, _ := bigLog(b, nil)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	p, err := connlog.NewParser(connlog.Netfilter, connlog.Options{Now: func() time.Time { return btAt }})
	if err != nil {
		b.Fatal(err)
	}
	off := enforce.Config{PortsNot: []uint16{80, 443}}
	sel := selection{client: netip.MustParseAddr("10.9.9.9"), from: btAt.Add(-5 * time.Minute), to: btAt, off: off, allow: blocks.New(blocks.Policy{}, nil)}
	b.SetBytes(int64(len(data)))
	lines := 0
	for b.Loop() {
		sum, _, _, err := sel.scan(bytes.NewReader(data), p, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		lines += sum.Lines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}

// With --api, a running server decides: the log's records and the event
// go to its admin API, the table is its findings, and the block is its
// own (listed by GET /v1/blocks). No API key is needed on this side.
func TestBacktrackAPI(t *testing.T) {
	cipvalidate.RegisterDirective()
	_, fakeURL := fakeapitest.Start(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("bt-token\n"), 0o600)
	t.Setenv("CIP_BTAPI_KEY", fakeapitest.Key)
	events := freeLoopbackAddr(t)
	coretest.Start(t, fmt.Sprintf(`.:0 {
    cipvalidate {
        api_key {$CIP_BTAPI_KEY}
        api_url %s
        events %s token_file %s
    }
    whoami
}
`, fakeURL, events, tokenFile))
	base := "http://" + events

	at := time.Now().Add(-time.Second)
	log := filepath.Join(dir, "fw.log")
	os.WriteFile(log, []byte(netfilterLine(at.Add(-time.Minute), "10.9.9.9", "45.83.0.21", 8443)+"\n"+ // Critical score
		netfilterLine(at.Add(-2*time.Minute), "10.9.9.9", "45.83.0.99", 8443)+"\n"+ // clean
		netfilterLine(at.Add(-time.Minute), "10.9.9.10", "45.83.0.52", 8443)+"\n"), 0o600) // another client
	noEnv := func(string) string { return "" }
	args := []string{"--log", log, "--format", "netfilter", "--client", "10.9.9.9", "--at", at.Format(time.RFC3339Nano),
		"--api", base, "--token-file", tokenFile, "--deadline", "1m"}

	var out, errb bytes.Buffer
	code := backtrack(context.Background(), args, &out, &errb, noEnv)
	if code != exitSuspicious {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errb)
	}
	rows := strings.Split(out.String(), "\n")
	if f := strings.Fields(rows[1]); len(f) < 2 || f[0] != "SUSPICIOUS" || f[1] != "45.83.0.21" || !strings.Contains(rows[1], "scope everyone") {
		t.Errorf("first row %q, want 45.83.0.21 suspicious at scope everyone", rows[1])
	}
	if !strings.Contains(out.String(), "CLEAN") || strings.Contains(out.String(), "45.83.0.52") ||
		!strings.Contains(out.String(), "decided by the server at "+base) || !strings.Contains(out.String(), "1 block(s) in force") {
		t.Errorf("table:\n%s", &out)
	}
	if !strings.Contains(errb.String(), "server: 2/2 decided") {
		t.Errorf("no progress on stderr:\n%s", &errb)
	}

	// The server holds the block, as if a DNS event had led to it.
	api, err := newEventAPIClient(base, apiFiles{token: tokenFile}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var listed []blockEntry
	if _, status, err := api.do(context.Background(), "GET", "/v1/blocks", nil, &listed); err != nil || status != 200 {
		t.Fatalf("GET /v1/blocks: %d %v", status, err)
	}
	if len(listed) != 1 || listed[0].IP != "45.83.0.21" || !slices.Contains(listed[0].Clients, "10.9.9.9") {
		t.Errorf("GET /v1/blocks: %+v, want the block of 45.83.0.21 for 10.9.9.9", listed)
	}

	// --json carries the same findings; without the token, a 401.
	out.Reset()
	if code := backtrack(context.Background(), append(args, "--json"), &out, &errb, noEnv); code != exitSuspicious {
		t.Fatalf("--json: exit %d: %s", code, &errb)
	}
	var res struct {
		Destinations []destination    `json:"destinations"`
		Summary      backtrackSummary `json:"summary"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Summary.Suspicious != 1 || res.Summary.Clean != 1 ||
		res.Destinations[0].Scope != "everyone" || res.Destinations[0].Decision != listed[0].Decision {
		t.Errorf("--json (%v): %s", err, &out)
	}
	errb.Reset()
	if code := backtrack(context.Background(), args[:len(args)-4], io.Discard, &errb, noEnv); code != exitError || !strings.Contains(errb.String(), "401") {
		t.Errorf("without the token: exit %d, %q; want 2 and a 401", code, &errb)
	}
}

// --api leaves the decision to the server: a Corefile or a dry run here
// would mean something else, so they are refused.
func TestBacktrackAPIExcludes(t *testing.T) {
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--corefile", "/etc/coredns/Corefile"}, "--api and --corefile exclude each other"},
		{[]string{"--dry-run"}, "--api and --dry-run exclude each other"},
		{[]string{"--deadline", "0s"}, "--deadline must be positive"},
	} {
		args := append([]string{"--log", "-", "--format", "netfilter", "--client", "10.9.9.9", "--api", "http://127.0.0.1:1"}, tc.extra...)
		if _, errOut, code := runBacktrackTest(t, args...); code != exitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.extra, code, errOut, tc.want)
		}
	}
}

// freeLoopbackAddr returns a loopback TCP address nothing listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
