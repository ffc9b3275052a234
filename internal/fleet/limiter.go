package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limiter is a rate limit shared by the whole fleet: all the nodes that
// make a Limiter of the same name share its rate and burst.
//
// It is the generic cell rate algorithm, as in go-redis/redis_rate: Redis
// keeps one number per limiter, the theoretical arrival time (TAT) of the
// next request, and a script advances it atomically, by one emission
// interval (1/rate) per request, refusing those that would put it more
// than burst intervals ahead of now, with the time to wait.
//
// While Redis is down (or fails), Wait uses the fallback limiter instead. The caller
// sizes it as this node's share of the fleet's limit, rate/n where n is
// the last Nodes count seen, so that the fleet as a whole stays near its
// limit while every node runs on its own.
type Limiter struct {
	f        *Fleet
	key      string
	interval int64 // µs between requests
	burst    int
	fallback *rate.Limiter
}

// NewLimiter returns the fleet-wide limiter name, allowing perSecond
// requests a second with bursts of burst (at least 1). fallback, which may
// be nil, is used while Redis is down (see Limiter).
func (f *Fleet) NewLimiter(name string, perSecond float64, burst int, fallback *rate.Limiter) *Limiter {
	interval := int64(math.MaxInt64)
	if perSecond > 0 {
		interval = int64(math.Ceil(1e6 / perSecond))
	}
	return &Limiter{f: f, key: f.prefix + "rate:" + name, interval: interval, burst: max(burst, 1), fallback: fallback}
}

// gcraScript takes one request from limiter KEYS[1] with emission
// interval ARGV[1] µs and burst ARGV[2]. It returns 0 if the request is
// allowed, else the µs to wait before asking again. Times are µs by the
// server's clock, which Lua numbers (doubles) hold exactly until 2255.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
	return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
`)

// Wait blocks until the fleet's limit allows one request, or ctx ends. It
// asks Redis for a slot and, refused, sleeps the time Redis says and asks
// again. When Redis is down or fails, it waits on the fallback limiter
// instead; without one, it returns the error (ErrDown while down).
func (l *Limiter) Wait(ctx context.Context) error {
	if l.interval == math.MaxInt64 {
		return errors.New("fleet: limiter: the rate must be positive")
	}
	for {
		var retry int64
		err := l.f.do(ctx, "rate limit", func(ctx context.Context) (err error) {
			retry, err = gcraScript.Run(ctx, l.f.rdb, []string{l.key}, l.interval, l.burst).Int64()
			return err
		})
		switch {
		case err != nil && ctx.Err() == nil && l.fallback != nil:
			return l.fallback.Wait(ctx)
		case err != nil:
			return err
		case retry <= 0:
			return nil
		}
		t := time.NewTimer(time.Duration(retry) * time.Microsecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("fleet: rate limit: %w", ctx.Err())
		case <-t.C:
		}
	}
}
