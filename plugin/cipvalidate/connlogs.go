package cipvalidate

import (
	"context"
	"errors"
	"sync"

	"github.com/coredns-cip/coredns-cip/internal/connlog"
	"github.com/coredns-cip/coredns-cip/internal/follow"
)

// connlogRunner follows the `connlog` files of one plugin instance.
type connlogRunner struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startConnlogs follows every configured connection log from its current
// end: each record goes through connection(), like a POSTed one.
func (c *CIPValidate) startConnlogs() error {
	if len(c.cfg.connlogs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &connlogRunner{cancel: cancel}
	for _, spec := range c.cfg.connlogs {
		p, err := connlog.NewParser(spec.format, connlog.Options{Now: timeNow})
		if err != nil {
			cancel()
			return err
		}
		f := follow.New(spec.path, follow.Options{Logf: log.Infof})
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			var bad int
			f.Run(ctx, func(line []byte) {
				rec, err := p.Parse(line)
				if err != nil {
					if errors.Is(err, connlog.ErrSkip) {
						return
					}
					connlogLines.WithLabelValues(string(spec.format), "broken").Inc()
					// A sample of what is wrong, not a flood.
					if bad++; bad == 1 || bad%10_000 == 0 {
						log.Warningf("connlog %s: %d broken line(s); latest: %v", spec.path, bad, err)
					}
					return
				}
				connlogLines.WithLabelValues(string(spec.format), "ok").Inc()
				t := rec.Time
				if t.IsZero() {
					t = timeNow()
				}
				c.connection(rec.Src, rec.Dst, rec.DPort, t)
			})
		}()
		log.Infof("following %s (%s)", spec.path, spec.format)
	}
	c.connlogs = r
	return nil
}

// stopConnlogs stops following and waits for the readers.
func (c *CIPValidate) stopConnlogs() {
	if c.connlogs == nil {
		return
	}
	c.connlogs.cancel()
	c.connlogs.wg.Wait()
	c.connlogs = nil
}
