package fleet

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The API budget of a fleet is one hash per period, P+"budget:"+PERIOD
// (PERIOD the period's start in Unix seconds), expiring an hour after the
// period ends:
//
//	spent      the calls the whole fleet spent in the period
//	exhausted  1 once a quota error from the API exhausted it
//	alert:LEVEL the node that announces that threshold (warning, exhausted)
//
// A script checks a call's share and counts it in one step, so nodes
// taking at the same time cannot overspend together.

// budgetTakeScript spends one call on budget KEYS[1] if its spent count
// times 100 is under ARGV[1] (the limit times the class's share), after
// adding ARGV[2] calls spent while Redis was down, and raising the count
// to at least ARGV[4], the node's own view (a Redis that lost its data
// does not grant a fresh budget); ARGV[3] is the key's expiry, Unix ms.
// It returns {spent, allowed, exhausted}.
var budgetTakeScript = redis.NewScript(`
local pending = tonumber(ARGV[2])
if pending > 0 then redis.call('HINCRBY', KEYS[1], 'spent', pending) end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
if spent < tonumber(ARGV[4]) then
	spent = tonumber(ARGV[4])
	redis.call('HSET', KEYS[1], 'spent', spent)
end
local exhausted = redis.call('HGET', KEYS[1], 'exhausted') == '1'
local allowed = 0
if not exhausted and spent * 100 < tonumber(ARGV[1]) then
	spent = redis.call('HINCRBY', KEYS[1], 'spent', 1)
	allowed = 1
end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {spent, allowed, exhausted and 1 or 0}
`)

// BudgetTake spends one call of the budget period starting at start
// (ending at end) if spent*100 < threshold, first counting pending calls
// spent while Redis was down and raising the count to floor (what the
// node knows was spent). It returns the fleet's spent count, whether the
// call may be made, and whether a quota error exhausted the period.
func (f *Fleet) BudgetTake(ctx context.Context, start, end time.Time, threshold, pending, floor int64) (spent int64, allowed, exhausted bool, err error) {
	err = f.do(ctx, "budget", func(ctx context.Context) error {
		r, err := budgetTakeScript.Run(ctx, f.rdb, []string{f.budgetKey(start)}, threshold, pending, budgetExpiry(end), floor).Int64Slice()
		if err == nil && len(r) == 3 {
			spent, allowed, exhausted = r[0], r[1] == 1, r[2] == 1
		}
		return err
	})
	return spent, allowed, exhausted, err
}

// BudgetExhaust marks the period starting at start exhausted for the
// whole fleet: the API answered that the plan's quota is spent.
func (f *Fleet) BudgetExhaust(ctx context.Context, start, end time.Time) error {
	return f.do(ctx, "budget", func(ctx context.Context) error {
		p := f.rdb.TxPipeline()
		p.HSet(ctx, f.budgetKey(start), "exhausted", "1")
		p.PExpireAt(ctx, f.budgetKey(start), time.UnixMilli(budgetExpiry(end)))
		_, err := p.Exec(ctx)
		return err
	})
}

// BudgetOnce reports whether this node is the first of the fleet to claim
// field in the period starting at start: the one that announces a
// threshold.
func (f *Fleet) BudgetOnce(ctx context.Context, start, end time.Time, field string) (bool, error) {
	var first bool
	err := f.do(ctx, "budget", func(ctx context.Context) (err error) {
		if first, err = f.rdb.HSetNX(ctx, f.budgetKey(start), "alert:"+field, f.node).Result(); err != nil {
			return err
		}
		return f.rdb.PExpireAt(ctx, f.budgetKey(start), time.UnixMilli(budgetExpiry(end))).Err()
	})
	return first, err
}

func (f *Fleet) budgetKey(start time.Time) string {
	return f.prefix + "budget:" + strconv.FormatInt(start.Unix(), 10)
}

// budgetExpiry keeps a period's hash an hour past its end, for nodes
// whose clocks run late.
func budgetExpiry(end time.Time) int64 { return end.Add(time.Hour).UnixMilli() }
