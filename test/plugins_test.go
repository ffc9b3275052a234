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

func TestTopLevelHelp(t *testing.T) {
	for _, flag := range []string{"-h", "--help"} {
		t.Run(flag, func(t *testing.T) {
			stdout, stderr, code := run(t, flag)
			if code != 0 {
				t.Errorf("coredns-cip %s: exit %d, want 0", flag, code)
			}
			help := stdout + stderr
			for _, want := range []string{"coredns-cip check", "coredns-cip fakeapi", "-conf", "-plugins"} {
				if !strings.Contains(help, want) {
					t.Errorf("coredns-cip %s does not mention %q:\n%s", flag, want, help)
				}
			}
		})
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
