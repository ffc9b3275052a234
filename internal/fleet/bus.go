package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Message is one message on the fleet's bus.
type Message struct {
	Kind   string `json:"kind"`   // what happened: "event", "block", "unblock", "allow", "tag", ...
	Origin string `json:"origin"` // the node that published it
	Data   []byte `json:"data"`   // the publisher's bytes
}

// Publish sends data, as a message of kind from this node, to the other
// nodes subscribed to the bus. Delivery is at most once: a node that is
// disconnected at the time misses the message, and catches up in its
// OnReconnect resync.
func (f *Fleet) Publish(ctx context.Context, kind string, data []byte) error {
	payload, err := json.Marshal(Message{Kind: kind, Origin: f.node, Data: data})
	if err != nil {
		return err
	}
	return f.do(ctx, "publish "+kind, func(ctx context.Context) error {
		return f.rdb.Publish(ctx, f.prefix+"bus", payload).Err()
	})
}

// Subscribe calls fn for every message that another node publishes, in
// the order each node published them, from one goroutine shared by all
// the functions subscribed; fn should return quickly (Redis disconnects a
// subscriber that falls far behind, which then counts as an outage).
// Messages from this node are not delivered to it.
//
// If Redis is up, Subscribe returns once the subscription is live (or
// after twice Config.Timeout), so that a resync that follows it misses
// nothing.
// After an outage the subscription is renewed before OnReconnect callbacks
// run; messages published during the outage are lost.
func (f *Fleet) Subscribe(fn func(Message)) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.handlers = append(f.handlers, fn)
	if len(f.handlers) == 1 {
		f.wg.Add(1)
		go f.subscriber()
	}
	subscribed := f.subscribed
	f.mu.Unlock()
	if f.Up() {
		f.wait(subscribed, 2*f.timeout)
	}
}

// subscriber holds the bus subscription while Redis is up, until Close.
func (f *Fleet) subscriber() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		up := f.upCh
		f.mu.Unlock()
		select {
		case <-up:
		case <-f.ctx.Done():
			return
		}
		if err := f.listen(); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.failures.Add(1)
			f.markDown("subscribe", err)
		}
	}
}

// listen subscribes to the bus and delivers its messages until the
// connection fails or Close interrupts it.
func (f *Fleet) listen() error {
	ps := f.rdb.Subscribe(f.ctx)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ps.Close()
	}
	f.ps = ps
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.ps = nil
		if f.isSub {
			f.subscribed, f.isSub = make(chan struct{}), false
		}
		f.mu.Unlock()
		_ = ps.Close()
	}()

	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	err := ps.Subscribe(ctx, f.prefix+"bus")
	if err == nil {
		_, err = ps.ReceiveTimeout(ctx, f.timeout) // the subscription's confirmation
	}
	cancel()
	if err != nil {
		return err
	}
	f.mu.Lock()
	close(f.subscribed)
	f.isSub = true
	f.mu.Unlock()

	// A read that times out sends a PING; a second one in a row, with the
	// PING unanswered, means the connection is dead without having said so.
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(f.ctx, heartbeatInterval)
		var netErr net.Error
		switch {
		case errors.As(err, &netErr) && netErr.Timeout() && !pinged:
			pinged = true
			ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
			err = ps.Ping(ctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			f.deliver(m.Payload)
		}
	}
}

// deliver decodes one bus message and hands it to the subscribed
// functions, unless this node sent it.
func (f *Fleet) deliver(payload string) {
	var m Message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		f.logf("fleet: undecodable bus message: %v", err)
		return
	}
	if m.Origin == f.node {
		return
	}
	f.mu.Lock()
	handlers := slices.Clone(f.handlers)
	f.mu.Unlock()
	for _, fn := range handlers {
		fn(m)
	}
}
