package fleet

import "time"

// ParseURL checks a Redis URL as Open would, without connecting, so a
// Corefile with a bad one fails at parse time. It returns the URL with its
// password redacted, for messages.
func ParseURL(raw string) (string, error) {
	c, err := newClient(raw, time.Second)
	if err != nil {
		return "", err
	}
	c.Close()
	return redact(raw), nil
}
