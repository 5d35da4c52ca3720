package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/background"
	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
)

// OutboxConfig configures the transactional outbox of a store whose queue
// lives elsewhere (a broker): Tx.MessageSend writes into the table
// message_outbox, in the transaction, and a relay publishes to Queue after
// the commit. docs/rabbitmq.md.
type OutboxConfig struct {
	// Queue receives the messages. Required to turn the outbox on. If it
	// implements queue.BatchSender, a batch is published with one wait
	// for the broker's confirms.
	Queue queue.Queue
	// Batch bounds the rows one relay round leases and publishes. Default
	// 256.
	Batch int
	// Lease is how long a relay holds the rows it publishes: if it dies,
	// another relay publishes them after the lease. Default 10s.
	Lease time.Duration
	// Parallel bounds the relay's rounds in flight: a round waits for
	// the broker's confirms (milliseconds for persistent messages that a
	// consumer takes at once), and the commits meanwhile start rounds of
	// their own on the rows the first did not lease. Default 4.
	Parallel int
	// Sweep is how often a relay looks for rows that no commit of this
	// process woke it for (another process died after its commit, or a
	// publish failed). Default 2s.
	Sweep time.Duration
}

func (c OutboxConfig) withDefaults() OutboxConfig {
	c.Batch = cmp.Or(c.Batch, 256)
	c.Lease = cmp.Or(c.Lease, 10*time.Second)
	c.Sweep = cmp.Or(c.Sweep, 2*time.Second)
	c.Parallel = cmp.Or(c.Parallel, 4)
	return c
}

// QueueChecker is a queue that can tell whether a queue exists without
// sending to it: the outbox refuses a message to a queue never ensured,
// as the co-located queue does.
type QueueChecker interface {
	QueueCheck(ctx context.Context, name string) error
}

// OutboxStats counts a relay's work.
type OutboxStats struct {
	// Published: rows published and deleted; Rounds: sweeps that found
	// rows whose lease had ended; Failures: publishes or deletes that
	// failed (their rows go again after the lease); Overflows: commits
	// whose rows waited for a sweep because the relay was that far behind
	// (its hand-off queue full, or the rows older than half their lease).
	Published, Rounds, Failures, Overflows uint64
}

// relay publishes the outbox's rows. Its rounds lease rows with FOR UPDATE
// SKIP LOCKED and database time, so relays of several processes take
// disjoint rows; a row published but not deleted (the process died
// between) is published again after its lease: the engine's
// compare-and-set transitions absorb the duplicate.
type relay struct {
	cfg  OutboxConfig
	db   *pgdb.DB
	log  *slog.Logger
	jobs chan job // commits' rows, leased by their transaction: bounded
	// deletes carries the ids of published rows to the deleter, which
	// deletes them in batches: bounded; when full, a publisher deletes its
	// own.
	deletes chan []int64
	run     background.Run

	published, rounds, failures, overflows atomic.Uint64
}

// job is what one commit wrote to the outbox: its rows' ids (leased by
// the transaction that wrote them) and their messages.
type job struct {
	ids  []int64
	msgs []*queue.SendParams
	at   time.Time // when the commit handed it off: its lease began just before
}

// late says whether j waited so long for the publisher that its lease may
// end before its publish does: it is left to the sweep, which leases the
// rows anew, rather than published by a relay that may no longer hold them
// (and then also by the sweep).
func (r *relay) late(j job) bool { return time.Since(j.at) > r.cfg.Lease/2 }

func newRelay(db *pgdb.DB, log *slog.Logger, cfg OutboxConfig) *relay {
	cfg = cfg.withDefaults()
	return &relay{cfg: cfg, db: db, log: log, jobs: make(chan job, 1024), deletes: make(chan []int64, 256)}
}

// handoff gives the relay the rows a commit wrote, to publish at once.
// It never blocks the commit: when the relay is that far behind, the rows
// wait for the sweep after their lease.
func (r *relay) handoff(j job) {
	j.at = time.Now()
	select {
	case r.jobs <- j:
	default:
		r.overflows.Add(1)
	}
}

func (r *relay) start() {
	r.run.Start(context.Background(), r.loop)
}

func (r *relay) stop(ctx context.Context) error { return r.run.Stop(ctx) }

// loop runs Parallel publishers of the commits' jobs, and sweeps for rows
// whose lease ended (their relay died, or failed) every Sweep.
func (r *relay) loop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range r.cfg.Parallel {
		wg.Go(func() { r.publisher(ctx) })
	}
	wg.Go(func() { r.deleter(ctx) })
	sweep := time.NewTicker(r.cfg.Sweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
		}
		r.drain(ctx)
	}
}

