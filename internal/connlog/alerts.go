package connlog

import (
	"fmt"
	"strconv"
	"strings"
)

// AllSeverities is the severity bound of a bare `alerts`: every alert.
const AllSeverities = 255

// ParseAlerts reads what follows PATH FORMAT on a `connlog` line: nothing
// (alerts off, 0) or `alerts [SEVERITY]`, which makes an IDS alert record
// tag its internal endpoint, for alerts of SEVERITY or more severe
// (Suricata counts 1 as the most severe; bare `alerts` takes every one).
// Off is the default because an IDS is noisy and every tag costs API
// calls. Only formats with alert records (suricata) take it.
func ParseAlerts(f Format, args []string) (int, error) {
	if len(args) == 0 {
		return 0, nil
	}
	if !strings.EqualFold(args[0], "alerts") {
		return 0, fmt.Errorf("connlog: %q after the format: want alerts [SEVERITY]", args[0])
	}
	if f != Suricata {
		return 0, fmt.Errorf("connlog: alerts: format %s has no alert records (only %s does)", f, Suricata)
	}
	switch len(args) {
	case 1:
		return AllSeverities, nil
	case 2:
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 || n > AllSeverities {
			return 0, fmt.Errorf("connlog: alerts: severity %q is not a number from 1 (only the most severe) to %d", args[1], AllSeverities)
		}
		return n, nil
	}
	return 0, fmt.Errorf("connlog: alerts: %d arguments, want alerts [SEVERITY]", len(args)-1)
}

// Acts reports whether an alert of this severity passes a bound from
// ParseAlerts. A missing severity (0) counts as 3, Suricata's default for
// a rule without a classtype or priority.
func (a Alert) Acts(maxSeverity int) bool {
	if !a.IsAlert() || maxSeverity <= 0 {
		return false
	}
	sev := a.Severity
	if sev <= 0 {
		sev = 3
	}
	return sev <= maxSeverity
}
