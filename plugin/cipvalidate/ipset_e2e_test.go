package cipvalidate

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coredns-cip/coredns-cip/internal/netnstest"
)

// ipsetHook is the recipe's script, run as docs/integrations/ipset.md
// installs it.
var ipsetHook, _ = filepath.Abs("../../contrib/ipset-hook.sh")

// ipsetNS is a namespace with the recipe's IPv4 sets and iptables rules,
// created with the commands docs/integrations/ipset.md gives.
type ipsetNS struct {
	*netnstest.NetNS
	pairs bool // the kernel has hash:net,net (tagged blocks for every port)
}

func newIpsetNS(t *testing.T, addrs ...string) ipsetNS {
	t.Helper()
	netnstest.RequireNetAdmin(t)
	for _, tool := range []string{"ipset", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s for the ipset recipe (apt-get install ipset iptables): %v", tool, err)
		}
	}
	n := ipsetNS{NetNS: netnstest.New(t, addrs...)}
	sets := []struct{ name, typ, match string }{
		{"cip-block", "hash:net", "dst"},
		{"cip-pairs", "hash:net,net", "src,dst"},
		{"cip-ports", "hash:ip,port,net", "src,dst,dst"},
	}
	for _, s := range sets {
		out, err := n.cmd("ipset", "create", "-exist", s.name, s.typ, "family", "inet", "timeout", "0").CombinedOutput()
		if err != nil && s.name == "cip-pairs" && strings.Contains(string(out), "not supported") {
			t.Logf("this kernel has no %s: tagged blocks for every port are not tested", s.typ)
			continue
		} else if err != nil {
			t.Fatalf("ipset create %s %s: %v: %s", s.name, s.typ, err, out)
		}
		n.pairs = n.pairs || s.name == "cip-pairs"
		for _, chain := range []string{"OUTPUT", "FORWARD"} {
			n.run(t, "iptables", "-I", chain, "-m", "set", "--match-set", s.name, s.match, "-j", "DROP")
		}
	}
	return n
}

func (n ipsetNS) cmd(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

func (n ipsetNS) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inSet reports whether ipset test finds elem in set.
func (n ipsetNS) inSet(set, elem string) bool {
	return n.cmd("ipset", "test", set, elem).Run() == nil
}

var timeoutRE = regexp.MustCompile(`(?m)^(\S+) timeout (\d+)$`)

// timeouts is the seconds left on each element of set.
func (n ipsetNS) timeouts(t *testing.T, set string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range timeoutRE.FindAllStringSubmatch(n.run(t, "ipset", "list", set), -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	return got
}

// dropped is the packet count of the OUTPUT rule matching set.
func (n ipsetNS) dropped(t *testing.T, set string) int {
	t.Helper()
	for _, line := range strings.Split(n.run(t, "iptables", "-L", "OUTPUT", "-v", "-n", "-x"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(line, "match-set "+set+" ") {
			c, _ := strconv.Atoi(f[0])
			return c
		}
	}
	t.Fatalf("no OUTPUT rule for %s", set)
	return 0
}

// The recipe end to end: coredns-cip's exec hook runs the script (inside
// the namespace), an operator's block puts the IP into cip-block with the
// block's time left and connections to it are dropped, a range block goes
// in as its CIDR, and the lifts take both out again.
func TestE2EIpsetHook(t *testing.T) {
	ns := newIpsetNS(t, "45.83.0.10/32", "45.83.0.90/32")
	blocked, other := ns.Listen(t, "45.83.0.10"), ns.Listen(t, "45.83.0.90")
	// The exec hook runs a program with arguments; this one enters the
	// namespace and runs the script exactly as the Corefile line would.
	enter := filepath.Join(t.TempDir(), "ipset-hook")
	if err := os.WriteFile(enter, []byte(fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns.Name, ipsetHook)), 0o755); err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, "hook exec "+enter+" {action} {ip} {ttl} {scope} {client} {port}")

	var d decisionAnswer
	if code := e.api("POST", "/v1/blocks", map[string]string{"ip": "45.83.0.10", "ttl": "2h", "reason": "IR-7: C2"}, &d); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks = %d %+v", code, d)
	}
	eventually(t, "45.83.0.10 in cip-block", func() bool { return ns.inSet("cip-block", "45.83.0.10") })
	if left := ns.timeouts(t, "cip-block")["45.83.0.10"]; left <= 7000 || left > 7200 {
		t.Errorf("45.83.0.10 has %ds left in cip-block, want the block's 2h", left)
	}
	before := ns.dropped(t, "cip-block")
	ns.WantDropped(t, "", blocked)
	ns.WantOpen(t, "", other)
	if after := ns.dropped(t, "cip-block"); after <= before {
		t.Errorf("the cip-block DROP rule counted %d packets, then %d: want the connect's SYNs counted", before, after)
	}

	var r decisionAnswer
	if code := e.api("POST", "/v1/blocks", map[string]string{"range": "45.83.0.80/28", "ttl": "1h", "reason": "IR-9: scanner farm"}, &r); code != http.StatusCreated {
		t.Fatalf("POST /v1/blocks with a range = %d %+v", code, r)
	}
	eventually(t, "45.83.0.80/28 in cip-block", func() bool { return ns.inSet("cip-block", "45.83.0.80/28") })
	ns.WantDropped(t, "", other)

	for _, id := range []string{d.ID, r.ID} {
		if code := e.api("DELETE", "/v1/decisions/"+id+"?reason=contained", nil, nil); code != http.StatusOK {
			t.Fatalf("lift %s: %d", id, code)
		}
	}
	eventually(t, "cip-block empty after the lifts", func() bool { return len(ns.timeouts(t, "cip-block")) == 0 })
	ns.WantOpen(t, "", blocked)
	ns.WantOpen(t, "", other)
}