// publisher publishes the jobs the commits hand off, several at once when
// they queue up (up to Batch messages), then deletes their rows.
func (r *relay) publisher(ctx context.Context) {
	for {
		var j job
		select {
		case <-ctx.Done():
			r.drainJobs(ctx)
			return
		case j = <-r.jobs:
		}
		if r.late(j) {
			r.overflows.Add(1)
			continue
		}
	more:
		for len(j.msgs) < r.cfg.Batch {
			select {
			case next := <-r.jobs:
				if r.late(next) {
					r.overflows.Add(1)
					continue
				}
				j.ids, j.msgs = append(j.ids, next.ids...), append(j.msgs, next.msgs...)
			default:
				break more
			}
		}
		if err := r.publishDelete(ctx, j.ids, j.msgs); err != nil {
			r.failures.Add(1)
			if ctx.Err() == nil {
				r.log.Warn("store: outbox relay: rows go again after their lease", slog.Any("error", err))
			}
		}
	}
}

// drainJobs publishes, when the relay stops (the process closes its
// store), the commits handed off and not yet published, for at most
// stopDrain: else they would wait for another relay's sweep after their
// lease.
func (r *relay) drainJobs(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopDrain)
	defer cancel()
	for dctx.Err() == nil {
		select {
		case j := <-r.jobs:
			if r.late(j) {
				r.overflows.Add(1)
				continue
			}
			// The deleter may have stopped: delete here.
			err := r.publish(dctx, j.msgs)
			if err == nil {
				err = r.delete(dctx, j.ids)
			}
			if err != nil {
				r.failures.Add(1)
			}
		default:
			return
		}
	}
}

// stopDrain bounds the publishing a stopping relay does.
const stopDrain = 5 * time.Second

// publishDelete publishes msgs and deletes the rows ids once the broker
// confirmed them all.
func (r *relay) publishDelete(ctx context.Context, ids []int64, msgs []*queue.SendParams) error {
	if err := r.publish(ctx, msgs); err != nil {
		return fmt.Errorf("publish %d rows: %w", len(ids), err)
	}
	select {
	case r.deletes <- ids:
		return nil
	default:
		return r.delete(ctx, ids)
	}
}

// deleteEvery bounds how long a published row waits for its delete: far
// below the lease, so that it is not published again meanwhile.
const deleteEvery = 10 * time.Millisecond

// deleter deletes the published rows in batches: one statement for all
// the rows published in deleteEvery (or 1024 of them), not one per commit.
func (r *relay) deleter(ctx context.Context) {
	var pending []int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func(ctx context.Context) {
		if len(pending) == 0 {
			return
		}
		if err := r.delete(ctx, pending); err != nil {
			r.failures.Add(1)
			r.log.Warn("store: outbox relay: rows go again after their lease", slog.Any("error", err))
		}
		pending = pending[:0]
	}
	for {
		select {
		case <-ctx.Done():
			// What was published is deleted still, briefly: else it is
			// published again after its lease (harmless, but noise).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			for {
				select {
				case ids := <-r.deletes:
					pending = append(pending, ids...)
					continue
				default:
				}
				break
			}
			flush(dctx)
			cancel()
			return
		case ids := <-r.deletes:
			if len(pending) == 0 {
				timer.Reset(deleteEvery)
			}
			pending = append(pending, ids...)
			if len(pending) >= 1024 {
				timer.Stop()
				flush(ctx)
			}
		case <-timer.C:
			flush(ctx)
		}
	}
}

// delete deletes published rows, in one round trip. Its commit does not
// wait for the flush of its WAL (synchronous_commit off, for this
// transaction only): a database crash that loses the delete leaves the rows
// to be published again after their lease, a duplicate the transitions
// absorb, as a crash between the confirm and the delete does. Waiting for
// the flush would buy nothing, and would queue one more fsync per delete
// beside the commits of the steps, which wait for theirs.
func (r *relay) delete(ctx context.Context, ids []int64) error {
	err := r.db.InTx(ctx, func(t *pgdb.Tx) error {
		t.Add(pgdb.Stmt{SQL: `SET LOCAL synchronous_commit = off`})
		t.Add(pgdb.Stmt{SQL: `DELETE FROM message_outbox WHERE id = ANY($1)`, Args: []any{ids}})
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %d published rows (they will be published again): %w", len(ids), err)
	}
	r.published.Add(uint64(len(ids)))
	return nil
}

// drain runs rounds until one leases less than a full batch.
func (r *relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := r.round(ctx)
		if err != nil {
			r.failures.Add(1)
			if ctx.Err() == nil {
				r.log.Warn("store: outbox relay: rows go again after their lease", slog.Any("error", err))
			}
			return
		}
		if n < r.cfg.Batch {
			return
		}
	}
}

type outboxRow struct {
	id       int64
	queue    string
	body     []byte
	priority int
	delay    time.Duration // what remains of the delay, counted from the commit
	since    *time.Time    // queue.SendParams.Since; nil: not set
}

