package fleet

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// newClient builds the go-redis client that Config.URL names. The forms
// accepted are listed on Config.URL. Errors name the URL redacted, and never
// quote the parser's own message when the URL has credentials in it, because
// net/url quotes the part it choked on, which can be the password.
//
// Whatever the URL's query says, the timeouts are timeout and commands are
// not retried: a failure is reported at once and the Fleet's probe decides
// when to try again.
func newClient(raw string, timeout time.Duration) (redis.UniversalClient, error) {
	if raw == "" {
		return nil, errors.New("fleet: no URL")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("fleet: URL %s: no scheme, want redis://, rediss://, unix:// or redis-sentinel://", redact(raw))
	}
	userinfo, hosts, tail := splitAuthority(rest)
	switch {
	case scheme == "unix" || (scheme == "redis" || scheme == "rediss") && len(hosts) < 2:
		opt, err := parse(raw, redis.ParseURL)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
		opt.MaxRetries, opt.DialerRetries, opt.ContextTimeoutEnabled = -1, 1, true
		opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return redis.NewClient(opt), nil
	case scheme == "redis" || scheme == "rediss":
		opt, err := clusterOptions(raw, scheme, userinfo, hosts, tail)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
		opt.MaxRetries, opt.DialerRetries, opt.ContextTimeoutEnabled = -1, 1, true
		opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return redis.NewClusterClient(opt), nil
	case scheme == "redis-sentinel":
		opt, err := failoverOptions(raw, userinfo, hosts, tail)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
		opt.MaxRetries, opt.DialerRetries, opt.ContextTimeoutEnabled = -1, 1, true
		return redis.NewFailoverClient(opt), nil
	}
	return nil, fmt.Errorf("fleet: URL %s: unknown scheme %q, want redis://, rediss://, unix:// or redis-sentinel://", redact(raw), scheme)
}

// clusterOptions serves redis://h1:6379,h2:6379: the hosts are the seed
// nodes of a Redis Cluster, which has only database 0.
func clusterOptions(raw, scheme, userinfo string, hosts []string, tail string) (*redis.ClusterOptions, error) {
	addrs, err := hostPorts(raw, hosts, "6379")
	if err != nil {
		return nil, err
	}
	u, err := oneHost(raw, scheme, userinfo, addrs[0], tail)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("fleet: URL %s: a Redis Cluster has only database 0, not %q", redact(raw), p)
	}
	u.Path = ""
	q := u.Query()
	for _, addr := range addrs[1:] {
		q.Add("addr", addr)
	}
	u.RawQuery = q.Encode()
	opt, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("fleet: URL %s: %w", redact(raw), err)
	}
	return opt, nil
}

// failoverOptions serves redis-sentinel://[user:pass@]h1:26379,h2:26379/MASTER.
// The userinfo is the master's credentials, as in redis://; the
// sentinels' own, if they require any, are the sentinel_username and
// sentinel_password query parameters.
func failoverOptions(raw, userinfo string, hosts []string, tail string) (*redis.FailoverOptions, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("fleet: URL %s: no sentinel address", redact(raw))
	}
	addrs, err := hostPorts(raw, hosts, "26379")
	if err != nil {
		return nil, err
	}
	u, err := oneHost(raw, "redis", "", addrs[0], tail)
	if err != nil {
		return nil, err
	}
	master := strings.Trim(u.Path, "/")
	if master == "" || strings.Contains(master, "/") {
		return nil, fmt.Errorf("fleet: URL %s: the path must be the master name, as in redis-sentinel://h1:26379,h2:26379/mymaster", redact(raw))
	}
	u.Path = ""
	q := u.Query()
	for _, name := range []string{"master_name", "username", "password", "addr"} {
		if q.Has(name) {
			return nil, fmt.Errorf("fleet: URL %s: option %s is not accepted here: the master name is the path, its credentials the userinfo, the sentinels the host list", redact(raw), name)
		}
	}
	q.Set("master_name", master)
	for _, addr := range addrs[1:] {
		q.Add("addr", addr)
	}
	if userinfo != "" {
		ui, err := url.Parse("redis://" + userinfo + "@h")
		if err != nil {
			return nil, fmt.Errorf("fleet: URL %s: the userinfo is not valid (percent-encode special characters in the password)", redact(raw))
		}
		q.Set("username", ui.User.Username())
		if p, ok := ui.User.Password(); ok {
			q.Set("password", p)
		}
	}
	if q.Has("sentinel_username") || q.Has("sentinel_password") {
		u.User = url.UserPassword(q.Get("sentinel_username"), q.Get("sentinel_password"))
		q.Del("sentinel_username")
		q.Del("sentinel_password")
	}
	u.RawQuery = q.Encode()
	opt, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("fleet: URL %s: %w", redact(raw), err)
	}
	return opt, nil
}

