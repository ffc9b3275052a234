package cipvalidate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The contrib scripts of docs/integrations, run as the pages install them.
var (
	awsWAFHook     = contribScript("aws-waf-hook.sh")
	azureNSGHook   = contribScript("azure-nsg-hook.sh")
	cloudflareHook = contribScript("cloudflare-list-hook.sh")
	k8sHook        = contribScript("k8s-blocklist-hook.sh")
)

func contribScript(name string) string {
	p, _ := filepath.Abs(filepath.Join("../../contrib", name))
	return p
}

// stubTools is a directory of tiny shell stubs that go first on PATH in
// place of the cloud CLIs: each records its argv (one line a call, each
// argument in brackets) and answers from state files, so the scripts run
// end to end without reaching the network.
type stubTools struct {
	t   *testing.T
	dir string
}

func newStubTools(t *testing.T) *stubTools {
	t.Helper()
	s := &stubTools{t: t, dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(s.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// add writes the stub name; body runs after the call is recorded, with
// $stub the stub directory and $n the call's number.
func (s *stubTools) add(name, body string) {
	s.t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
stub=%s
n=$(( $(cat "$stub/n" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$stub/n"
{ printf '%%s' "${0##*/}"; for a; do printf ' [%%s]' "$a"; done; echo; } >> "$stub/calls"
%s
`, s.dir, body)
	if err := os.WriteFile(filepath.Join(s.dir, "bin", name), []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// path is PATH with the stubs first.
func (s *stubTools) path() string { return filepath.Join(s.dir, "bin") + ":" + os.Getenv("PATH") }

// calls are the recorded calls since the last reset.
func (s *stubTools) calls() []string {
	data, err := os.ReadFile(filepath.Join(s.dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		s.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// reset forgets the calls and restarts their numbering.
func (s *stubTools) reset() {
	for _, f := range []string{"calls", "n"} {
		_ = os.Remove(filepath.Join(s.dir, f))
	}
}

// file reads (or, with content, writes) a stub state file.
func (s *stubTools) file(name string, content ...string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if len(content) > 0 {
		if err := os.WriteFile(p, []byte(content[0]), 0o600); err != nil {
			s.t.Fatal(err)
		}
		return content[0]
	}
	data, _ := os.ReadFile(p)
	return strings.TrimSpace(string(data))
}

// run runs script with the stubs first on PATH, as the exec hook would;
// code is its exit status.
func (s *stubTools) run(script string, args ...string) (out string, code int) {
	s.t.Helper()
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), "PATH="+s.path())
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		s.t.Fatalf("%s: %v", script, err)
	}
	return string(b), code
}

// mustRun is run that wants exit 0.
func (s *stubTools) mustRun(script string, args ...string) {
	s.t.Helper()
	if out, code := s.run(script, args...); code != 0 {
		s.t.Fatalf("%s %q: exit %d: %s", filepath.Base(script), args, code, out)
	}
}

// badInput runs script with each of args and wants exit 2 with a message
// naming want, and no CLI call at all.
func (s *stubTools) badInput(script string, cases []badCase) {
	s.t.Helper()
	for _, c := range cases {
		s.reset()
		out, code := s.run(script, c.args...)
		if code != 2 || !strings.Contains(out, c.want) {
			s.t.Errorf("%s %q: exit %d %q, want exit 2 saying %q", filepath.Base(script), c.args, code, out, c.want)
		}
		if calls := s.calls(); len(calls) != 0 {
			s.t.Errorf("%s %q ran %q, want no call", filepath.Base(script), c.args, calls)
		}
	}
}

type badCase struct {
	args []string
	want string
}

// awsStub answers get-ip-set with a lock token named after the call
// (lock-N) and the set's addresses, as `--output text` prints them, and
// keeps what update-ip-set writes. $stub/lockfail holds how many updates
// fail with WAFOptimisticLockException first; $stub/fail, an error every
// update gets.
const awsStub = `
name=""
case $2 in
get-ip-set)
	while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done
	printf 'lock-%s\t%s\n' "$n" "$(cat "$stub/state.$name" 2>/dev/null)"
	;;
update-ip-set)
	left=$(cat "$stub/lockfail" 2>/dev/null || echo 0)
	if [ "$left" -gt 0 ]; then
		echo $((left - 1)) > "$stub/lockfail"
		echo "An error occurred (WAFOptimisticLockException) when calling the UpdateIPSet operation: AWS WAF couldn't save your changes because someone changed the resource after you started to edit it." >&2
		exit 254
	fi
	if [ -s "$stub/fail" ]; then cat "$stub/fail" >&2; exit 254; fi
	while [ $# -gt 0 ]; do
		case $1 in --name) name=$2 ;; --addresses) shift; break ;; esac
		shift
	done
	if [ "$*" = "[]" ]; then : > "$stub/state.$name"; else echo "$*" > "$stub/state.$name"; fi
	echo '{"NextLockToken": "next"}'
	;;
*) echo "stub aws: unexpected $*" >&2; exit 1 ;;
esac
`

const (
	wafID4 = "11111111-2222-3333-4444-555555555555"
	wafID6 = "66666666-7777-8888-9999-000000000000"
)

// checkWAFCalls wants every update-ip-set to carry the lock token of the
// get-ip-set right before it, and returns how many of each there were.
func checkWAFCalls(t *testing.T, calls []string) (gets, updates int) {
	t.Helper()
	for i, c := range calls {
		switch {
		case strings.HasPrefix(c, "aws [wafv2] [get-ip-set] [--scope] [REGIONAL]"):
			gets++
		case strings.HasPrefix(c, "aws [wafv2] [update-ip-set] [--scope] [REGIONAL]"):
			updates++
			if want := fmt.Sprintf("[--lock-token] [lock-%d]", i); i == 0 || !strings.Contains(c, want) {
				t.Errorf("call %d %q: want the lock token of the get-ip-set before it, %s", i+1, c, want)
			}
		default:
			t.Errorf("unexpected call %q", c)
		}
	}
	return gets, updates
}

// The AWS WAF script against a stub aws CLI: blocks and unblocks read the
// set with its lock token and write it whole, repeats write nothing, IPv6
// goes to the IPv6 set, a lost race is retried and bad input never reaches
// the CLI.
func TestAWSWAFHookScript(t *testing.T) {
	s := newStubTools(t)
	s.add("aws", awsStub)
	cfg := []string{"REGIONAL", "cip-block4", wafID4, "cip-block6", wafID6}
	hook := func(action, ip, scope string) []string { return append([]string{action, ip, scope}, cfg...) }

	s.mustRun(awsWAFHook, hook("block", "45.83.0.10", "everyone")...)
	if got := s.file("state.cip-block4"); got != "45.83.0.10/32" {
		t.Errorf("cip-block4 after a block = %q, want 45.83.0.10/32", got)
	}
	calls := s.calls()
	if gets, updates := checkWAFCalls(t, calls); gets != 1 || updates != 1 {
		t.Errorf("a block made calls %q, want one get-ip-set and one update-ip-set", calls)
	}
	if want := "[--name] [cip-block4] [--id] [" + wafID4 + "] [--query] [[LockToken, join(' ', IPSet.Addresses)]] [--output] [text]"; !strings.Contains(calls[0], want) {
		t.Errorf("get-ip-set call %q, want %q", calls[0], want)
	}

	s.reset()
	s.mustRun(awsWAFHook, hook("block", "45.83.0.10", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("a repeated block made calls %q, want the read only", calls)
	}

	s.mustRun(awsWAFHook, hook("block", "45.83.0.80/28", "everyone")...)
	s.mustRun(awsWAFHook, hook("block", "2001:db8::1", "everyone")...)
	s.mustRun(awsWAFHook, hook("block", "2001:db8:66::/48", "everyone")...)
	if got := s.file("state.cip-block4"); got != "45.83.0.10/32 45.83.0.80/28" {
		t.Errorf("cip-block4 = %q, want the IP and the range", got)
	}
	if got := s.file("state.cip-block6"); got != "2001:db8::1/128 2001:db8:66::/48" {
		t.Errorf("cip-block6 = %q, want the IPv6 address as /128 and the range", got)
	}

	s.mustRun(awsWAFHook, hook("unblock", "45.83.0.10", "everyone")...)
	s.mustRun(awsWAFHook, hook("unblock", "45.83.0.80/28", "everyone")...)
	if got := s.file("state.cip-block4"); got != "" {
		t.Errorf("cip-block4 after the unblocks = %q, want it empty", got)
	}
	if calls := s.calls(); !strings.HasSuffix(calls[len(calls)-1], "[--addresses] [[]]") {
		t.Errorf("the last unblock wrote %q, want --addresses []", calls[len(calls)-1])
	}
	s.reset()
	s.mustRun(awsWAFHook, hook("unblock", "45.83.0.10", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("an unblock of an absent IP made calls %q, want the read only", calls)
	}

	// Two lost races: read and written again, each with its own token.
	s.reset()
	s.file("lockfail", "2")
	s.mustRun(awsWAFHook, hook("block", "45.83.0.11", "everyone")...)
	if gets, updates := checkWAFCalls(t, s.calls()); gets != 3 || updates != 3 {
		t.Errorf("two lock conflicts: %d reads and %d writes, want 3 of each", gets, updates)
	}
	if got := s.file("state.cip-block4"); got != "45.83.0.11/32" {
		t.Errorf("cip-block4 after the retries = %q", got)
	}
	s.file("lockfail", "9")
	if out, code := s.run(awsWAFHook, hook("block", "45.83.0.12", "everyone")...); code != 1 || !strings.Contains(out, "WAFOptimisticLockException") {
		t.Errorf("conflicts every time: exit %d %q, want 1 naming the exception", code, out)
	}
	s.file("lockfail", "0")
	s.file("fail", "An error occurred (AccessDeniedException) when calling the UpdateIPSet operation")
	s.reset()
	if out, code := s.run(awsWAFHook, hook("block", "45.83.0.12", "everyone")...); code != 1 || !strings.Contains(out, "AccessDeniedException") {
		t.Errorf("access denied: exit %d %q, want 1 naming it", code, out)
	}
	if calls := s.calls(); len(calls) != 2 {
		t.Errorf("an error other than a lock conflict made calls %q, want no retry", calls)
	}
	s.file("fail", "")

	s.reset()
	if out, code := s.run(awsWAFHook, hook("block", "45.83.0.13", "tagged")...); code != 0 || !strings.Contains(out, "skipped") || len(s.calls()) != 0 {
		t.Errorf("a tagged block: exit %d %q, calls %q; want it skipped, exit 0", code, out, s.calls())
	}

	s.badInput(awsWAFHook, []badCase{
		{hook("add", "45.83.0.10", "everyone"), "action add"},
		{hook("block", "--debug", "everyone"), "ip --debug"},
		{hook("block", "45.83.0.10 45.83.0.11", "everyone"), "ip 45.83.0.10 45.83.0.11"},
		{hook("block", "", "everyone"), `ip ""`},
		{hook("block", "45.83.0.10", "some"), "scope some"},
		{[]string{"block", "45.83.0.10", "everyone", "GLOBAL", "cip-block4", wafID4, "cip-block6", wafID6}, "waf scope GLOBAL"},
		{[]string{"block", "45.83.0.10", "everyone", "REGIONAL", "cip block4", wafID4, "cip-block6", wafID6}, "name4 cip block4"},
		{[]string{"block", "45.83.0.10", "everyone"}, "want 8 arguments"},
	})
}

// azStub answers `az network nsg rule show` with the rule's prefixes, one a
// line as `--output tsv` prints them, and keeps what `update` writes.
const azStub = `
[ "$1 $2 $3" = "network nsg rule" ] || { echo "stub az: unexpected $*" >&2; exit 1; }
verb=$4 name="" prefixes=""
shift 4
while [ $# -gt 0 ]; do
	case $1 in
	--name) name=$2; shift ;;
	--destination-address-prefixes)
		while [ $# -gt 1 ]; do case $2 in --*) break ;; esac; prefixes="$prefixes $2"; shift; done ;;
	esac
	shift
done
case $verb in
show) cat "$stub/rule.$name" ;;
update) printf '%s\n' $prefixes > "$stub/rule.$name" ;;
*) echo "stub az: unexpected verb $verb" >&2; exit 1 ;;
esac
`

// The Azure NSG script against a stub az CLI: prefixes added and taken out
// of the rule of their family, the never-routed placeholder taken out by
// the first block and put back by the last unblock, repeats write nothing
// and bad input never reaches the CLI.
func TestAzureNSGHookScript(t *testing.T) {
	s := newStubTools(t)
	s.add("az", azStub)
	s.file("rule.cip-block4", "192.0.2.1/32\n")
	s.file("rule.cip-block6", "2001:db8::1/128\n")
	cfg := []string{"rg-net", "nsg-app", "cip-block4", "cip-block6"}
	hook := func(action, ip, scope string) []string { return append([]string{action, ip, scope}, cfg...) }
	rule := func(name string) string { return strings.ReplaceAll(s.file("rule."+name), "\n", " ") }

	s.mustRun(azureNSGHook, hook("block", "45.83.0.10", "everyone")...)
	calls := s.calls()
	wantCalls := []string{
		`az [network] [nsg] [rule] [show] [--resource-group] [rg-net] [--nsg-name] [nsg-app] [--name] [cip-block4] [--query] [[destinationAddressPrefix, destinationAddressPrefixes][]] [--output] [tsv]`,
		`az [network] [nsg] [rule] [update] [--resource-group] [rg-net] [--nsg-name] [nsg-app] [--name] [cip-block4] [--destination-address-prefixes] [45.83.0.10] [--output] [none]`,
	}
	if strings.Join(calls, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("a block made calls\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(wantCalls, "\n"))
	}
	s.reset()
	s.mustRun(azureNSGHook, hook("block", "45.83.0.10", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("a repeated block made calls %q, want the read only", calls)
	}
	s.mustRun(azureNSGHook, hook("block", "45.83.0.80/28", "everyone")...)
	s.mustRun(azureNSGHook, hook("block", "2001:db8:66::1", "everyone")...)
	if got := rule("cip-block4"); got != "45.83.0.10 45.83.0.80/28" {
		t.Errorf("cip-block4 = %q, want the IP and the range", got)
	}
	if got := rule("cip-block6"); got != "2001:db8:66::1" {
		t.Errorf("cip-block6 = %q, want the IPv6 address alone (placeholder gone)", got)
	}
	s.mustRun(azureNSGHook, hook("unblock", "45.83.0.10", "everyone")...)
	s.mustRun(azureNSGHook, hook("unblock", "45.83.0.80/28", "everyone")...)
	s.mustRun(azureNSGHook, hook("unblock", "2001:db8:66::1", "everyone")...)
	if got4, got6 := rule("cip-block4"), rule("cip-block6"); got4 != "192.0.2.1/32" || got6 != "2001:db8::1/128" {
		t.Errorf("after the last unblocks the rules hold %q and %q, want the placeholders back", got4, got6)
	}
	s.reset()
	s.mustRun(azureNSGHook, hook("unblock", "45.83.0.10", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("an unblock of an absent IP made calls %q, want the read only", calls)
	}
	s.reset()
	if out, code := s.run(azureNSGHook, hook("block", "45.83.0.13", "tagged")...); code != 0 || !strings.Contains(out, "skipped") || len(s.calls()) != 0 {
		t.Errorf("a tagged block: exit %d %q, calls %q; want it skipped, exit 0", code, out, s.calls())
	}

	s.badInput(azureNSGHook, []badCase{
		{hook("add", "45.83.0.10", "everyone"), "action add"},
		{hook("block", "-o", "everyone"), "ip -o"},
		{hook("block", "45.83.0.10/", "everyone"), "ip 45.83.0.10/"},
		{hook("block", "45.83.0.10", ""), `scope ""`},
		{[]string{"block", "45.83.0.10", "everyone", "--debug", "nsg-app", "cip-block4", "cip-block6"}, "resource group --debug"},
		{[]string{"block", "45.83.0.10", "everyone", "rg-net", "nsg;app", "cip-block4", "cip-block6"}, "nsg nsg;app"},
		{[]string{"block", "45.83.0.10", "everyone", "rg-net", "nsg-app", "cip-block4"}, "want 7 arguments"},
	})
}

// cfStub answers the Cloudflare Lists API as curl would print it: the
// items matching ?search= (a prefix), POST adds one, DELETE removes one by
// id. $stub/items holds "ID IP" lines; $stub/cferror, an error answer for
// every call. The config on stdin (the token) is kept per call.
const cfStub = `
cat > "$stub/stdin.$n"
method="" url="" data=""
while [ $# -gt 0 ]; do
	case $1 in
	--request) method=$2; url=$3; shift 2 ;;
	--data) data=$2; shift ;;
	esac
	shift