// The script on its own, run as the exec hook runs it: tagged blocks go
// into the pair sets and drop only the tagged client's traffic, and bad
// arguments exit non-zero with a message before ipset runs.
func TestIpsetHookScript(t *testing.T) {
	ns := newIpsetNS(t, "45.83.0.10/32", "10.99.0.1/32", "10.99.0.2/32")
	target := ns.Listen(t, "45.83.0.10")
	hook := func(args ...string) (string, error) {
		out, err := ns.cmd(append([]string{ipsetHook}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustHook := func(args ...string) {
		t.Helper()
		if out, err := hook(args...); err != nil {
			t.Fatalf("ipset-hook %q: %v: %s", args, err, out)
		}
	}

	port := strconv.Itoa(int(target.Port()))
	mustHook("block", "45.83.0.10", "600", "tagged", "10.99.0.1", port)
	for _, proto := range []string{"tcp", "udp"} {
		if el := "10.99.0.1," + proto + ":" + port + ",45.83.0.10"; !ns.inSet("cip-ports", el) {
			t.Errorf("%s not in cip-ports after a tagged block on port %s", el, port)
		}
	}
	ns.WantDropped(t, "10.99.0.1", target)
	ns.WantOpen(t, "10.99.0.2", target)
	mustHook("unblock", "45.83.0.10", "0", "tagged", "10.99.0.1", port)
	mustHook("unblock", "45.83.0.10", "0", "tagged", "10.99.0.1", port) // already gone: still fine
	ns.WantOpen(t, "10.99.0.1", target)

	if ns.pairs {
		mustHook("block", "45.83.0.10", "600", "tagged", "10.99.0.1", "")
		ns.WantDropped(t, "10.99.0.1", target)
		ns.WantOpen(t, "10.99.0.2", target)
		mustHook("unblock", "45.83.0.10", "0", "tagged", "10.99.0.1", "")
		ns.WantOpen(t, "10.99.0.1", target)
	}

	// Longer than ipset's largest timeout: in without one, out at the unblock.
	mustHook("block", "45.83.0.10", "31536000", "everyone", "", "")
	if left, ok := ns.timeouts(t, "cip-block")["45.83.0.10"]; !ok || left != 0 {
		t.Errorf("a 365d block: timeouts %v, want 45.83.0.10 with none (0)", ns.timeouts(t, "cip-block"))
	}
	mustHook("unblock", "45.83.0.10", "0", "everyone", "", "")

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "45.83.0.10", "600", "everyone"}, "action add"},
		{[]string{"block", "-exist", "600", "everyone"}, "ip -exist"},
		{[]string{"block", "45.83.0.10", "2h", "everyone"}, "ttl 2h"},
		{[]string{"block", "45.83.0.10", "600", "some"}, "scope some"},
		{[]string{"block", "45.83.0.10", "600", "everyone", "10.99.0.1"}, "client 10.99.0.1 given for scope everyone"},
		{[]string{"block", "45.83.0.10", "600", "tagged", "2001:db8::1"}, "client 2001:db8::1"},
		{[]string{"block", "45.83.0.10", "600", "tagged", "10.99.0.1", "70000"}, "port 70000"},
		{[]string{"block", "45.83.0.10"}, "want 4 to 6 arguments"},
	} {
		out, err := hook(bad.args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, bad.want) {
			t.Errorf("ipset-hook %q: %v %q, want exit 2 saying %q", bad.args, err, out, bad.want)
		}
	}
	if els := ns.timeouts(t, "cip-block"); len(els) != 0 {
		t.Errorf("cip-block after bad arguments holds %v, want nothing", els)
	}
}
