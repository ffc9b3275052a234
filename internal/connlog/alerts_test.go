package connlog

import (
	"strings"
	"testing"
)

// `connlog PATH FORMAT [alerts [SEVERITY]]`: off without it, every
// severity bare, a bound with a number; only suricata has alerts.
func TestParseAlerts(t *testing.T) {
	for _, tc := range []struct {
		f    Format
		args string
		want int
		err  string
	}{
		{Suricata, "", 0, ""},
		{Suricata, "alerts", AllSeverities, ""},
		{Suricata, "ALERTS 2", 2, ""},
		{Suricata, "alerts 0", 0, "severity"},
		{Suricata, "alerts high", 0, "severity"},
		{Suricata, "alerts 1 2", 0, "arguments"},
		{Suricata, "alarms", 0, "want alerts"},
		{Zeek, "alerts", 0, "no alert records"},
	} {
		got, err := ParseAlerts(tc.f, strings.Fields(tc.args))
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %q: %d, %v; want %d, error with %q", tc.f, tc.args, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "connlog: ") {
			t.Errorf("error %q does not name the option", err)
		}
	}
	a := Alert{Signature: "x", Severity: 2}
	if !a.Acts(2) || a.Acts(1) || a.Acts(0) || (Alert{}).Acts(AllSeverities) || !(Alert{SignatureID: 1}).Acts(3) || (Alert{SignatureID: 1}).Acts(2) {
		t.Error("Acts: want severity at most the bound, a missing one as 3, off at 0, and never for a non-alert")
	}
}