done
if [ -s "$stub/cferror" ]; then cat "$stub/cferror"; exit 0; fi
touch "$stub/items"
case $method in
GET)
	q=${url#*search=}
	printf '{"success":true,"errors":[],"result":['
	sep=""
	while read -r id ip; do
		case $ip in "$q"*) printf '%s{"id":"%s","ip":"%s","comment":"coredns-cip"}' "$sep" "$id" "$ip"; sep=, ;; esac
	done < "$stub/items"
	printf ']}\n'
	;;
POST)
	echo "item$n $(printf '%s' "$data" | jq -r '.[0].ip')" >> "$stub/items"
	echo '{"success":true,"errors":[],"result":{"operation_id":"op1"}}'
	;;
DELETE)
	id=$(printf '%s' "$data" | jq -r '.items[0].id')
	grep -v "^$id " "$stub/items" > "$stub/items.new" || :
	mv "$stub/items.new" "$stub/items"
	echo '{"success":true,"errors":[],"result":{"operation_id":"op2"}}'
	;;
esac
`

// The Cloudflare script against a stub curl: items added once, found by
// their exact value and deleted by id, IPv6 as its /64, the token only on
// curl's stdin, API errors fail the run and bad input never reaches curl.
func TestCloudflareListHookScript(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skipf("the Cloudflare recipe needs jq (apt-get install jq): %v", err)
	}
	s := newStubTools(t)
	s.add("curl", cfStub)
	const account, list, secret = "023e105f4ecef8ad9ca31a8372d0c353", "2c0fc9fa937b11eaa1b71c4d701ab86e", "cf-secret-token-for-tests"
	tokenFile := filepath.Join(t.TempDir(), "cloudflare.token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := func(action, ip, scope string) []string { return []string{action, ip, scope, account, list, tokenFile} }
	items := func() string { return strings.ReplaceAll(s.file("items"), "\n", " | ") }
	base := "https://api.cloudflare.com/client/v4/accounts/" + account + "/rules/lists/" + list + "/items"

	s.mustRun(cloudflareHook, hook("block", "45.83.0.1", "everyone")...)
	calls := s.calls()
	if len(calls) != 2 || !strings.HasSuffix(calls[0], "[--request] [GET] ["+base+"?search=45.83.0.1]") ||
		!strings.Contains(calls[1], "[--request] [POST] ["+base+"] [--header] [Content-Type: application/json] [--data] [[{\"ip\":\"45.83.0.1\",\"comment\":\"coredns-cip\"}]]") {
		t.Errorf("a block made calls %q, want a search, then a POST of the item", calls)
	}
	for i, c := range calls {
		if strings.Contains(c, secret) {
			t.Errorf("call %q shows the token in curl's arguments", c)
		}
		if cfg := s.file(fmt.Sprintf("stdin.%d", i+1)); cfg != `header = "Authorization: Bearer `+secret+`"` {
			t.Errorf("curl's stdin for call %d = %q, want the Authorization header config", i+1, cfg)
		}
	}
	s.reset()
	s.mustRun(cloudflareHook, hook("block", "45.83.0.1", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("a repeated block made calls %q, want the search only", calls)
	}
	// 45.83.0.10 starts with 45.83.0.1: the search finds both, only the
	// exact one counts.
	s.mustRun(cloudflareHook, hook("block", "45.83.0.10", "everyone")...)
	s.mustRun(cloudflareHook, hook("block", "45.83.0.80/28", "everyone")...)
	s.mustRun(cloudflareHook, hook("block", "2001:DB8:0:0:1::5", "everyone")...)
	s.mustRun(cloudflareHook, hook("block", "2001:db8:66::/48", "everyone")...)
	if got, want := items(), "item2 45.83.0.1 | item3 45.83.0.10 | item5 45.83.0.80/28 | item7 2001:db8::/64 | item9 2001:db8:66::/48"; got != want {
		t.Errorf("list items = %q, want %q (IPv6 addresses as their /64)", got, want)
	}
	s.file("items", "a1 45.83.0.1\na10 45.83.0.10\na80 45.83.0.80/28\nv6 2001:db8::/64\n")
	s.reset()
	s.mustRun(cloudflareHook, hook("unblock", "45.83.0.1", "everyone")...)
	if calls := s.calls(); len(calls) != 2 || !strings.Contains(calls[1], `[--request] [DELETE] [`+base+`] [--header] [Content-Type: application/json] [--data] [{"items":[{"id":"a1"}]}]`) {
		t.Errorf("an unblock made calls %q, want a search, then a DELETE of item a1", calls)
	}
	s.mustRun(cloudflareHook, hook("unblock", "2001:db8::7", "everyone")...)
	if got := items(); got != "a10 45.83.0.10 | a80 45.83.0.80/28" {
		t.Errorf("list items after the unblocks = %q", got)
	}
	s.reset()
	s.mustRun(cloudflareHook, hook("unblock", "45.83.0.1", "everyone")...)
	if calls := s.calls(); len(calls) != 1 {
		t.Errorf("an unblock of an absent IP made calls %q, want the search only", calls)
	}

	s.file("cferror", `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"result":null}`)
	if out, code := s.run(cloudflareHook, hook("block", "45.83.0.2", "everyone")...); code != 1 || !strings.Contains(out, "Authentication error") {
		t.Errorf("an API error: exit %d %q, want 1 with Cloudflare's message", code, out)
	}
	s.file("cferror", "")
	s.reset()
	if out, code := s.run(cloudflareHook, hook("block", "45.83.0.13", "tagged")...); code != 0 || !strings.Contains(out, "skipped") || len(s.calls()) != 0 {
		t.Errorf("a tagged block: exit %d %q, calls %q; want it skipped, exit 0", code, out, s.calls())
	}

	s.badInput(cloudflareHook, []badCase{
		{hook("add", "45.83.0.10", "everyone"), "action add"},
		{hook("block", "45.83.0.10&x=1", "everyone"), "ip 45.83.0.10&x=1"},
		{hook("block", "10.0.0.0/7", "everyone"), "IPv4 ranges of /8 and longer"},
		{hook("block", "2001::/8", "everyone"), "IPv6 ranges of /12 and longer"},
		{hook("block", "45.83.0.10", "both"), "scope both"},
		{[]string{"block", "45.83.0.10", "everyone", "../x", list, tokenFile}, "account ../x"},
		{[]string{"block", "45.83.0.10", "everyone", account, list, "/nonexistent/token"}, "token file /nonexistent/token"},
		{[]string{"block", "45.83.0.10", "everyone", account, list}, "want 6 arguments"},
	})
}