// oneHost parses the URL rebuilt around one of its hosts.
func oneHost(raw, scheme, userinfo, host, tail string) (*url.URL, error) {
	s := scheme + "://"
	if userinfo != "" {
		s += userinfo + "@"
	}
	u, err := url.Parse(s + host + tail)
	if err != nil {
		return nil, invalid(raw, err)
	}
	return u, nil
}

// parse runs one of go-redis's URL parsers, after net/url has accepted the
// URL, so that its errors cannot quote the userinfo.
func parse[T any](raw string, parser func(string) (T, error)) (T, error) {
	if _, err := url.Parse(raw); err != nil {
		var zero T
		return zero, invalid(raw, err)
	}
	opt, err := parser(raw)
	if err != nil {
		return opt, fmt.Errorf("fleet: URL %s: %w", redact(raw), err)
	}
	return opt, nil
}

// invalid reports a URL net/url rejected. Its message quotes the offending
// part, which for a password with an unescaped '/' or '@' is the password,
// so it is shown only for URLs without userinfo.
func invalid(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && !strings.Contains(raw, "@") {
		return fmt.Errorf("fleet: URL %s: %w", redact(raw), ue.Err)
	}
	return fmt.Errorf("fleet: URL %s is not a valid URL (percent-encode special characters in the password)", redact(raw))
}

// splitAuthority splits what follows "scheme://" into the userinfo, the
// comma-separated hosts and the rest (path and query). The userinfo ends
// at the last '@' before the path, so that an unescaped '@' in a password
// stays in it.
func splitAuthority(rest string) (userinfo string, hosts []string, tail string) {
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, authority = authority[:at], authority[at+1:]
	}
	if authority != "" {
		hosts = strings.Split(authority, ",")
	}
	return userinfo, hosts, tail
}

// hostPorts checks the entries of a host list and adds the default port
// to those without one.
func hostPorts(raw string, hosts []string, port string) ([]string, error) {
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		host, p, err := net.SplitHostPort(h)
		if err != nil {
			host, p = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), port
		}
		if host == "" || p == "" || strings.ContainsAny(host, "[]") {
			return nil, fmt.Errorf("fleet: URL %s: host %q in the host list: want host or host:port", redact(raw), h)
		}
		addrs[i] = net.JoinHostPort(host, p)
	}
	return addrs, nil
}

var secretRE = regexp.MustCompile(`(?i)([?&](?:sentinel_)?password=)[^&#]*`)

// redact returns the URL with its userinfo and password parameters
// replaced by "xxxxx". It works on the text, so it also redacts URLs that
// do not parse; it may redact more than the secret, never less.
func redact(raw string) string {
	s := raw
	if i := strings.Index(s, "://"); i >= 0 {
		if at := strings.LastIndex(s, "@"); at > i {
			s = s[:i+3] + "xxxxx" + s[at:]
		}
	}
	return secretRE.ReplaceAllString(s, "${1}xxxxx")
}
