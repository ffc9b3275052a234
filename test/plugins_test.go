package test

import (
	"slices"
	"strings"
	"testing"
)

func TestPluginsList(t *testing.T) {
	stdout, stderr, code := run(t, "-plugins")
	if code != 0 {
		t.Fatalf("coredns-cip -plugins: exit %d, stderr:\n%s", code, stderr)
	}
	// One directive a line, without the "dns." prefix caddy keeps internally.
	plugins := strings.Fields(stdout)

	for _, want := range []string{"cipvalidate", "cache", "forward", "file", "acl", "rewrite", "prometheus", "ready", "health"} {
		if !slices.Contains(plugins, want) {
			t.Errorf("-plugins does not list %q:\n%s", want, stdout)
		}
	}
	// The cloud and orchestrator plugins (and their SDKs) are left out.
	for _, unwanted := range []string{"kubernetes", "k8s_external", "route53", "azure", "clouddns", "etcd", "nomad"} {
		if slices.Contains(plugins, unwanted) {
			t.Errorf("-plugins lists %q, which this build leaves out", unwanted)
		}
	}
}

// TestTopLevelHelp: "help", -h and --help list every sub-command and the
// server's flags, and exit 0 ("help" used to reach CoreDNS, which refused it
// as an extra argument).
func TestTopLevelHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			stdout, stderr, code := run(t, arg)
			if code != 0 {
				t.Errorf("coredns-cip %s: exit %d, want 0; stderr:\n%s", arg, code, stderr)
			}
			help := stdout + stderr
			for _, want := range []string{"coredns-cip check", "coredns-cip fakeapi", "coredns-cip blocks", "coredns-cip backtrack", "coredns-cip help", "-conf", "-plugins"} {
				if !strings.Contains(help, want) {
					t.Errorf("coredns-cip %s does not mention %q:\n%s", arg, want, help)
				}
			}
			if arg == "help" && stdout == "" {
				t.Errorf("coredns-cip help printed nothing on stdout; stderr:\n%s", stderr)
			}
		})
	}
}

// TestHelpCommand: "help COMMAND" prints that sub-command's usage on stdout;
// an unknown one is an error that lists the commands.
func TestHelpCommand(t *testing.T) {
	stdout, stderr, code := run(t, "help", "backtrack")
	if code != 0 || !strings.HasPrefix(stdout, "Usage: coredns-cip backtrack") || !strings.Contains(stdout, "-corefile") {
		t.Errorf("coredns-cip help backtrack: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	_, stderr, code = run(t, "help", "nope")
	if code != 2 || !strings.Contains(stderr, `no command "nope"`) || !strings.Contains(stderr, "check, fakeapi, decisions, events, allow, clients, blocks, backtrack, token") {
		t.Errorf("coredns-cip help nope: exit %d, stderr %q; want 2 and the commands", code, stderr)
	}
}

func TestUnknownFlag(t *testing.T) {
	_, stderr, code := run(t, "-no-such-flag")
	if code != 2 {
		t.Errorf("coredns-cip -no-such-flag: exit %d, want 2", code)
	}
	if !strings.Contains(stderr, "coredns-cip check") {
		t.Errorf("an unknown flag does not print the usage:\n%s", stderr)
	}
}
