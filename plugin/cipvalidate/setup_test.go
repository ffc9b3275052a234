package cipvalidate

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/adminapi"
	"github.com/coredns-cip/coredns-cip/internal/optval"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func parseString(t *testing.T, input string) (*config, error) {
	t.Helper()
	c := caddy.NewTestController("dns", input)
	c.ServerBlockKeys = []string{"."}
	return parse(c)
}

func TestParseDefaults(t *testing.T) {
	cfg, err := parseString(t, "cipvalidate {\n api_key k\n}")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.window != 5*time.Minute || cfg.retain != 15*time.Minute || cfg.watch != 30*time.Minute ||
		!cfg.enforceAll || cfg.action != ActionSinkhole || cfg.sink4 != netip.IPv4Unspecified() || cfg.sink6 != netip.IPv6Unspecified() ||
		cfg.monitor || cfg.pendingWait != 0 || cfg.failClosed || cfg.eventsAddr != "" ||
		cfg.ttls.Suspicious != 24*time.Hour || cfg.ttls.Clean != time.Hour || cfg.ttls.Error != time.Minute ||
		cfg.apiURL != "https://api.criminalip.io" || !slices.Equal(cfg.zones, []string{"."}) || cfg.cpu != 0 {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestParseEveryOption(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(keyFile, []byte(`{"api_key": "from-file"}`), 0o600)
	os.WriteFile(tokenFile, []byte("tok\n"), 0o600)

	cfg, err := parseString(t, `cipvalidate example.org {
    api_key from-corefile
    api_url http://127.0.0.1:8081
    rate 0.5 3
    timeout 3s
    window 2m
    retain 10m per_client 64 total 5000
    watch 1h
    tag 10.9.0.0/16 10.8.0.1
    tag 192.168.7.0/24
    client_from ecs 10.0.0.53
    after_hours 20:00-07:00 Europe/Paris
    exclude 45.83.1.0/24
    allow 45.83.0.22 partner.example.COM 45.83.2.0/24
    factors score ssh
    score_levels critical
    cache 500 suspicious 2h clean 10m error 30s
    workers 8
    queue 100
    validate_cpu 10%
    enforce tagged
    action sinkhole 10.0.0.53 fd00::53
    mode monitor
    pending wait 250ms
    fail closed
    events 127.0.0.1:0 token_file `+tokenFile+`
    reconcile 90s
}`)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"zones":        slices.Equal(cfg.zones, []string{"example.org."}),
		"api_key":      cfg.apiKey == "from-corefile",
		"api_url":      cfg.apiURL == "http://127.0.0.1:8081",
		"rate":         cfg.rate == 0.5 && cfg.burst == 3,
		"timeout":      cfg.timeout == 3*time.Second,
		"window":       cfg.window == 2*time.Minute,
		"retain":       cfg.retain == 10*time.Minute && cfg.perClient == 64 && cfg.total == 5000,
		"watch":        cfg.watch == time.Hour,
		"tag":          len(cfg.tagNets) == 3 && cfg.tagNets[1] == netip.MustParsePrefix("10.8.0.1/32"),
		"after_hours":  cfg.afterHours != nil,
		"exclude":      len(cfg.exclude) == 1,
		"allow":        len(cfg.allowNets) == 2 && slices.Equal(cfg.allowDomains, []string{"partner.example.com."}),
		"factors":      cfg.policy.Counts("SCORE") && cfg.policy.Counts("SSH_OPENSSH") && !cfg.policy.Counts("ANON_TOR"),
		"cache":        cfg.cacheSize == 500 && cfg.ttls.Suspicious == 2*time.Hour && cfg.ttls.Clean == 10*time.Minute && cfg.ttls.Error == 30*time.Second,
		"workers":      cfg.workers == 8,
		"queue":        cfg.queueSize == 100,
		"validate_cpu": cfg.cpu == 0.1 && cfg.engineConfig().CPU == 0.1,
		"enforce":      !cfg.enforceAll,
		"action":       cfg.action == ActionSinkhole && cfg.sink4 == netip.MustParseAddr("10.0.0.53") && cfg.sink6 == netip.MustParseAddr("fd00::53"),
		"mode":         cfg.monitor,
		"client_from":  cfg.clientFrom != nil,
		"pending":      cfg.pendingWait == 250*time.Millisecond,
		"fail":         cfg.failClosed,
		"events":       cfg.eventsAddr == "127.0.0.1:0" && slices.Equal(cfg.eventsAccess.Tokens, []adminapi.Token{adminapi.NewToken("token_file", adminapi.RoleOperator, "tok")}),
		"reconcile":    cfg.reconcile == 90*time.Second && cfg.engineConfig().Reconcile == 90*time.Second,
	}
	for opt, ok := range checks {
		if !ok {
			t.Errorf("%s not applied", opt)
		}
	}

	cfg, err = parseString(t, "cipvalidate {\n api_key_file "+keyFile+"\n action nxdomain\n pending allow\n}")
	if err != nil || cfg.apiKey != "from-file" || cfg.action != ActionNXDomain {
		t.Errorf("api_key_file / action nxdomain: %v", err)
	}
}

// `force` at the end of an allow line accepts entries too broad without
// it; the entries before it are kept, the word itself is not an entry.
func TestParseAllowForce(t *testing.T) {
	cfg, err := parseString(t, "cipvalidate {\n api_key k\n allow 0.0.0.0/0 com force\n allow 45.0.0.0/8 2a0c::/32 example.co.uk\n}")
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, a := range cfg.staticAllow {
		values = append(values, a.Value)
	}
	want := []string{"0.0.0.0/0", "com.", "45.0.0.0/8", "2a0c::/32", "example.co.uk."}
	if !slices.Equal(values, want) || len(cfg.allowNets) != 3 || !slices.Equal(cfg.allowDomains, []string{"com.", "example.co.uk."}) {
		t.Errorf("static allowlist %v, nets %v, domains %v; want %v", values, cfg.allowNets, cfg.allowDomains, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{"", "api_key or api_key_file is required"},
		{`api_key ""`, "api_key: is empty"},
		{"api_key a b", "api_key: takes 1 argument"},
		{"api_key k\napi_key_file /nonexistent/key.json", "api_key_file: api key file"},
		{"api_key k\napi_url ftp://x", "api_url:"},
		{"api_key k\nrate 0", "rate:"},
		{"api_key k\nrate 2 -1", "rate:"},
		{"api_key k\ntimeout soon", `timeout: "soon" is not a positive duration`},
		{"api_key k\nwindow -5m", "window:"},
		{"api_key k\nwindow 20m", "retain 15m0s is shorter than window 20m0s"},
		{"api_key k\nretain 10m per_host 5", `unknown limit "per_host"`},
		{"api_key k\nretain 10m per_client", "syntax is retain"},
		{"api_key k\ntag 10.0.0.0/33", "tag:"},
		{"api_key k\nclient_from ecs 10.0.0.0/33", "client_from: ecs:"},
		{"api_key k\nclient_from 10.0.0.1", "client_from:"},
		{"api_key k\nconnlog /tmp/conn.log zeek alerts", "connlog: alerts: format zeek has no alert records"},
		{"api_key k\nconnlog /tmp/eve.json suricata alerts 0", "connlog: alerts: severity"},
		{"api_key k\nconnlog /tmp/eve.json suricata alarms", `connlog: "alarms" after the format`},
		{"api_key k\nconnlog syslog udp://0.0.0.0:5514 netfilter", "listens beyond loopback: name the senders with allow"},
		{"api_key k\nconnlog syslog tcp://127.0.0.1:5514 netfilter allow nope", `allow: "nope" is not an IP or CIDR`},
		{"api_key k\nconnlog syslog tcp://127.0.0.1:5514 fortigate alerts", "format fortigate has no alert records"},
		{"api_key k\nconnlog syslog file://x netfilter", "want udp://HOST:PORT or tcp://HOST:PORT"},
		{"api_key k\ntag", "tag: takes at least 1"},
		{"api_key k\nafter_hours 25:00-07:00", "after_hours:"},
		{"api_key k\nafter_hours 20:00-07:00 Mars/Olympus", "after_hours:"},
		{"api_key k\nexclude nonsense", "exclude:"},
		{"api_key k\nallow http://x", "allow:"},
		{"api_key k\nfactors geo", `factors: unknown factor "geo"`},
		{"api_key k\nscore_levels awful", `score_levels: unknown score level "awful"`},
		{"api_key k\ncache 0", "cache:"},
		{"api_key k\ncache 10 stale 1h", `unknown outcome "stale"`},
		{"api_key k\nworkers 0", "workers:"},
		{"api_key k\nqueue many", "queue:"},
		{"api_key k\nenforce some", `enforce: "some" is not all or tagged`},
		{"api_key k\naction drop", `action: "drop"`},
		{"api_key k\naction sinkhole nowhere", "sinkhole address"},
		{"api_key k\naction refuse 1.2.3.4", "action: takes 1 argument"},
		{"api_key k\nmode loud", "mode:"},
		{"api_key k\npending wait", "syntax is pending"},
		{"api_key k\npending wait 10s", "longer than 5s"},
		{"api_key k\nfail sometimes", "fail:"},
		{"api_key k\nevents nowhere", "events:"},
		{"api_key k\nevents 127.0.0.1:0 token /x", "events: unknown argument"},
		{"api_key k\nevents 127.0.0.1:0 token_file /nonexistent", "events:"},
		{"api_key k\nwindow 1m\nwindow 2m", "window: given twice"},
		{"api_key k\nbogus", `unknown property "bogus"`},
		{"api_key k\nswarm on", `unknown property "swarm"`},
		{"api_key k\nredis", "syntax is redis URL"},
		{"api_key k\nredis ftp://x", "redis:"},
		{"api_key k\nredis redis://x:6379 prefix", "syntax is redis URL"},
		{"api_key k\nredis redis://x:6379 db 3", `unknown argument "db"`},
		{"api_key k\nblock_ttl", "syntax is block_ttl"},
		{"api_key k\nblock_ttl 1h escalate 0.5 2h", "escalation factor"},
		{"api_key k\nblock_ttl 4h escalate 2 1h", "shorter than the block time"},
		{"api_key k\nblock_ttl 4h grow 2 8h", `unknown argument "grow"`},
		{"api_key k\nhook", "missing kind"},
		{"api_key k\nhook iptables x", `unknown kind "iptables"`},
		{"api_key k\nhook nftables inet t", "syntax is hook nftables"},
		{"api_key k\nhook nftables bridge t s4 s6", "hook:"},
		{"api_key k\nhook nftables inet t s4 s6 fast", `unknown flag "fast"`},
		{"api_key k\nhook exec relative/path {ip}", "hook:"},
		{"api_key k\nhook exec /bin/echo {colour}", "colour"},
		{"api_key k\nhook webhook ftp://x", "hook:"},
		{"api_key k\nhook slack https://hooks.example/T0K3N on expire", `hook: on "expire": block, unblock, allow or notice`},
		{"api_key k\nhook teams url_file /nonexistent", "hook: url_file:"},
		{"api_key k\nreconcile 10ms", `reconcile: "10ms" is shorter than 100ms`},
		{"api_key k\nreconcile 2d", `reconcile: "2d" is not a positive duration up to 1d`},
		{"api_key k\nreconcile", "reconcile: takes 1 argument"},
		{"api_key k\nhook webhook https://soar.example/h secret_file /nonexistent", "hook:"},
		{"api_key k\nstate", "state: takes 1 to 2 arguments"},
		{"api_key k\nstate /tmp/x lenient", `state: unknown argument "lenient" (strict)`},
		{"api_key k\naudit", "audit: takes 1 to 8 arguments, got 0"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := parseString(t, "cipvalidate {\n"+tc.body+"\n}")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse(%q) error = %v, want %q", tc.body, err, tc.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

// TestParseRejectsNumbers: every number is range-checked, so NaN, Inf, zero,
// negatives and absurd sizes are errors that name the option and its line
// rather than a silently disabled limit or a negative block time.
func TestParseRejectsNumbers(t *testing.T) {
	tests := []struct {
		line string
		opt  string // the option the error names
	}{
		{"rate NaN", "rate"},
		{"rate Inf", "rate"},
		{"rate -Inf", "rate"},
		{"rate -1", "rate"},
		{"rate 0", "rate"},
		{"rate 1e-300", "rate"},
		{"rate 1e309", "rate"},
		{"rate 100001", "rate"},
		{"rate 2 0", "rate"},
		{"rate 2 -3", "rate"},
		{"rate 2 100001", "rate"},
		{"rate 2 1.5", "rate"},
		{"workers 1000000", "workers"},
		{"workers 0", "workers"},
		{"workers NaN", "workers"},
		{"queue -5", "queue"},
		{"queue 1000001", "queue"},
		{"queue 1e3", "queue"},
		{"validate_cpu 0", "validate_cpu"},
		{"validate_cpu 1.01", "validate_cpu"},
		{"validate_cpu NaN", "validate_cpu"},
		{"validate_cpu -5%", "validate_cpu"},
		{"validate_cpu 0.0001", "validate_cpu"},
		{"cache NaN", "cache"},
		{"cache 0", "cache"},
		{"cache 10000001", "cache"},
		{"cache 10 suspicious 0s", "cache"},
		{"cache 10 clean -1h", "cache"},
		{"cache 10 error 367d", "cache"},
		{"retain 10m total 0", "retain"},
		{"retain 10m total 100000001", "retain"},
		{"retain 1m per_client 99999999999", "retain"},
		{"retain 10m per_client -1", "retain"},
		{"retain 367d", "retain"},
		{"block_ttl 1h escalate NaN 2h", "block_ttl"},
		{"block_ttl 1h escalate Inf 2h", "block_ttl"},
		{"block_ttl 1h escalate 0.5 2h", "block_ttl"},
		{"block_ttl 1h escalate 101 2h", "block_ttl"},
		{"block_ttl 1h escalate 2 400d", "block_ttl"},
		{"block_ttl 0s", "block_ttl"},
		{"block_ttl 367d", "block_ttl"},
		{"timeout 0s", "timeout"},
		{"timeout -1s", "timeout"},
		{"timeout 6m", "timeout"},
		{"window -5m", "window"},
		{"window 0", "window"},
		{"watch 999999999h", "watch"},
		{"watch 3650d2562047h", "watch"},
		{"watch 1d-5h", "watch"},
		{"watch 367d", "watch"},
		{"pending wait 0s", "pending"},
		{"pending wait NaN", "pending"},
		{"ports not 0", "ports"},
		{"critical_ports 65536", "critical_ports"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			_, err := parseString(t, "cipvalidate {\n api_key k\n "+tc.line+"\n}")
			want := "Testfile:3 - Error during parsing: " + tc.opt + ": "
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("parse(%q) error = %v, want one starting %q", tc.line, err, want)
			}
		})
	}
}

// TestParseAcceptsBounds: the documented bounds are inclusive.
func TestParseAcceptsBounds(t *testing.T) {
	cfg, err := parseString(t, `cipvalidate {
    api_key k
    rate 100000 100000
    timeout 5m
    window 366d
    retain 366d per_client 1000000 total 100000000
    watch 366d
    cache 10000000 suspicious 366d clean 1s error 1ns
    workers 1024
    queue 1000000
    validate_cpu 100%
    block_ttl 1h escalate 100 366d
    reconcile 24h
}`)
	if err != nil {
		t.Fatal(err)
	}
	const year = 366 * 24 * time.Hour
	if cfg.rate != 100000 || cfg.burst != 100000 || cfg.timeout != 5*time.Minute || cfg.retain != year ||
		cfg.perClient != 1000000 || cfg.total != 100000000 || cfg.cacheSize != 10000000 || cfg.ttls.Error != 1 ||
		cfg.workers != 1024 || cfg.queueSize != 1000000 || cfg.blockPolicy.Factor != 100 || cfg.blockPolicy.Max != year ||
		cfg.reconcile != 24*time.Hour || cfg.cpu != 1 {
		t.Errorf("upper bounds: %+v", cfg)
	}
	cfg, err = parseString(t, "cipvalidate {\n api_key k\n rate 0.001\n workers 1\n queue 1\n validate_cpu 0.001\n cache 1\n block_ttl 2h escalate 1 2h\n reconcile 100ms\n}")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rate != 0.001 || cfg.burst != 1 || cfg.workers != 1 || cfg.queueSize != 1 || cfg.cpu != 0.001 || cfg.cacheSize != 1 || cfg.blockPolicy.Factor != 1 ||
		cfg.reconcile != 100*time.Millisecond {
		t.Errorf("lower bounds: %+v", cfg)
	}
}

// TestParseErrorsSayWhatIsValid: a wrong argument list is answered with the
// option's syntax, a number out of range with its range.
func TestParseErrorsSayWhatIsValid(t *testing.T) {
	tests := []struct {
		line string
		want string
	}{
		{"audit a b", `audit: a: unknown argument "b"`},
		{"rate", "rate: takes 1 to 2 arguments, got 0; syntax is rate N [BURST]"},
		{"retain 10m per_client", "retain: per_client has no value; syntax is retain DURATION [per_client N] [total N]"},
		{"retain 10m total 5 total 6", "retain: total given twice; syntax is retain"},
		{"block_ttl 1h escalate 2", "block_ttl: escalate takes 2 values, got 1; syntax is block_ttl DURATION [escalate FACTOR MAX]"},
		{"events 127.0.0.1:0 token /x", `events: unknown argument "token"; syntax is events ADDRESS [tokens PATH] [token_file PATH]`},
		{"pending wait", `pending: cannot read "wait"; syntax is pending allow | wait DURATION`},
		{"ports 22", "ports: takes at least 2 argument(s), got 1; syntax is ports not PORT..."},
		{"ports only 22", `ports: the first argument is "only", not the word not; syntax is ports not PORT...`},
		{"enforce", "enforce: takes 1 argument(s), got 0; syntax is enforce all|tagged"},
		{"fail sometimes", `fail: "sometimes" is not open or closed`},
		{"mode loud", `mode: "loud" is not enforce or monitor`},
		{"rate NaN", `rate: "NaN" is not a number from 0.001 to 100000 requests per second`},
		{"rate 2 0", `rate: burst "0" is not a whole number from 1 to 100000`},
		{"workers 1000000", `workers: "1000000" is not a whole number from 1 to 1024`},
		{"validate_cpu fast", `validate_cpu: "fast" is not a fraction of the CPUs (such as 0.05 or 5%)`},
		{"validate_cpu 150%", `validate_cpu: "150%" is out of range: from 0.001 (0.1%) to 1 (100%) of the CPUs`},
		{"validate_cpu 5% 10%", "validate_cpu: takes 1 argument(s), got 2; syntax is validate_cpu FRACTION|off"},
		{"retain 10m total 0", `retain: total "0" is not a whole number from 1 to 100000000`},
		{"cache 10 clean 0s", `cache: clean "0s" is not a positive duration up to 366d`},
		{"timeout 6m", `timeout: "6m" is not a positive duration up to 5m`},
		{"block_ttl 1h escalate NaN 2h", `block_ttl: escalation factor "NaN" is not a number from 1 to 100`},
		{"block_ttl 1h escalate 2 0s", `block_ttl: escalation maximum "0s" is not a positive duration`},
		{"hook webhook https://soar.example/h secret /x", `hook: webhook: unknown argument "secret"; syntax is hook webhook URL [header NAME VALUE]`},
		{"hook webhook https://soar.example/h secret_file", "hook: webhook: secret_file needs 1 value(s)"},
		{"hook webhook https://soar.example/h on notices", "hook: webhook: on needs block, unblock, allow or notice; syntax is"},
		{"hook webhook https://soar.example/h on block notices", `hook: webhook: unknown argument "notices"; syntax is hook webhook URL [header NAME VALUE]... [header_file NAME PATH]... [template FILE] [secret_file PATH] [on block|unblock|allow|notice...]`},
		{"hook webhook https://soar.example/h template ../../contrib/templates/soar-ticket.tmpl on block notice",
			"hook: webhook template: ../../contrib/templates/soar-ticket.tmpl renders nothing for a notice; leave notice out of on"},
		{"hook slack https://hooks.example/T0K3N on block notices", `hook: on "notices": block, unblock, allow or notice`},
		{"events 127.0.0.1:0 token_file /nonexistent", "events: token file"},
		{"allow 0.0.0.0/0", "allow: too broad an allowlist entry: 0.0.0.0/0 covers more than a /8; end the line with force to allow it anyway"},
		{"allow 2a00::/16", "allow: too broad an allowlist entry: 2a00::/16 covers more than a /32; end the line with force"},
		{"allow partner.example co.uk", "allow: too broad an allowlist entry: co.uk. is a public suffix, so it covers every domain registered under it; end the line with force"},
		{"allow force 45.83.0.22", "allow: too broad an allowlist entry: force. is a public suffix"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			_, err := parseString(t, "cipvalidate {\n api_key k\n "+tc.line+"\n}")
			if err == nil || !strings.Contains(err.Error(), "Testfile:3 - Error during parsing: "+tc.want) {
				t.Fatalf("parse(%q) error = %v, want %q on line 3", tc.line, err, tc.want)
			}
			opt, _, _ := strings.Cut(tc.line, " ")
			if strings.Contains(err.Error(), opt+": "+opt+": ") {
				t.Errorf("error %q names the option twice", err)
			}
		})
	}
}

func TestParseEnforcementOptions(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("https://hooks.example/hmac-key"), 0o600) // a webhook secret and a chat URL
	cfg, err := parseString(t, `cipvalidate {
    api_key k
    block_ttl 2h escalate 3 12h
    hook nftables inet cip blocked4 blocked6 create scoped
    hook nftables ip fw4 cip4 - create
    hook exec /bin/echo {action} {ip} {ttl}
    hook webhook https://soar.example/hook secret_file `+secret+`
    hook slack url_file `+secret+` on block allow scope everyone digest 5m console_url https://cip.example.org
    hook webhook https://ops.example/budget on notice
    state `+dir+`
    allow 45.83.0.22 partner.example
}`)
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.blockPolicy; p.TTL != 2*time.Hour || p.Factor != 3 || p.Max != 12*time.Hour {
		t.Errorf("block_ttl: %+v", p)
	}
	if len(cfg.hooks) != 6 || !cfg.hooks[5].Notifies() || !cfg.hooks[5].WebhookNotify.WantsNotices() || !cfg.hooks[4].Notifies() || cfg.hooks[4].Chat.Digest != 5*time.Minute || !cfg.hooks[0].NFT.Create || !cfg.hooks[0].NFT.Scoped || cfg.hooks[1].NFT.Set6 != "" ||
		cfg.hooks[2].Exec == nil || cfg.hooks[3].Webhook == nil {
		t.Errorf("hooks: %+v", cfg.hooks)
	}
	if cfg.stateDir != dir || cfg.auditPath != filepath.Join(dir, "audit.log") {
		t.Errorf("state %q audit %q", cfg.stateDir, cfg.auditPath)
	}
	if len(cfg.staticAllow) != 2 {
		t.Errorf("static allowlist %+v", cfg.staticAllow)
	}
	cfg, err = parseString(t, "cipvalidate {\n api_key k\n audit stdout\n mode monitor\n}")
	if err != nil || cfg.auditPath != "stdout" || !cfg.blockPolicy.Monitor || cfg.blockPolicy.TTL != 24*time.Hour {
		t.Errorf("audit stdout / monitor: %+v %v", cfg.blockPolicy, err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "0d5m": 5 * time.Minute} {
		if got, err := optval.Duration(in); err != nil || got != want {
			t.Errorf("optval.Duration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "xd", "7dd", "-1d", "9999d", "1d5", "1d-5h", "3650d2562047h"} {
		if _, err := optval.Duration(in); err == nil {
			t.Errorf("optval.Duration(%q) accepted", in)
		}
	}
}

func TestParseZonesAndOnce(t *testing.T) {
	cfg, err := parseString(t, "cipvalidate Example.ORG 10.0.0.0/24 {\n api_key k\n}")
	if err != nil || !slices.Equal(cfg.zones, []string{"example.org.", "0.0.10.in-addr.arpa."}) {
		t.Errorf("zones %v, %v", cfg, err)
	}
	if _, err := parseString(t, "cipvalidate example.org: {\n api_key k\n}"); err == nil || !strings.Contains(err.Error(), "invalid zone") {
		t.Errorf("invalid zone: %v", err)
	}
	if _, err := parseString(t, "cipvalidate {\n api_key k\n}\ncipvalidate {\n api_key k\n}"); err == nil || !strings.Contains(err.Error(), plugin.ErrOnce.Error()) {
		t.Errorf("twice: %v", err)
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	_, err := parseString(t, "cipvalidate {\n  api_key k\n\n  window 5\n}")
	if err == nil || !strings.Contains(err.Error(), "Testfile:4") {
		t.Errorf("error %v does not name line 4", err)
	}
}

func TestSetup(t *testing.T) {
	c := caddy.NewTestController("dns", "cipvalidate example.org {\n api_key k\n}")
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
	plugins := dnsserver.GetConfig(c).Plugin
	if len(plugins) != 1 {
		t.Fatalf("setup added %d plugins, want 1", len(plugins))
	}
	cv, ok := plugins[0](nil).(*CIPValidate)
	if !ok || !slices.Equal(cv.Zones, []string{"example.org."}) {
		t.Fatalf("setup added %+v", plugins[0](nil))
	}
	if err := setup(caddy.NewTestController("dns", "cipvalidate {\n  mode silent\n}")); err == nil || !strings.HasPrefix(err.Error(), "plugin/cipvalidate:") {
		t.Errorf("error %v does not name the plugin", err)
	}
}

// `state DIR strict` refuses to start on an empty or corrupt database.
func TestParseStateStrict(t *testing.T) {
	c := caddy.NewTestController("dns", "cipvalidate {\n api_key k\n state /tmp/cip-state strict\n}")
	cfg, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.stateDir != "/tmp/cip-state" || !cfg.stateStrict || !cfg.engineConfig().StateStrict {
		t.Errorf("state %q strict %v, want /tmp/cip-state, strict", cfg.stateDir, cfg.stateStrict)
	}
}

// TestParseValidateCPUOff: `validate_cpu off` reaches the engine as no
// budget (a negative CPU share), the default as 0 (pace's default).
func TestParseValidateCPUOff(t *testing.T) {
	cfg, err := parseString(t, "cipvalidate {\n api_key k\n validate_cpu off\n}")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.engineConfig().CPU; got >= 0 {
		t.Fatalf("validate_cpu off: engine CPU %v, want < 0 (no budget)", got)
	}
}
