package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// queueCounters counts one queue's messages through this process (TAS-163
// #10). It is made once per queue, with the queue's state, and the hot
// paths bump it through the pointer they hold: no map lookup, no lock
// (docs/concurrency.md, "RabbitMQ queue statistics", has the benchmark).
type queueCounters struct {
	name                                       string
	sent, received, acked, nacked, redelivered atomic.Uint64
	broker                                     atomic.Int64 // ready on the broker at the last look; -1 unknown
}

// counters is the registry of queueCounters, read by Counters. Registering
// is rare (a queue seen for the first time) and under Queue.mu.
type counters struct {
	all atomic.Pointer[[]*queueCounters] // copy on write
}

func newCounters() *counters {
	c := &counters{}
	c.all.Store(&[]*queueCounters{})
	return c
}

// queue returns a new queue's counters and registers them. Called under
// Queue.mu, once per queue.
func (c *counters) queue(name string) *queueCounters {
	qc := &queueCounters{name: name}
	qc.broker.Store(-1)
	old := *c.all.Load()
	next := append(slices.Clip(old), qc)
	c.all.Store(&next)
	return qc
}

// Counters implements queue.CounterReporter: per queue, what this process
// sent, received, acknowledged, released and saw again, with the broker's
// count of ready messages at its last look (every few seconds).
func (q *Queue) Counters() []queue.Counters {
	all := *q.stats.all.Load()
	out := make([]queue.Counters, 0, len(all))
	for _, c := range all {
		out = append(out, queue.Counters{
			Queue: c.name, Sent: c.sent.Load(), Received: c.received.Load(), Acked: c.acked.Load(),
			Nacked: c.nacked.Load(), Redelivered: c.redelivered.Load(), BrokerMessages: c.broker.Load(),
		})
	}
	slices.SortFunc(out, func(a, b queue.Counters) int { return compareStrings(a.Queue, b.Queue) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// brokerEvery is how often the broker's counts are read for Counters.
const brokerEvery = 5 * time.Second

// refreshBrokerCounts reads the ready count of every ensured queue with a
// passive declare, at most every brokerEvery.
func (q *Queue) refreshBrokerCounts() {
	q.mu.Lock()
	if time.Since(q.brokerAt) < brokerEvery || q.conn == nil {
		q.mu.Unlock()
		return
	}
	q.brokerAt = time.Now()
	var states []*qstate
	for _, s := range q.queues {
		if s.ensured {
			states = append(states, s)
		}
	}
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(q.ctx, brokerEvery)
	defer cancel()
	for _, s := range states {
		if n, err := q.brokerCount(ctx, q.bn(s.name)); err == nil {
			s.ctr.broker.Store(n)
		}
	}
}

// brokerCount returns the messages ready in a broker queue (its broker
// name, prefixed): a passive declare. A queue that does not exist is an error wrapping ErrNotFound.
func (q *Queue) brokerCount(ctx context.Context, name string) (int64, error) {
	var n int64
	err := q.channel(ctx, func(ch *amqp.Channel) error {
		bq, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		n = int64(bq.Messages)
		return err
	})
	if err != nil {
		return 0, notFound(err, "stats", name)
	}
	return n, nil
}

// QueueStats implements queue.Queue. Visible is what the broker holds ready
// plus what this process holds ready; Claimed what this process holds
// claimed (other processes' claims are the broker's unacknowledged
// deliveries, which AMQP does not count); Delayed the messages of the
// delay queues this process declared; OldestAge is not known (0).
func (q *Queue) QueueStats(ctx context.Context, name string) (*queue.Stats, error) {
	if err := queue.CheckName("stats", name); err != nil {
		return nil, err
	}
	ready, err := q.brokerCount(ctx, q.bn(name))
	if err != nil {
		return nil, err
	}
	st := &queue.Stats{Queue: name, Visible: ready}
	if st.Archived, err = q.brokerCount(ctx, q.bn(archiveName(name))); err != nil {
		return nil, err
	}
	s := q.state(name)
	q.mu.Lock()
	q.expireLocked(s, q.clock.Now())
	st.Visible += int64(len(s.ready))
	st.Claimed = int64(len(s.claimed))
	var levels []int64
	for l := range s.delays {
		levels = append(levels, l)
	}
	q.mu.Unlock()
	for _, l := range levels {
		n, err := q.brokerCount(ctx, q.bn(name)+"_delay_"+strconv.FormatInt(l, 10))
		if errors.Is(err, taskertype.ErrNotFound) {
			continue // expired: empty
		}
		if err != nil {
			return nil, err
		}
		st.Delayed += n
	}
	return st, nil
}

// QueueDepth implements queue.Queue: the broker's ready count (a passive
// declare) plus the deliveries this process holds ready.
func (q *Queue) QueueDepth(ctx context.Context, name string) (int64, error) {
	if err := queue.CheckName("depth", name); err != nil {
		return 0, err
	}
	n, err := q.brokerCount(ctx, q.bn(name))
	if err != nil {
		return 0, err
	}
	s := q.state(name)
	q.mu.Lock()
	q.expireLocked(s, q.clock.Now())
	n += int64(len(s.ready))
	q.mu.Unlock()
	return n, nil
}

// DeleteTopology deletes from the broker every queue and exchange this
// process declared (with their messages): for tests, and for an operator
// removing an installation that had a Prefix.
func (q *Queue) DeleteTopology(ctx context.Context) error {
	q.mu.Lock()
	var queues, exchanges []string
	for name, s := range q.queues {
		if !s.ensured {
			continue
		}
		queues = append(queues, q.bn(name), q.bn(dlqName(name)), q.bn(archiveName(name)))
		for l := range s.delays {
			queues = append(queues, q.bn(name)+"_delay_"+strconv.FormatInt(l, 10))
		}
		exchanges = append(exchanges, q.bn(dlxName(name)))
	}
	q.mu.Unlock()
	return q.channel(ctx, func(ch *amqp.Channel) error {
		for _, n := range queues {
			if _, err := ch.QueueDelete(n, false, false, false); err != nil {
				return fmt.Errorf("rabbitmq: delete queue %s: %w", n, err)
			}
		}
		for _, n := range exchanges {
			if err := ch.ExchangeDelete(n, false, false); err != nil {
				return fmt.Errorf("rabbitmq: delete exchange %s: %w", n, err)
			}
		}
		return nil
	})
}
