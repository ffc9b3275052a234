package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ipKey is the key of ip's verdict or claim. IPv4-mapped IPv6 addresses
// are unmapped, so both spellings of an IPv4 address share one entry.
func (f *Fleet) ipKey(kind string, ip netip.Addr) (string, error) {
	if !ip.IsValid() {
		return "", fmt.Errorf("fleet: %s: invalid IP", kind)
	}
	return f.prefix + kind + ":" + ip.Unmap().String(), nil
}

// GetVerdict returns the verdict another node (or this one) stored for ip,
// and whether there is one.
func (f *Fleet) GetVerdict(ctx context.Context, ip netip.Addr) ([]byte, bool, error) {
	key, err := f.ipKey("verdict", ip)
	if err != nil {
		return nil, false, err
	}
	var data []byte
	found := false
	err = f.do(ctx, "get verdict", func(ctx context.Context) (err error) {
		data, err = f.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		found = err == nil
		return err
	})
	return data, found, err
}

// PutVerdict stores the verdict for ip for ttl, which must be positive.
func (f *Fleet) PutVerdict(ctx context.Context, ip netip.Addr, data []byte, ttl time.Duration) error {
	key, err := f.ipKey("verdict", ip)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		return errors.New("fleet: put verdict: the TTL must be positive")
	}
	if data == nil {
		data = []byte{}
	}
	return f.do(ctx, "put verdict", func(ctx context.Context) error {
		return f.rdb.Set(ctx, key, data, ttl).Err()
	})
}

// DeleteVerdict removes the verdict for ip, if any.
func (f *Fleet) DeleteVerdict(ctx context.Context, ip netip.Addr) error {
	key, err := f.ipKey("verdict", ip)
	if err != nil {
		return err
	}
	return f.do(ctx, "delete verdict", func(ctx context.Context) error {
		return f.rdb.Del(ctx, key).Err()
	})
}

// Claim tries to make this node the one that looks ip up, for ttl (which
// must be positive; it bounds how long a crashed node blocks the others).
// It reports whether the claim was won. A claim already held, even by this
// node, is not won again: concurrent lookups on one node are the caller's
// to merge.
func (f *Fleet) Claim(ctx context.Context, ip netip.Addr, ttl time.Duration) (bool, error) {
	key, err := f.ipKey("claim", ip)
	if err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, errors.New("fleet: claim: the TTL must be positive")
	}
	var won bool
	err = f.do(ctx, "claim", func(ctx context.Context) (err error) {
		won, err = f.rdb.SetNX(ctx, key, f.node, ttl).Result()
		return err
	})
	return won, err
}

// releaseScript deletes KEYS[1] if it holds ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Release gives up this node's claim on ip. It does nothing if the claim
// is held by another node (ours expired and another won it) or by none.
func (f *Fleet) Release(ctx context.Context, ip netip.Addr) error {
	key, err := f.ipKey("claim", ip)
	if err != nil {
		return err
	}
	return f.do(ctx, "release", func(ctx context.Context) error {
		return releaseScript.Run(ctx, f.rdb, []string{key}, f.node).Err()
	})
}

