package cipvalidate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
)

func TestInsertBefore(t *testing.T) {
	tests := []struct {
		name    string
		dirs    []string
		insert  string
		before  string
		want    []string
		wantErr string
	}{
		{"in the middle", []string{"log", "acl", "cache", "file"}, "cipvalidate", "cache", []string{"log", "acl", "cipvalidate", "cache", "file"}, ""},
		{"at the front", []string{"cache", "file"}, "cipvalidate", "cache", []string{"cipvalidate", "cache", "file"}, ""},
		{"already in place", []string{"acl", "cipvalidate", "cache"}, "cipvalidate", "cache", []string{"acl", "cipvalidate", "cache"}, ""},
		{"moved from elsewhere", []string{"cipvalidate", "acl", "cache", "file"}, "cipvalidate", "cache", []string{"acl", "cipvalidate", "cache", "file"}, ""},
		{"moved from after", []string{"acl", "cache", "file", "cipvalidate"}, "cipvalidate", "cache", []string{"acl", "cipvalidate", "cache", "file"}, ""},
		{"duplicates collapse", []string{"cipvalidate", "cache", "cipvalidate"}, "cipvalidate", "cache", []string{"cipvalidate", "cache"}, ""},
		{"anchor missing", []string{"log", "file"}, "cipvalidate", "cache", nil, `"cache" not found`},
		{"empty list", nil, "cipvalidate", "cache", nil, `"cache" not found`},
		{"empty name", []string{"cache"}, "", "cache", nil, "must not be empty"},
		{"before itself", []string{"cache"}, "cache", "cache", nil, "before itself"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.dirs)
			got, err := InsertBefore(tc.dirs, tc.insert, tc.before)

			if !slices.Equal(tc.dirs, orig) {
				t.Errorf("input modified: %q, was %q", tc.dirs, orig)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRegisterDirective(t *testing.T) {
	RegisterDirective()
	RegisterDirective()

	dirs := dnsserver.Directives
	if n := countOf(dirs, "cipvalidate"); n != 1 {
		t.Fatalf("cipvalidate is %d times in dnsserver.Directives, want once", n)
	}
	i := slices.Index(dirs, "cipvalidate")
	if i+1 >= len(dirs) || dirs[i+1] != "cache" {
		t.Errorf("cipvalidate is not right before cache: %q", dirs)
	}
	// The standard plugins keep their relative order.
	without := slices.DeleteFunc(slices.Clone(dirs), func(d string) bool { return d == "cipvalidate" })
	if countOf(without, "cache") != 1 || slices.Index(without, "acl") > slices.Index(without, "cache") {
		t.Errorf("standard directive order changed: %q", dirs)
	}
}

func TestRegisterDirectivePanicsWithoutCache(t *testing.T) {
	saved := dnsserver.Directives
	t.Cleanup(func() { dnsserver.Directives = saved })
	dnsserver.Directives = []string{"log", "forward"}

	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, `"cache"`) || !strings.Contains(msg, "cipvalidate") {
			t.Errorf("panic %q does not say cipvalidate needs cache", msg)
		}
	}()
	RegisterDirective()
}

func countOf(dirs []string, name string) int {
	n := 0
	for _, d := range dirs {
		if d == name {
			n++
		}
	}
	return n
}
