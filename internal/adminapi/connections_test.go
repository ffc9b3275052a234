package adminapi

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

type connBackend struct {
	*fakeBackend
	mu  sync.Mutex
	got []Connection
}

func (c *connBackend) Connections(recs []Connection) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, recs...)
	return 1
}

func TestConnections(t *testing.T) {
	cb := &connBackend{fakeBackend: newFakeBackend()}
	f := newFixture(t, func(c *Config) { c.Backend = cb })
	body := `[
		{"time":"` + testNow.Add(-time.Minute).Format(time.RFC3339) + `","src":"10.1.2.3","dst":"45.83.0.21","dport":22,"proto":"TCP"},
		{"src":"10.1.2.3","dst":"45.83.0.10","dport":443},
		{"src":"10.1.2.3","dst":"not-an-ip","dport":80},
		{"src":"10.1.2.3","dst":"45.83.0.11","dport":70000},
		{"dst":"45.83.0.12"},
		{"src":"10.1.2.3","dst":"45.83.0.13","time":"yesterday"},
		{"src":"10.1.2.3","dst":"45.83.0.14","colour":"red"},
		42
	]`
	rec := f.do("POST", "/v1/connections", body)
	wantStatus(t, rec, 200)
	ans := decodeBody[connAnswer](t, rec)
	if ans.Accepted != 2 || ans.Rejected != 6 || ans.Queued != 1 {
		t.Fatalf("answer %+v", ans)
	}
	wantFields := map[int]string{2: "dst", 3: "dport", 4: "src", 5: "time", 6: "colour"}
	for _, e := range ans.Errors {
		if want, ok := wantFields[e.Index]; ok && e.Field != want {
			t.Errorf("record %d: field %q (%s), want %q", e.Index, e.Field, e.Error, want)
		}
	}
	if len(cb.got) != 2 || cb.got[0].Dst != netip.MustParseAddr("45.83.0.21") || cb.got[0].DPort != 22 || cb.got[0].Proto != "tcp" ||
		!cb.got[0].Time.Equal(testNow.Add(-time.Minute)) || !cb.got[1].Time.Equal(testNow) {
		t.Errorf("recorded %+v", cb.got)
	}

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"src":"10.1.2.3"}`, 400},
		{`[{"src":"bad"}]`, 400},
		{"[" + strings.Repeat(`{"src":"10.0.0.1","dst":"45.83.0.1"},`, MaxConnections) + `{"src":"10.0.0.1","dst":"45.83.0.1"}]`, 413},
	} {
		if rec := f.do("POST", "/v1/connections", tc.body); rec.Code != tc.status {
			t.Errorf("POST %.40s...: %d, want %d", tc.body, rec.Code, tc.status)
		}
	}
	_ = fmt.Sprint
}
