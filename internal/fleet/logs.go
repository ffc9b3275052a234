package fleet

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

var routeLogs sync.Once

// RouteLogs sends go-redis's own log lines (a "failed to dial" every second
// while Redis is down) to logf instead of stderr. It changes go-redis's
// process-wide logger, once; the plugin calls it with its debug log.
func RouteLogs(logf func(format string, args ...any)) {
	routeLogs.Do(func() { redis.SetLogger(logger(logf)) })
}

type logger func(format string, args ...any)

func (l logger) Printf(_ context.Context, format string, args ...any) { l(format, args...) }
