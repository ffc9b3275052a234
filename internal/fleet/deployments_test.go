package fleet

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster runs two nodes on a two-master Redis Cluster, named by a
// host list, to show that every operation works across hash slots.
func TestCluster(t *testing.T) {
	m1 := startRedisTCP(t, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	m2 := startRedisTCP(t, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := context.Background()
	for i, m := range []*redisServer{m1, m2} {
		c := redis.NewClient(&redis.Options{Addr: m.addr})
		defer c.Close()
		if err := c.ClusterAddSlotsRange(ctx, i*8192, i*8192+8191).Err(); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			host, port, _ := strings.Cut(m1.addr, ":")
			if err := c.ClusterMeet(ctx, host, port).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, m := range []*redisServer{m1, m2} {
		c := redis.NewClient(&redis.Options{Addr: m.addr})
		defer c.Close()
		eventually(t, 20*time.Second, m.addr+" does not see a healthy two-node cluster", func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:2")
		})
	}

	url := "redis://" + m1.addr + "," + m2.addr
	exercise(t, url)
}

// TestSentinel runs two nodes on a Redis watched by a Sentinel.
func TestSentinel(t *testing.T) {
	master := startRedisTCP(t, "")
	host, port, _ := strings.Cut(master.addr, ":")
	sentinel := startRedisTCP(t, "sentinel monitor mymaster "+host+" "+port+" 1\n", "--sentinel")
	exercise(t, "redis-sentinel://"+sentinel.addr+"/mymaster")
}

// exercise runs two Fleets on url through each kind of operation.
func exercise(t *testing.T, url string) {
	t.Helper()
	open := func(node string) *Fleet {
		f, err := Open(Config{URL: url, Node: node, Timeout: time.Second, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if !f.Up() {
			t.Fatalf("%s: not up after Open", node)
		}
		return f
	}
	a, b := open("a"), open("b")
	ctx := context.Background()
	received := make(chan Message, 100)
	b.Subscribe(func(m Message) { received <- m })

	for i := range 20 { // spread over both masters' slots
		ip := ip1.Next()
		for range i {
			ip = ip.Next()
		}
		if err := a.PutVerdict(ctx, ip, []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := b.GetVerdict(ctx, ip); !ok || err != nil {
			t.Fatalf("GetVerdict(%s): %v, %v", ip, ok, err)
		}
		if won, err := a.Claim(ctx, ip, time.Minute); !won || err != nil {
			t.Fatalf("Claim(%s): %v, %v", ip, won, err)
		}
		if err := a.Release(ctx, ip); err != nil {
			t.Fatal(err)
		}
		kind := "kind" + strconv.Itoa(i)
		if err := a.Put(ctx, kind, "k", []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if m, err := b.List(ctx, kind); len(m) != 1 || err != nil {
			t.Fatalf("List(%s): %v, %v", kind, m, err)
		}
		if err := a.PutReport(ctx, kind, []byte("r"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if r, err := b.Reports(ctx, kind); len(r) != 1 || err != nil {
			t.Fatalf("Reports(%s): %v, %v", kind, r, err)
		}
	}
	if n, err := a.Nodes(ctx); n != 2 || err != nil {
		t.Errorf("Nodes: %d, %v; want 2", n, err)
	}
	if err := a.NewLimiter("api", 100, 1, nil).Wait(ctx); err != nil {
		t.Errorf("Limiter.Wait: %v", err)
	}
	if err := a.Publish(ctx, "event", []byte("e")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-received:
		if m.Origin != "a" {
			t.Errorf("b received %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Error("a's message never reached b")
	}
	if a.Errors() != 0 || b.Errors() != 0 {
		t.Errorf("failed operations: %d on a, %d on b", a.Errors(), b.Errors())
	}
}
