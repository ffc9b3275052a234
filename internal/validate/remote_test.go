package validate_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/validate"
	"github.com/coredns-cip/coredns-cip/internal/verdicts"
)

// memRemote is another node's cache: it knows some verdicts and records
// what this node claims and stores.
type memRemote struct {
	mu       sync.Mutex
	known    map[netip.Addr]verdicts.Verdict
	claimed  []netip.Addr
	released []netip.Addr
	stored   []verdicts.Verdict
}

func (m *memRemote) Acquire(_ context.Context, ip netip.Addr) (verdicts.Verdict, bool, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.known[ip]; ok {
		return v, true, func() {}
	}
	m.claimed = append(m.claimed, ip)
	return verdicts.Verdict{}, false, func() {
		m.mu.Lock()
		m.released = append(m.released, ip)
		m.mu.Unlock()
	}
}

func (m *memRemote) Store(_ context.Context, v verdicts.Verdict) {
	m.mu.Lock()
	m.stored = append(m.stored, v)
	m.mu.Unlock()
}

func TestRemote(t *testing.T) {
	fake, client := newFake(t)
	other := netip.MustParseAddr("45.83.0.21")
	remote := &memRemote{known: map[netip.Addr]verdicts.Verdict{
		other: {IP: other, Outcome: verdicts.Suspicious, Decision: "cip-othernode", Checked: time.Now()},
	}}
	var mu sync.Mutex
	var fresh, remoteSeen []string
	q := newQueue(t, validate.Config{Client: client, Remote: remote,
		OnVerdict: func(v verdicts.Verdict, _ validate.Job) { mu.Lock(); fresh = append(fresh, v.IP.String()); mu.Unlock() },
		OnRemote: func(v verdicts.Verdict, _ validate.Job) {
			mu.Lock()
			remoteSeen = append(remoteSeen, v.Decision)
			mu.Unlock()
		},
	})
	q.Submit(validate.Job{IP: other})
	if v := wait(t, q, other); v.Decision != "cip-othernode" {
		t.Errorf("remote verdict %+v, want the other node's decision", v)
	}
	if fake.CallsFor(other.String()) != 0 {
		t.Error("a verdict another node reached cost an API call")
	}
	mine := netip.MustParseAddr("45.83.0.52")
	q.Submit(validate.Job{IP: mine})
	v := wait(t, q, mine)
	// The release runs after the waiters are freed; poll for it.
	deadline := time.Now().Add(conditionTimeout)
	for {
		remote.mu.Lock()
		done := len(remote.released) == 1
		remote.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	remote.mu.Lock()
	defer remote.mu.Unlock()
	if len(remote.claimed) != 1 || remote.claimed[0] != mine || len(remote.released) != 1 || len(remote.stored) != 1 || remote.stored[0].Decision != v.Decision {
		t.Errorf("claimed %v released %v stored %+v; want one claim of %s, released, and its verdict stored", remote.claimed, remote.released, remote.stored, mine)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fresh) != 1 || fresh[0] != mine.String() || len(remoteSeen) != 1 {
		t.Errorf("OnVerdict %v OnRemote %v", fresh, remoteSeen)
	}
}