// WaitVerdict waits for the verdict of a node that won the claim on ip,
// polling every poll. It returns the verdict when it appears; ok false and
// no error when the claim is gone without a verdict (the winner failed or
// crashed: the caller may claim ip itself); and an error when ctx ends or
// Redis fails, ErrDown included, so that the caller looks ip up itself.
func (f *Fleet) WaitVerdict(ctx context.Context, ip netip.Addr, poll time.Duration) ([]byte, bool, error) {
	claim, err := f.ipKey("claim", ip)
	if err != nil {
		return nil, false, err
	}
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		data, ok, err := f.GetVerdict(ctx, ip)
		if ok || err != nil {
			return data, ok, err
		}
		var held int64
		err = f.do(ctx, "wait verdict", func(ctx context.Context) (err error) {
			held, err = f.rdb.Exists(ctx, claim).Result()
			return err
		})
		if err != nil {
			return nil, false, err
		}
		if held == 0 {
			// The winner stores its verdict before it releases the
			// claim: look once more, after seeing the claim gone.
			return f.GetVerdict(ctx, ip)
		}
		select {
		case <-ctx.Done():
			return nil, false, fmt.Errorf("fleet: wait verdict: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// recordKey is the hash holding the records of kind.
func (f *Fleet) recordKey(kind string) (string, error) {
	if kind == "" {
		return "", errors.New("fleet: empty record kind")
	}
	return f.prefix + "rec:" + kind, nil
}

// recordLua is the part the record scripts share. A record is stored as
// "EXPIRY:" + data, or "EXPIRY,VERSION:" + data for a versioned one
// (PutNewer), with EXPIRY in Unix ms by the server's clock (0: never) and
// VERSION the 16 hex digits of a Version. Redis expires keys, not hash
// fields, so the scripts that write delete the expired records among a
// few random ones: the hash stays near its live size even if List is
// rarely called.
const recordLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- parse returns a record's expiry, version and data, or nil if it is
-- malformed.
local function parse(v)
	local sep = string.find(v, ':', 1, true)
	if not sep then return nil end
	local e, ver = string.match(string.sub(v, 1, sep - 1), '^(%d+),?(%x*)$')
	if not e then return nil end
	if ver == '' then ver = '0000000000000000' end
	return tonumber(e), ver, string.sub(v, sep + 1)
end
local function live(e) return e and (e == 0 or e > now) end
-- older reports whether version a is older than b. Both are 16 hex
-- digits, compared as two numbers: a Lua number holds 53 bits exactly.
local function older(a, b)
	local ah, bh = tonumber(string.sub(a, 1, 8), 16), tonumber(string.sub(b, 1, 8), 16)
	if ah ~= bh then return ah < bh end
	return tonumber(string.sub(a, 9), 16) < tonumber(string.sub(b, 9), 16)
end
local function expiry(ms)
	if ms > 0 then return now + ms end
	return 0
end
local function prune()
	local sample = redis.call('HRANDFIELD', KEYS[1], 8, 'WITHVALUES')
	for i = 1, #sample, 2 do
		if not live(parse(sample[i + 1])) then redis.call('HDEL', KEYS[1], sample[i]) end
	end
end
`

// putScript sets field ARGV[1] of hash KEYS[1] to ARGV[3], expiring in
// ARGV[2] ms (0: never).
var putScript = redis.NewScript(recordLua + `
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:', expiry(tonumber(ARGV[2]))) .. ARGV[3])
prune()
return 1
`)

// putNewerScript is putScript with version ARGV[4], done only if field
// ARGV[1] holds no live record of that version or a later one. It
// returns 1 if it stored the record.
var putNewerScript = redis.NewScript(recordLua + `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
	local e, ver = parse(cur)
	if live(e) and not older(ver, ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d,%s:', expiry(tonumber(ARGV[2])), ARGV[4]) .. ARGV[3])
prune()
return 1
`)

// listScript returns the live records of hash KEYS[1] as a flat list of
// key, version, data triples, and deletes the expired ones.
var listScript = redis.NewScript(recordLua + `
local all = redis.call('HGETALL', KEYS[1])
local live_ = {}
for i = 1, #all, 2 do
	local e, ver, data = parse(all[i + 1])
	if live(e) then
		live_[#live_ + 1] = all[i]
		live_[#live_ + 1] = ver
		live_[#live_ + 1] = data
	else
		redis.call('HDEL', KEYS[1], all[i])
	end
end
return live_
`)

// Put stores the record key of kind (a tag, a block, an allowlist entry)
// for ttl, or without expiry if ttl is 0. It replaces any record of the
// same kind and key.
//
// The records of a kind are one hash, so that List is one command whatever
// else the database holds, and works on a Cluster; their expiry is kept
// with each record and applied by List (see recordLua).
func (f *Fleet) Put(ctx context.Context, kind, key string, data []byte, ttl time.Duration) error {
	_, err := f.put(ctx, "put "+kind, putScript, kind, key, 0, data, ttl)
	return err
}

// PutNewer is Put for a record that carries version v: it is stored only
// if the live record of kind and key, if any, has an older version (a
// record stored by Put has version zero). It reports whether it was
// stored. Nodes that write the latest change to a record this way agree,
// once they all have written, on the latest one, whatever order their
// writes reached Redis in.
func (f *Fleet) PutNewer(ctx context.Context, kind, key string, v Version, data []byte, ttl time.Duration) (bool, error) {
	return f.put(ctx, "put "+kind, putNewerScript, kind, key, v, data, ttl)
}

func (f *Fleet) put(ctx context.Context, op string, script *redis.Script, kind, key string, v Version, data []byte, ttl time.Duration) (bool, error) {
	hash, err := f.recordKey(kind)
	if err != nil {
		return false, err
	}
	if ttl < 0 {
		return false, fmt.Errorf("fleet: %s: negative TTL", op)
	}
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	var stored int64
	err = f.do(ctx, op, func(ctx context.Context) (err error) {
		stored, err = script.Run(ctx, f.rdb, []string{hash}, key, ms, data, v.String()).Int64()
		return err
	})
	return stored == 1, err
}

// Delete removes the record key of kind, if any.
func (f *Fleet) Delete(ctx context.Context, kind, key string) error {
	hash, err := f.recordKey(kind)
	if err != nil {
		return err
	}
	return f.do(ctx, "delete "+kind, func(ctx context.Context) error {
		return f.rdb.HDel(ctx, hash, key).Err()
	})
}

// Record is a record as ListRecords returns it.
type Record struct {
	Data    []byte
	Version Version // zero for a record stored by Put
}

// List returns the live records of kind, by key. Expired records are not
// returned, and are deleted.
func (f *Fleet) List(ctx context.Context, kind string) (map[string][]byte, error) {
	recs, err := f.ListRecords(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(recs))
	for k, r := range recs {
		out[k] = r.Data
	}
	return out, nil
}

// ListRecords is List with the records' versions.
func (f *Fleet) ListRecords(ctx context.Context, kind string) (map[string]Record, error) {
	hash, err := f.recordKey(kind)
	if err != nil {
		return nil, err
	}
	var flat []string
	err = f.do(ctx, "list "+kind, func(ctx context.Context) (err error) {
		flat, err = listScript.Run(ctx, f.rdb, []string{hash}).StringSlice()
		return err
	})
	if err != nil {
		return nil, err
	}
	records := make(map[string]Record, len(flat)/3)
	for i := 0; i+2 < len(flat); i += 3 {
		v, err := strconv.ParseUint(flat[i+1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("fleet: list %s: record %q: version %q: %w", kind, flat[i], flat[i+1], err)
		}
		records[flat[i]] = Record{Data: []byte(flat[i+2]), Version: Version(v)}
	}
	return records, nil
}

// PutReport records this node's report on event eventID, and keeps the
// event's reports (every node's) for ttl from now, if ttl is positive.
func (f *Fleet) PutReport(ctx context.Context, eventID string, data []byte, ttl time.Duration) error {
	if eventID == "" {
		return errors.New("fleet: put report: empty event id")
	}
	key := f.prefix + "event:" + eventID
	if data == nil {
		data = []byte{}
	}
	return f.do(ctx, "put report", func(ctx context.Context) error {
		_, err := f.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, f.node, data)
			if ttl > 0 {
				p.PExpire(ctx, key, ttl)
			}
			return nil
		})
		return err
	})
}

// Reports returns every node's report on event eventID, by node.
func (f *Fleet) Reports(ctx context.Context, eventID string) (map[string][]byte, error) {
	if eventID == "" {
		return nil, errors.New("fleet: reports: empty event id")
	}
	var all map[string]string
	err := f.do(ctx, "reports", func(ctx context.Context) (err error) {
		all, err = f.rdb.HGetAll(ctx, f.prefix+"event:"+eventID).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	reports := make(map[string][]byte, len(all))
	for node, data := range all {
		reports[node] = []byte(data)
	}
	return reports, nil
}
