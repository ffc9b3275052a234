package adminapi

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// durableBackend is a blockBackend whose changes reach the disk only while
// diskErr is nil; health reports the same error.
type durableBackend struct {
	*blockBackend
	mu      sync.Mutex
	diskErr error
	ops     int // changes run through Durably
}

func (b *durableBackend) Durably(op func()) error {
	op()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops++
	return b.diskErr
}

func (b *durableBackend) Health() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.diskErr
}

func (b *durableBackend) setDisk(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.diskErr = err
}

// Every change is acknowledged only once the Backend says it is on disk:
// while it cannot be written, the change is answered 503 with the reason,
// /healthz too, and a request that changed nothing still gets its 404.
func TestChangesAnsweredOnlyWhenDurable(t *testing.T) {
	_, bb := newBlockFixture(t)
	db := &durableBackend{blockBackend: bb}
	f := newFixture(t, func(c *Config) { c.Backend = db })
	changes := []struct {
		method, path, body string
		ok                 int
	}{
		{"POST", "/v1/events", `{"client":"10.1.2.3","type":"edr.malware","watch":"1h"}`, 202},
		{"DELETE", "/v1/clients/10.1.2.3", "", 200},
		{"DELETE", "/v1/blocks/45.83.0.21", "", 200},
		{"POST", "/v1/allow", `{"value":"45.83.0.99","until":"1h"}`, 201},
		{"DELETE", "/v1/allow/10.0.0.0/8", "", 200},
	}
	for _, c := range changes {
		wantStatus(t, f.do(c.method, c.path, c.body), c.ok)
	}
	if rec := f.do("GET", "/healthz", ""); rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("/healthz with the disk writable: %d %q", rec.Code, rec.Body)
	}
	if db.ops != len(changes) {
		t.Errorf("%d changes went through Durably, want %d", db.ops, len(changes))
	}

	bb.blocked[netip.MustParseAddr("45.83.0.21")] = true
	db.setDisk(errors.New("state: write: no space left on device"))
	for _, c := range changes {
		rec := f.do(c.method, c.path, c.body)
		wantStatus(t, rec, 503)
		if msg := decodeBody[errorBody](t, rec).Error; !strings.Contains(msg, "not on disk") || !strings.Contains(msg, "no space left") {
			t.Errorf("%s %s on a full disk: %q, want it to say the change is not on disk and why", c.method, c.path, msg)
		}
	}
	wantStatus(t, f.do("DELETE", "/v1/blocks/45.83.0.77", ""), 404)
	rec := f.do("GET", "/healthz", "", "Authorization", "")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "no space left") {
		t.Errorf("/healthz with the disk full: %d %q, want 503 with the reason", rec.Code, rec.Body)
	}
	if f.store.Len() != 1 {
		t.Errorf("the store holds %d events, want only the one that reached the disk", f.store.Len())
	}

	db.setDisk(nil)
	if rec := f.do("GET", "/healthz", ""); rec.Code != 200 {
		t.Errorf("/healthz once the disk has room: %d %q", rec.Code, rec.Body)
	}
}
