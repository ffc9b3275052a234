package logfmt

import (
	"bytes"
	"encoding/json"
	"fmt"
	golog "log"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
)

var plog = clog.NewWithPlugin("cipvalidate")

// hostile is text from the network at its worst: quotes, a newline that
// would forge a second line, control characters, a backslash, non-UTF-8.
const hostile = "evil\"}\n{\"level\":\"FATAL\"}\x00\x1b[31m\\\xff"

// capture sends the process's logs in format to a buffer until the test ends.
func capture(t *testing.T, format string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	if err := clog.Configure(format, &b); err != nil {
		t.Fatal(err)
	}
	flags := golog.Flags()
	if format == "text" {
		golog.SetFlags(0) // no timestamp: the line is compared byte for byte
	}
	t.Cleanup(func() {
		if err := clog.Configure("text", os.Stderr); err != nil {
			t.Error(err)
		}
		golog.SetFlags(flags)
	})
	return &b
}

// objects parses out as one JSON object per line.
func objects(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("line %q is not a JSON object: %v\nall output:\n%s", line, err, out)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(o["time"])); err != nil {
			t.Errorf("line %q: time is not RFC 3339: %v", line, err)
		}
		objs = append(objs, o)
	}
	return objs
}

var (
	first = Decision{Decision: "cip-0123456789ab", Client: "192.0.2.7", Qname: "bad.example.org.", Qtype: "A",
		IP: "45.83.0.21", Action: "nxdomain", Via: "verdict", Scope: "ip", Reasons: []string{"SCORE: inbound Critical", "tag " + hostile}}
	repeat = Decision{Decision: "cip-0123456789ab", Client: "192.0.2.7", Qname: "bad.example.org.", Qtype: "AAAA",
		IP: "2001:db8::1", Action: "monitor", Via: "answer", Repeated: 41, Since: time.Date(2026, 3, 1, 10, 4, 5, 600, time.FixedZone("X", 3600))}
)

// In text mode the decision lines are those the plugin wrote before json
// mode existed (its format strings are the oracle), reasons quoted.
func TestDecisionTextUnchanged(t *testing.T) {
	out := capture(t, "text")
	first.Log(plog, "cipvalidate")
	repeat.Log(plog, "cipvalidate")
	want := fmt.Sprintf("[INFO] plugin/cipvalidate: decision %s client=%s qname=%s qtype=%s ip=%s action=%s via=%s scope=%s reasons=%q\n",
		first.Decision, first.Client, first.Qname, first.Qtype, first.IP, first.Action, first.Via, first.Scope, strings.Join(first.Reasons, "; ")) +
		fmt.Sprintf("[INFO] plugin/cipvalidate: decision %s client=%s qname=%s qtype=%s ip=%s action=%s via=%s repeated=%d since=%s\n",
			repeat.Decision, repeat.Client, repeat.Qname, repeat.Qtype, repeat.IP, repeat.Action, repeat.Via, repeat.Repeated, "2026-03-01T09:04:05Z")
	if out.String() != want {
		t.Errorf("text lines\n%q\nwant\n%q", out, want)
	}
}

// In json mode a decision line's fields are members, typed: the reasons an
// array, repeated a number; hostile text survives the round trip intact.
func TestDecisionJSON(t *testing.T) {
	out := capture(t, "json")
	first.Log(plog, "cipvalidate")
	repeat.Log(plog, "cipvalidate")
	Decision{Decision: "d", Client: "c"}.Log(plog, "cipvalidate")
	objs := objects(t, out.String())
	if len(objs) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(objs), out)
	}
	common := map[string]any{"level": "INFO", "plugin": "cipvalidate", "msg": "decision", "decision": "cip-0123456789ab",
		"client": "192.0.2.7", "qname": "bad.example.org."}
	wantFirst := map[string]any{"qtype": "A", "ip": "45.83.0.21", "action": "nxdomain", "via": "verdict", "scope": "ip",
		"reasons": []any{"SCORE: inbound Critical", strings.ToValidUTF8("tag "+hostile, "\uFFFD")}}
	wantRepeat := map[string]any{"qtype": "AAAA", "ip": "2001:db8::1", "action": "monitor", "via": "answer",
		"repeated": float64(41), "since": "2026-03-01T09:04:05Z"}
	for i, want := range []map[string]any{wantFirst, wantRepeat} {
		for k, v := range common {
			want[k] = v
		}
		got := objs[i]
		delete(got, "time")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got, want)
		}
	}
	if r, ok := objs[2]["reasons"].([]any); !ok || len(r) != 0 {
		t.Errorf("no reasons: %v, want []", objs[2]["reasons"])
	}
}

// Every line of json mode is an object with a level, the plugin when a
// plugin's logger wrote it, and the text verbatim in msg, whatever wrote it:
// plugins at each level, clog without a plugin, the standard logger (which
// plugins and libraries use directly), multi-line text, hostile text.
func TestJSONEveryLine(t *testing.T) {
	out := capture(t, "json")
	clog.D.Set()
	t.Cleanup(clog.D.Clear)
	plog.Infof("started %d", 1)
	plog.Warningf("warn %s", hostile)
	clog.NewWithPlugin("forward").Errorf("upstream %q", "x")
	plog.Debug("debug")
	clog.Info("no plugin")
	golog.Printf("[INFO] plugin/fake: a std log line\nsecond line")
	Info(plog, "cipvalidate", "fields", "unused in json", slog.String("name", hostile), slog.Int("n", 3))

	type line struct{ level, plugin, msg string }
	want := []line{
		{"INFO", "cipvalidate", "started 1"},
		{"WARN", "cipvalidate", "warn " + strings.ToValidUTF8(hostile, "\uFFFD")},
		{"ERROR", "forward", `upstream "x"`},
		{"DEBUG", "cipvalidate", "debug"},
		{"INFO", "", "no plugin"},
		{"INFO", "", "[INFO] plugin/fake: a std log line\nsecond line"},
		{"INFO", "cipvalidate", "fields"},
	}
	objs := objects(t, out.String())
	if len(objs) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(objs), len(want), out)
	}
	for i, w := range want {
		o := objs[i]
		plugin, _ := o["plugin"].(string)
		if got := (line{fmt.Sprint(o["level"]), plugin, fmt.Sprint(o["msg"])}); got != w {
			t.Errorf("line %d: %+v, want %+v", i, got, w)
		}
	}
	if last := objs[len(objs)-1]; last["name"] != strings.ToValidUTF8(hostile, "\uFFFD") || last["n"] != float64(3) {
		t.Errorf("Info's fields: %v", last)
	}
}

// Lines written at once from many goroutines, through a plugin's logger and
// the standard one, come out whole: one object per line, none lost.
func TestJSONConcurrentLinesWhole(t *testing.T) {
	out := capture(t, "json")
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%2 == 0 {
					first.Log(plog, "cipvalidate")
				} else {
					golog.Printf("writer %d line %d %s", w, i, hostile)
				}
			}
		}()
	}
	wg.Wait()
	if objs := objects(t, out.String()); len(objs) != writers*each {
		t.Errorf("%d lines, want %d", len(objs), writers*each)
	}
}
