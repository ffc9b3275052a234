package state

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWrite measures what a durable acknowledgement costs, with fsync
// on as in production, on the disk of the test's temporary directory. One
// op is one change (a tag-sized record) made by one of W concurrent
// writers:
//
//   - batched: Writer.Put, fire-and-forget, committed in batches of
//     flushAt (1000) changes as the writer does under load: the baseline,
//     what nobody waits for. The writer that makes the 1000th change
//     commits the batch (a benchmark that only queued would outrun the
//     commits and fill the queue).
//   - waited: Writer.Put then Writer.Sync, group commit: the writer waits
//     until its change is on disk, and waiters share commits.
//   - alone: Store.Put, one transaction per change: what waiting costs
//     without group commit.
//
// commits/op is how many commits each change cost.
func BenchmarkWrite(b *testing.B) {
	data := json.RawMessage(`{"Client":"10.1.2.3","Reason":"event","Until":"2026-12-01T11:00:00Z","Since":"2026-12-01T10:00:00Z","Ref":"SIEM-123","Event":"ev-0123456789ab"}`)
	for _, mode := range []string{"batched", "waited", "alone"} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("mode=%s/writers=%d", mode, writers), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var commits atomic.Uint64
				w := s.newWriter(0, func(ops []op) error { commits.Add(1); return s.apply(ops) })
				defer w.Close()
				write := func(n int) error {
					rec := Record{Key: fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255), Expires: time.Now().Add(time.Hour), Data: data}
					switch mode {
					case "batched":
						w.Put(KindTags, rec)
						if n%flushAt == 0 {
							return w.Flush()
						}
						return nil
					case "waited":
						w.Put(KindTags, rec)
						return w.Sync(context.Background())
					}
					commits.Add(1)
					return s.Put(KindTags, rec)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range writers {
					wg.Go(func() {
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							if err := write(int(n)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/op")
				if w.Dropped() > 0 {
					b.Errorf("%d changes dropped: the queue filled up", w.Dropped())
				}
			})
		}
	}
}