// round leases up to Batch rows, publishes them and deletes them. It
// returns how many it leased.
func (r *relay) round(ctx context.Context) (int, error) {
	var rows []outboxRow
	pgRows, err := r.db.Pool.Query(ctx, `
		UPDATE message_outbox o SET lease_until = now() + $2 * interval '1 microsecond'
		WHERE o.id IN (SELECT id FROM message_outbox WHERE lease_until <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING o.id, o.queue_name, o.body, o.priority,
			GREATEST(0, o.delay_us - (extract(epoch FROM now() - o.created_at) * 1000000)::bigint), o.since`,
		r.cfg.Batch, r.cfg.Lease.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("lease rows: %w", err)
	}
	rows, err = pgx.CollectRows(pgRows, func(row pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		var us int64
		err := row.Scan(&o.id, &o.queue, &o.body, &o.priority, &us, &o.since)
		o.delay = time.Duration(us) * time.Microsecond
		return o, err
	})
	if err != nil {
		return 0, fmt.Errorf("lease rows: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	r.rounds.Add(1)
	slices.SortFunc(rows, func(a, b outboxRow) int { return cmp.Compare(a.id, b.id) })
	msgs := make([]*queue.SendParams, len(rows))
	ids := make([]int64, len(rows))
	for i, o := range rows {
		msgs[i] = &queue.SendParams{Queue: o.queue, Body: o.body, Delay: o.delay, Priority: o.priority}
		if o.since != nil {
			msgs[i].Since = *o.since
		}
		ids[i] = o.id
	}
	return len(rows), r.publishDelete(ctx, ids, msgs)
}

func (r *relay) publish(ctx context.Context, msgs []*queue.SendParams) error {
	if b, ok := r.cfg.Queue.(queue.BatchSender); ok {
		return b.MessageSendBatch(ctx, msgs)
	}
	var errs []error
	for _, m := range msgs {
		if _, err := r.cfg.Queue.MessageSend(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *relay) stats() OutboxStats {
	return OutboxStats{Published: r.published.Load(), Rounds: r.rounds.Load(), Failures: r.failures.Load(), Overflows: r.overflows.Load()}
}

// HasOutbox reports whether the store sends its messages through the
// outbox (Config.Outbox).
func (s *Store) HasOutbox() bool { return s.relay != nil }

// OutboxStats returns the counts of this store's relay; zero without an
// outbox.
func (s *Store) OutboxStats() OutboxStats {
	if s.relay == nil {
		return OutboxStats{}
	}
	return s.relay.stats()
}

// insertOutbox is the statement that writes a transaction's messages into
// the outbox, leased for lease by this process's relay, which publishes
// them when the transaction commits; their ids are appended to *ids.
func insertOutbox(msgs []*queue.SendParams, lease time.Duration, ids *[]int64) pgdb.Stmt {
	names, bodies, delays, prios := make([]string, len(msgs)), make([][]byte, len(msgs)), make([]int64, len(msgs)), make([]int32, len(msgs))
	sinces := make([]*time.Time, len(msgs))
	for i, m := range msgs {
		names[i], bodies[i], delays[i], prios[i] = m.Queue, m.Body, m.Delay.Microseconds(), int32(m.Priority)
		if bodies[i] == nil {
			bodies[i] = []byte{}
		}
		sinces[i] = queuepg.SinceArg(m)
	}
	return pgdb.Stmt{
		SQL: `INSERT INTO message_outbox (queue_name, body, delay_us, priority, lease_until, since)
			SELECT q, b, d, p, clock_timestamp() + $5 * interval '1 microsecond', si
			FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::integer[], $6::timestamptz[]) AS u(q, b, d, p, si)
			RETURNING id`,
		Args: []any{names, bodies, delays, prios, lease.Microseconds(), sinces},
		Query: func(rows pgx.Rows) error {
			got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			*ids = append(*ids, got...)
			return err
		},
		Err: func(err error) error { return fmt.Errorf("store: write the outbox: %w", err) },
	}
}

// relaySend writes p into the outbox with the commit, after checking that
// its queue exists (once per queue and process).
func (x *tx) relaySend(ctx context.Context, p *queue.SendParams) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, ok := x.s.known.Load(p.Queue); !ok {
		if c, ok := x.s.relay.cfg.Queue.(QueueChecker); ok {
			if err := c.QueueCheck(ctx, p.Queue); err != nil {
				return fmt.Errorf("store: message send: %w", err)
			}
		}
		x.s.known.Store(p.Queue, struct{}{})
	}
	x.relayed = append(x.relayed, &queue.SendParams{Queue: p.Queue, Body: p.Body, Delay: p.Delay, Priority: p.Priority, Since: p.Since})
	return nil
}
