package rabbitmq

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// hPub carries the publish token of each publish: the broker gives it back
// with a message no queue took (basic.return), so that the publish waiting
// for that message's confirm knows it was dropped.
const hPub = "x-tasker-pub"

// ErrReturned is wrapped by the error of a publish that no queue took:
// the broker returned it (the queue was deleted behind the engine's
// back). The queue is declared again before the error is returned, so
// publishing again delivers.
var ErrReturned = errors.New("no queue took the message (the broker returned it)")

// publisher is the publishing channel, in confirm mode, with the messages
// the broker returned on it.
type publisher struct {
	ch  *amqp.Channel
	ret *returns
}

// newPublisher opens the publishing channel of conn.
func newPublisher(conn *amqp.Connection) (*publisher, error) {
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		if ch != nil {
			_ = ch.Close()
		}
		return nil, err
	}
	r := &returns{
		ch:  ch.NotifyReturn(make(chan amqp.Return, maxReturnsBuffered)),
		got: make(map[int64]time.Time),
	}
	go r.sweep(returnsSweep)
	return &publisher{ch: ch, ret: r}, nil
}

// returnsSweep is how often returns no publish looked at are taken out of
// the channel's buffer.
const returnsSweep = 100 * time.Millisecond

// sweep empties the buffer of returns every period until the channel
// closes, so that returns whose publishes stopped waiting (a batch that
// gave up at its first return, a context that ended) never fill it: a
// full buffer would stop the connection's reader, and with it every
// confirm and delivery of the connection. It drains under mu, as a
// publish does, so a publish that got its confirm finds its return in
// got or in the buffer, never in between.
func (r *returns) sweep(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for range t.C {
		now := time.Now()
		r.mu.Lock()
		open := r.drain(now)
		for tok, at := range r.got {
			if now.Sub(at) > time.Minute {
				delete(r.got, tok)
			}
		}
		r.mu.Unlock()
		if !open {
			return
		}
	}
}

// drain moves the buffered returns into got; it reports whether the
// channel is still open. mu is held. The sweep forgets the returns
// recorded more than a minute ago: their publishes, which look within
// milliseconds of their confirm, stopped waiting.
func (r *returns) drain(now time.Time) bool {
	open := true
loop:
	for {
		select {
		case x, ok := <-r.ch:
			if !ok {
				open = false
				break loop
			}
			if t := headerInt(x.Headers, hPub); t != 0 {
				r.got[t] = now
			}
		default:
			break loop
		}
	}
	return open
}

// maxReturnsBuffered is the room for returns not looked at yet. The
// client's reader puts a return there before it reads the confirm that
// follows it; the publish waiting for that confirm empties it, and so
// does the sweep, every returnsSweep.
const maxReturnsBuffered = 1024

// returns records the tokens of the messages the broker returned on one
// publishing channel. The broker sends a message's basic.return before
// its basic.ack, and the client's reader hands the return to ch before
// the confirm to its waiter; so the publish that got its confirm and then
// empties ch under mu sees its own return, whoever else emptied ch.
type returns struct {
	ch  <-chan amqp.Return
	mu  sync.Mutex
	got map[int64]time.Time // token → when recorded
}

// returned reports, once the confirm of the publish of token arrived,
// whether the broker returned that message, and forgets it.
func (r *returns) returned(token int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drain(time.Now())
	_, ok := r.got[token]
	delete(r.got, token)
	return ok
}

// redeclare declares again, after the broker returned a message published
// to exchange/key, the queue this process owns that should have taken it:
// the queue itself (with its dead-letter exchange and queue and its
// archive), or forgets the delay queue so that the next delayed publish
// declares it. A name this process does not know is left alone.
func (q *Queue) redeclare(ctx context.Context, exchange, key string) error {
	name := strings.TrimPrefix(cmp.Or(exchange, key), q.cfg.Prefix)
	var base string
	q.mu.Lock()
	for n, s := range q.queues {
		switch {
		case name == n, name == dlxName(n), name == dlqName(n), name == archiveName(n):
			base = n
		case strings.HasPrefix(name, n+"_delay_"):
			level, err := strconv.ParseInt(strings.TrimPrefix(name, n+"_delay_"), 10, 64)
			if err == nil {
				delete(s.delays, level)
				base = n
			}
		}
		if base != "" {
			break
		}
	}
	ensured := base != "" && q.queues[base].ensured
	q.mu.Unlock()
	if !ensured {
		return nil
	}
	return q.QueueEnsure(ctx, base)
}
