package audit

import (
	"fmt"
	"slices"
)

// Spec is where audit entries go: at most one file (or standard output)
// and any number of syslog destinations, each in its own format.
type Spec struct {
	Path   string // a file, "stdout", or "" for none
	Format Format // the file's format; json when empty
	Syslog []SyslogSpec
}

// Empty reports whether s sends entries nowhere.
func (s Spec) Empty() bool { return s.Path == "" && len(s.Syslog) == 0 }

// Equal reports whether s and o send the same entries to the same places.
func (s Spec) Equal(o Spec) bool {
	return s.Path == o.Path && s.format() == o.format() && slices.Equal(s.Syslog, o.Syslog)
}

func (s Spec) format() Format {
	if s.Format == "" {
		return FormatJSON
	}
	return s.Format
}

// ParseOption parses one audit line's arguments into s:
//
//	PATH|stdout [format json|ecs|cef]
//	syslog udp://HOST:PORT|tcp://HOST:PORT|tls://HOST:PORT [format json|ecs|cef] [ca FILE] [app NAME]
//
// The line may be repeated: one file (or stdout), plus syslog destinations.
func ParseOption(args []string, s *Spec) error {
	if len(args) == 0 {
		return fmt.Errorf("want PATH|stdout or syslog URL")
	}
	if args[0] == "syslog" {
		return parseSyslog(args[1:], s)
	}
	if s.Path != "" {
		return fmt.Errorf("%s: a second file; give one file or stdout, plus any syslog destinations", args[0])
	}
	opts, err := pairs(args[0], args[1:], "format")
	if err != nil {
		return err
	}
	if v, ok := opts["format"]; ok {
		if s.Format, err = ParseFormat(v); err != nil {
			return err
		}
	}
	s.Path = args[0]
	return nil
}

func parseSyslog(args []string, s *Spec) error {
	if len(args) == 0 {
		return fmt.Errorf("syslog: want udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
	}
	d := SyslogSpec{URL: args[0], Format: FormatJSON}
	network, _, err := parseSyslogURL(d.URL)
	if err != nil {
		return err
	}
	opts, err := pairs("syslog "+d.URL, args[1:], "format", "ca", "app")
	if err != nil {
		return err
	}
	if v, ok := opts["format"]; ok {
		if d.Format, err = ParseFormat(v); err != nil {
			return err
		}
	}
	if v, ok := opts["ca"]; ok {
		if network != "tls" {
			return fmt.Errorf("syslog %s: ca is for tls:// only", d.URL)
		}
		d.CA = v
	}
	if v, ok := opts["app"]; ok {
		if !validAppName(v) {
			return fmt.Errorf("syslog %s: app %q: want 1 to 48 printable ASCII characters", d.URL, v)
		}
		d.App = v
	}
	if slices.ContainsFunc(s.Syslog, func(o SyslogSpec) bool { return o.URL == d.URL }) {
		return fmt.Errorf("syslog %s: given twice", d.URL)
	}
	s.Syslog = append(s.Syslog, d)
	return nil
}

// pairs reads "KEY VALUE" pairs with the given keys, each at most once.
func pairs(what string, args []string, keys ...string) (map[string]string, error) {
	out := map[string]string{}
	for i := 0; i < len(args); i += 2 {
		k := args[i]
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("%s: unknown argument %q", what, k)
		}
		if i+1 >= len(args) {
			return nil, fmt.Errorf("%s: %s needs a value", what, k)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: %s given twice", what, k)
		}
		out[k] = args[i+1]
	}
	return out, nil
}

// validAppName is RFC 5424's APP-NAME: 1*48PRINTUSASCII.
func validAppName(s string) bool {
	if len(s) == 0 || len(s) > 48 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
