package cipvalidate

import (
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		keys      []string // server block keys
		wantZones []string
		wantErr   string // substring of the error; empty means no error
	}{
		{"server block zones", "cipvalidate", []string{"example.org:53"}, []string{"example.org."}, ""},
		{"root zone", "cipvalidate", []string{".:1053"}, []string{"."}, ""},
		{"several server block zones", "cipvalidate", []string{"example.org", "example.net"}, []string{"example.org.", "example.net."}, ""},
		{"zones as arguments", "cipvalidate Example.ORG example.net.", []string{"."}, []string{"example.org.", "example.net."}, ""},
		{"reverse zone", "cipvalidate 10.0.0.0/24", nil, []string{"0.0.10.in-addr.arpa."}, ""},
		{"reverse zone off an octet boundary", "cipvalidate 10.0.0.0/23", nil, []string{"0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."}, ""},
		{"empty block", "cipvalidate {\n}", []string{"."}, []string{"."}, ""},
		{"invalid zone", "cipvalidate example.org:", nil, nil, `invalid zone "example.org:"`},
		{"option not supported yet", "cipvalidate {\n api_key secret\n}", nil, nil, `unknown property "api_key"`},
		{"unknown option", "cipvalidate example.org {\n  bogus\n}", nil, nil, `unknown property "bogus"`},
		{"used twice", "cipvalidate\ncipvalidate", nil, nil, plugin.ErrOnce.Error()},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			c.ServerBlockKeys = tc.keys
			cv, err := parse(c)

			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("parse(%q): want error containing %q, got none", tc.input, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse(%q): want error containing %q, got %q", tc.input, tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): unexpected error: %v", tc.input, err)
			}
			if !slices.Equal(cv.Zones, tc.wantZones) {
				t.Errorf("parse(%q): zones %q, want %q", tc.input, cv.Zones, tc.wantZones)
			}
		})
	}
}

func TestParseErrorNamesTheLine(t *testing.T) {
	c := caddy.NewTestController("dns", "cipvalidate {\n\n  window 5m\n}")
	_, err := parse(c)
	if err == nil {
		t.Fatal("want an error for an unknown property")
	}
	if !strings.Contains(err.Error(), "Testfile:3") {
		t.Errorf("error %q does not name the line (Testfile:3)", err)
	}
}

func TestSetup(t *testing.T) {
	c := caddy.NewTestController("dns", "cipvalidate example.org")
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
	plugins := dnsserver.GetConfig(c).Plugin
	if len(plugins) != 1 {
		t.Fatalf("setup added %d plugins, want 1", len(plugins))
	}
	h := plugins[0](nil)
	cv, ok := h.(*CIPValidate)
	if !ok {
		t.Fatalf("setup added a %T, want *CIPValidate", h)
	}
	if !slices.Equal(cv.Zones, []string{"example.org."}) {
		t.Errorf("zones %q, want [example.org.]", cv.Zones)
	}
}

func TestSetupErrorNamesThePlugin(t *testing.T) {
	c := caddy.NewTestController("dns", "cipvalidate {\n  mode monitor\n}")
	err := setup(c)
	if err == nil {
		t.Fatal("want an error for an unknown property")
	}
	if !strings.HasPrefix(err.Error(), "plugin/cipvalidate:") {
		t.Errorf("error %q does not name the plugin", err)
	}
}
