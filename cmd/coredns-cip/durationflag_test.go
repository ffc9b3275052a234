package main

import (
	"flag"
	"io"
	"testing"
	"time"
)

// Duration flags count days as --until and the Corefile do (--watch 7d),
// keep their default, and refuse what is no duration.
func TestDurationFlagCountsDays(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
		ok   bool
	}{
		{nil, 5 * time.Minute, true},
		{[]string{"--watch", "7d"}, 7 * 24 * time.Hour, true},
		{[]string{"--watch", "1d12h"}, 36 * time.Hour, true},
		{[]string{"--watch", "90s"}, 90 * time.Second, true},
		{[]string{"--watch", "7days"}, 0, false},
	} {
		fs := flag.NewFlagSet("backtrack", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		watch := durationFlag(fs, "watch", 5*time.Minute, "how long")
		err := fs.Parse(tc.args)
		if (err == nil) != tc.ok || (tc.ok && *watch != tc.want) {
			t.Errorf("%q: %v, err %v; want %v, ok %v", tc.args, *watch, err, tc.want, tc.ok)
		}
	}
}
