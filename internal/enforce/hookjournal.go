package enforce

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/sink"
	"github.com/coredns-cip/coredns-cip/internal/state"
)

// kindHookPending holds, per exec or webhook hook line, the changes the
// hook has not acknowledged (see hookJournal).
const kindHookPending state.Kind = "hookpending"

// hookUnblockKeep bounds how long an unblock a hook has not acknowledged
// is kept for it: a SOAR that has been down for a week is reconciled by
// hand. A pending block is kept until its TTL runs out.
const hookUnblockKeep = 7 * 24 * time.Hour

// hookJournal keeps what each exec and webhook hook has not acknowledged,
// in memory and in the state directory, so that a change pending when the
// process stopped or was killed (an unblock above all: the startup resync
// pushes live blocks only) is sent again by the next start, and by every
// reconcile. nftables hooks need none: reconciling reads their sets back.
// It lives in the State, so that a reload finds it too. The dispatcher
// calls it under a queue's lock: it queues its records for the disk and
// never waits.
type hookJournal struct {
	mu sync.Mutex
	m  map[string]pendingChange // by record key
}

// pendingChange is one record: the last change queued for one hook line
// and one key.
type pendingChange struct {
	Line   string      `json:"line"` // lineID of the hook line
	Change sink.Change `json:"change"`
	Until  time.Time   `json:"until"` // a block's end; the record's end
}

// lineID names a hook line in records without spelling it out (a webhook
// URL may carry a token).
func lineID(line string) string {
	sum := sha256.Sum256([]byte(line))
	return hex.EncodeToString(sum[:8])
}

func pendingKey(line string, k sink.Key) string {
	target := k.IP.String()
	if k.Range.IsValid() {
		target = k.Range.String()
	}
	return line + "|" + target + "|" + AddrString(k.Client) + "|" + strconv.Itoa(int(k.Port))
}

// journals returns the journals of specs' lines, in order: nil for
// nftables hooks, and for all without a state directory.
func (st *State) journals(specs []HookSpec) []sink.Journal {
	if st.writer == nil {
		return nil
	}
	out := make([]sink.Journal, len(specs))
	for i, h := range specs {
		if h.Kind != HookNFTables && !h.Notifies() {
			out[i] = lineJournal{st: st, line: lineID(h.Line)}
		}
	}
	return out
}

// restore loads the records kept in the state directory.
func (j *hookJournal) restore(recs []pendingChange, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m = make(map[string]pendingChange, len(recs))
	for _, p := range recs {
		if p.Until.After(now) {
			j.m[pendingKey(p.Line, p.Change.Key())] = p
		}
	}
}

// of returns the changes pending for line, each block with the time it
// has left at now.
func (j *hookJournal) of(line string, now time.Time) []sink.Change {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []sink.Change
	for _, p := range j.m {
		if p.Line != line || !p.Until.After(now) {
			continue
		}
		c := p.Change
		if c.Action == sink.Block {
			c.TTL = p.Until.Sub(now)
		}
		out = append(out, c)
	}
	return out
}

// sweep forgets the records that ran out (the store drops its own).
func (j *hookJournal) sweep(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, p := range j.m {
		if !p.Until.After(now) {
			delete(j.m, k)
		}
	}
}

// lineJournal is the sink.Journal of one hook line.
type lineJournal struct {
	st   *State
	line string
}

// Pending records c, superseding the key's record. Its time is the
// State's clock, by which the engine gave the block its TTL, rather than
// the dispatcher's (at).
func (l lineJournal) Pending(c sink.Change, _ time.Time) {
	now := l.st.now()
	until := now.Add(hookUnblockKeep)
	if c.Action == sink.Block {
		until = now.Add(c.TTL)
	}
	p := pendingChange{Line: l.line, Change: c, Until: until}
	data, err := json.Marshal(p)
	if err != nil {
		return // a Change always encodes
	}
	key := pendingKey(l.line, c.Key())
	j := &l.st.hookJournal
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = make(map[string]pendingChange)
	}
	j.m[key] = p
	if w := l.st.writer; w != nil {
		w.Put(kindHookPending, state.Record{Key: key, Expires: until, Data: data})
	}
}

// Settled drops c's record, unless a newer change of its key replaced it.
func (l lineJournal) Settled(c sink.Change) {
	key := pendingKey(l.line, c.Key())
	j := &l.st.hookJournal
	j.mu.Lock()
	defer j.mu.Unlock()
	p, ok := j.m[key]
	if !ok || p.Change.Action != c.Action || p.Change.Decision != c.Decision {
		return
	}
	delete(j.m, key)
	if w := l.st.writer; w != nil {
		w.Delete(kindHookPending, key)
	}
}

// resendPending queues again, for each exec and webhook hook, what its
// journal says it has not acknowledged: an unblock unless the key was
// blocked again since, a block if it is still live (with the time it has
// now). A change that no longer stands leaves the journal. Start and
// Reconcile call it; a change already queued is left alone.
func (e *Engine) resendPending(d *sink.Dispatcher) int {
	n := 0
	for i, h := range e.cfg.Hooks {
		if h.Kind == HookNFTables || h.Notifies() || e.st.writer == nil {
			continue
		}
		l := lineJournal{st: e.st, line: lineID(h.Line)}
		current := func(c sink.Change) (sink.Change, bool) {
			out, ok := e.stillPending(c)
			if !ok {
				l.Settled(c)
			}
			return out, ok
		}
		n += d.Resend(i, e.st.hookJournal.of(l.line, e.Now()), current)
	}
	return n
}

// stillPending is stillCurrent for a change of the journal: an unblock
// keeps who made it and why.
func (e *Engine) stillPending(c sink.Change) (sink.Change, bool) {
	if c.Action != sink.Unblock {
		return e.stillCurrent(c)
	}
	b, ok := e.blockOf(c, e.Now())
	return c, !(ok && !b.Monitor && covers(b, c.Key()))
}
