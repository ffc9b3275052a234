package textsafe

import "testing"

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Zoë — SOC", "Zoë — SOC"},
		{"alice\n[INFO] plugin/cipvalidate: unblock forged", `alice\n[INFO] plugin/cipvalidate: unblock forged`},
		{"a\r\tb", `a\r\tb`},
		{"esc\x1b[31mred", `esc\x1b[31mred`},
		{"admin\u202egnp.exe", `admin\u202egnp.exe`},
		{"iso\u2066late\u2069", `iso\u2066late\u2069`},
		{"line\u2028sep", `line\u2028sep`},
		{"c1\u0085next", `c1\u0085next`},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"", ""},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if Safe(tc.in) != (tc.in == tc.want) {
			t.Errorf("Safe(%q) = %v", tc.in, Safe(tc.in))
		}
		if !Safe(Clean(tc.in)) {
			t.Errorf("Clean(%q) = %q is not Safe", tc.in, Clean(tc.in))
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("alice\n\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if !Safe(c) {
			t.Fatalf("Clean(%q) = %q is not Safe", s, c)
		}
		if Safe(s) && c != s {
			t.Fatalf("Clean changed safe %q to %q", s, c)
		}
	})
}
