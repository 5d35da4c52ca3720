// Package postgres is the PostgreSQL queue provider: PGMQ's semantics on
// plain tables, one table per queue (q_<name>) and one for its archive
// (a_<name>), in the database and schema of the store, so that the store
// sends, claims and acknowledges messages in its own transactions.
//
// Claims take the oldest visible messages with FOR UPDATE SKIP LOCKED, so
// any number of processes claim from one queue without waiting for each
// other. Wake-ups cross processes: a send notifies (NOTIFY) in its
// transaction, and each process listens on one dedicated connection and
// fans the notifications out to its subscribers. Every time that decides a
// claim is the database's (clock_timestamp()), never a process's clock,
// unless a test injects Config.TestClock. See docs/postgres.md.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the queue's schema migrations, component "queue".
var Migrations = func() fs.FS {
	f, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return f
}()

// Component is the queue's name in schema_migrations.
const Component = "queue"

// Config configures the queue. The zero value of each field but URL means
// its default.
type Config struct {
	// URL is the database, for Open (see pgdb.Options.URL); New ignores it.
	URL    string
	Logger *slog.Logger
	// TestClock, when set, gives every enqueue and visibility time instead
	// of the database. It is for tests that drive time by hand: in
	// production it stays nil, so that time that decides claims comes from
	// the database (clock_timestamp()) and a process whose clock is wrong
	// cannot claim a message another process holds. The engine's own clock
	// (transition times) is never used here.
	TestClock taskertype.Clock
	// AutoMigrate applies the queue's migrations when the queue opens.
	// Without it, a database that lacks them is an error that says to run
	// `tasker migrate`.
	AutoMigrate bool
	// ArchiveOnAck moves acknowledged messages to the queue's archive
	// table, as PGMQ's archive does, instead of deleting them; whoever sets
	// it bounds the archive with ArchivePurge. Default false: an
	// acknowledgement deletes, as queue.AckParams says. The engine never
	// sets it: what a message did is in the transition log, and an archive
	// nobody purges grows without bound (it also cost a row written per
	// message: docs/benchmarks.md, "Burn-down").
	ArchiveOnAck bool
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// attempts to reconnect the listener. Defaults 100ms and 10s.
	ReconnectMin, ReconnectMax time.Duration
	// PollInterval is how often the queue looks for visible messages on
	// the queues this process subscribes to, in one statement for all of
	// them, and wakes their subscribers: the fallback for notifications
	// lost (a dropped listener, a connection pooler that breaks LISTEN)
	// and for claims that expired because their process died. Default 3s;
	// negative turns it off.
	PollInterval time.Duration
	// PriorityAging is the waiting one point of a message's priority is
	// worth in claim order (queue.SendParams.Priority): from
	// queue.MinPriorityAging to queue.MaxPriorityAging. Default
	// queue.DefaultPriorityAging.
	PriorityAging time.Duration
}

// Queue implements queue.Queue on PostgreSQL.
type Queue struct {
	db        *pgdb.DB
	ownsDB    bool
	testClock taskertype.Clock // nil: the database's clock
	aging     time.Duration    // Config.PriorityAging, defaulted
	logger    *slog.Logger
	cfg       Config
	channel   string // the notification channel of this schema's queues

	stmts sync.Map // queue name → *stmts
	known sync.Map // queue name → struct{}: the queue's tables exist

	demux    *demux
	listener listener
	timers   timers

	// Counted by the one goroutine that does each: the listener, the poll.
	notifications, reconnects, polls, pollWakeups atomic.Uint64

	closed atomic.Bool
	ctx    context.Context // cancelled by Close: the background work's
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines: listener, timer lookups
}

var (
	_ queue.Queue          = (*Queue)(nil)
	_ queue.WakeupReporter = (*Queue)(nil)
)

// WakeupStats implements queue.WakeupReporter.
func (q *Queue) WakeupStats() queue.WakeupStats {
	var s queue.WakeupStats
	s.Queues, s.Subscribers, s.Signals, s.Coalesced = q.demux.counts()
	s.Notifications, s.Reconnects = q.notifications.Load(), q.reconnects.Load()
	s.Polls, s.PollWakeups = q.polls.Load(), q.pollWakeups.Load()
	return s
}

// Open opens its own pool on cfg.URL and returns a queue that closes it on
// Close.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	db, err := pgdb.Open(ctx, pgdb.Options{URL: cfg.URL, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q, err := New(ctx, db, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	q.ownsDB = true
	return q, nil
}

// New returns a queue on a pool opened by someone else, typically the store;
// it applies or checks the queue's migrations (cfg.AutoMigrate). Close
// leaves the pool open.
func New(ctx context.Context, db *pgdb.DB, cfg Config) (*Queue, error) {
	if err := queue.CheckPriorityAging(cfg.PriorityAging); err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		if err := db.Migrate(ctx, Component, Migrations); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
	} else if err := db.CheckSchema(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var schema *string
	if err := db.Pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("queue: find the current schema: %w", err)
	}
	if schema == nil {
		return nil, fmt.Errorf("queue: database %s: no schema of the search_path exists: create one or fix search_path: %w", db.Where, taskertype.ErrInvalid)
	}
	q := &Queue{
		db:        db,
		testClock: cfg.TestClock,
		logger:    cmp.Or(cfg.Logger, db.Logger),
		cfg:       cfg,
		channel:   channelName(*schema),
		demux:     newDemux(),
		aging:     cmp.Or(cfg.PriorityAging, queue.DefaultPriorityAging),
	}
	q.cfg.ReconnectMin = cmp.Or(cfg.ReconnectMin, 100*time.Millisecond)
	q.cfg.ReconnectMax = max(cmp.Or(cfg.ReconnectMax, 10*time.Second), q.cfg.ReconnectMin)
	q.cfg.PollInterval = cmp.Or(cfg.PollInterval, 3*time.Second)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.timers.m = make(map[string]*delayTimer)
	// The listener connects before New returns, so that a subscriber never
	// misses a notification sent after it subscribed. If it cannot, it
	// keeps trying in the background, and wakes every subscriber once it
	// is connected.
	first := make(chan error, 1)
	q.wg.Add(1)
	go q.listener.run(q, first)
	select {
	case err := <-first:
		if err != nil {
			q.logger.Warn("queue: the listener cannot connect yet; consumers poll until it does", "err", err)
		}
	case <-ctx.Done():
		q.Close()
		return nil, fmt.Errorf("queue: start the listener: %w", ctx.Err())
	}
	if q.cfg.PollInterval > 0 {
		q.wg.Add(1)
		go q.poll()
	}
	return q, nil
}

// channelName is the notification channel of the queues of a schema: the
// notifications of a database reach every listener of the channel, so the
// schema keeps the queues of two schemas apart.
func channelName(schema string) string {
	c := "tasker_" + schema
	if len(c) <= maxIdent {
		return c
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return fmt.Sprintf("tasker_%016x", h.Sum64())
}

// now is the time argument of the queue's statements: nil (NULL), so that
// the statement reads the database's clock, unless a test clock is set.
func (q *Queue) now() *time.Time {
	if q.testClock == nil {
		return nil
	}
	t := q.testClock.Now()
	return &t
}

// DB returns the pool the queue uses.
func (q *Queue) DB() *pgdb.DB { return q.db }

// Capabilities implements queue.Queue.
func (q *Queue) Capabilities() queue.Capabilities {
	return queue.Capabilities{Wakeups: true, CrossProcessWakeups: true, SharesStoreDatabase: true, PollsSubscribed: q.cfg.PollInterval > 0}
}

func (q *Queue) check(op string) error {
	if q.closed.Load() {
		return fmt.Errorf("queue: %s: %w", op, taskertype.ErrClosed)
	}
	return nil
}

func errNoQueue(op, name string) error {
	return fmt.Errorf("queue: %s: queue %q does not exist: call QueueEnsure first: %w", op, name, taskertype.ErrNotFound)
}

// stmtsOf returns the statements of a queue whose name was checked.
func (q *Queue) stmtsOf(name string) *stmts {
	if s, ok := q.stmts.Load(name); ok {
		return s.(*stmts)
	}
	s, _ := q.stmts.LoadOrStore(name, newStmts(name))
	return s.(*stmts)
}

// Known reports whether this process has seen the tables of queue name:
// it ensured the queue, or used it. Statements on a queue that is not known
// are preceded by a lookup (BatchLookup) in a transaction, where a missing
// table would abort the whole transaction.
func (q *Queue) Known(name string) bool {
	_, ok := q.known.Load(name)
	return ok
}

// ensureLock serializes QueueEnsure across processes: concurrent CREATE
// TABLE IF NOT EXISTS of one table can fail on the catalog's unique index.
const ensureLock = `SELECT pg_advisory_xact_lock(hashtext('tasker.queue:' || coalesce(current_schema(), '')))`

// QueueEnsure implements queue.Queue: it creates the queue's tables and
// registers the queue, in one round trip under an advisory lock. A queue
// this process already ensured costs nothing.
func (q *Queue) QueueEnsure(ctx context.Context, name string) error {
	const op = "ensure"
	if err := q.check(op); err != nil {
		return err
	}
	if err := queue.CheckName(op, name); err != nil {
		return err
	}
	if q.Known(name) {
		return nil
	}
	s := q.stmtsOf(name)
	err := q.db.InTx(ctx, func(t *pgdb.Tx) error {
		t.Add(pgdb.Stmt{SQL: ensureLock})
		t.Add(pgdb.Stmt{SQL: s.create})
		t.Add(pgdb.Stmt{SQL: s.upgrade})
		t.Add(pgdb.Stmt{SQL: s.createSortIndex})
		t.Add(pgdb.Stmt{SQL: s.createArchive})
		t.Add(pgdb.Stmt{SQL: `INSERT INTO tasker_queues (name, queue_table, archive_table, created_at) VALUES ($1, $2, $3, coalesce($4::timestamptz, clock_timestamp()))
			ON CONFLICT (name) DO NOTHING`,
			Args: []any{name, tableName("q_", name), tableName("a_", name), q.now()}})
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: ensure %q: %w", name, err)
	}
	q.known.Store(name, struct{}{})
	return nil
}

// bodyOf is never nil: pgx sends a nil slice as NULL.
func bodyOf(p *queue.SendParams) []byte {
	if p.Body == nil {
		return []byte{}
	}
	return p.Body
}

// SinceArg is p.Since as a statement's argument: nil (NULL) when not set,
// else a copy (the caller may reuse p). The send statements and the
// store's outbox take it.
func SinceArg(p *queue.SendParams) *time.Time {
	if p.Since.IsZero() {
		return nil
	}
	t := p.Since
	return &t
}

// sendArgs are the arguments of the send statements for p, then more.
func (q *Queue) sendArgs(p *queue.SendParams, more ...any) []any {
	return append([]any{q.now(), p.Delay.Microseconds(), bodyOf(p), int32(p.Priority), queue.PriorityOffset(p.Priority, q.aging), SinceArg(p)}, more...)
}

// MessageSend implements queue.Queue: one statement, which also notifies the
// other processes when the message is visible at once.
func (q *Queue) MessageSend(ctx context.Context, p *queue.SendParams) (int64, error) {
	if err := q.check("send"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	s := q.stmtsOf(p.Queue)
	var row pgx.Row
	if p.Delay == 0 {
		row = q.db.Pool.QueryRow(ctx, s.sendNotify, q.sendArgs(p, q.channel, p.Queue)...)
	} else {
		row = q.db.Pool.QueryRow(ctx, s.sendID, q.sendArgs(p)...)
	}
	var id int64
	if err := row.Scan(&id); err != nil {
		if pgdb.IsUndefinedTable(err) {
			return 0, errNoQueue("send", p.Queue)
		}
		return 0, fmt.Errorf("queue: send to %q: %w", p.Queue, err)
	}
	q.known.Store(p.Queue, struct{}{})
	q.NotifySent(*p)
	return id, nil
}

// MessageClaim implements queue.Queue. Claiming from a queue that was never
// ensured returns no message.
func (q *Queue) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := q.check("claim"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	sql, args, scan := q.claimQuery(p)
	rows, err := q.db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, q.claimErr(p, err)
	}
	msgs, err := scan(rows)
	if err != nil {
		return nil, q.claimErr(p, err)
	}
	q.known.Store(p.Queue, struct{}{})
	return msgs, nil
}

func (q *Queue) claimErr(p *queue.ClaimParams, err error) error {
	if pgdb.IsUndefinedTable(err) {
		return nil
	}
	return fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
}

// claimQuery returns the claim statement of p, its arguments, and what
// reads its rows.
func (q *Queue) claimQuery(p *queue.ClaimParams) (string, []any, func(pgx.Rows) ([]*queue.Message, error)) {
	scan := func(rows pgx.Rows) ([]*queue.Message, error) {
		defer rows.Close()
		type claimed struct {
			m      *queue.Message
			sortAt time.Time
		}
		var (
			got    []claimed
			prio   int32
			sortAt time.Time
		)
		for rows.Next() {
			m := &queue.Message{Queue: p.Queue}
			if err := rows.Scan(&m.ID, &m.ReadCount, &m.EnqueuedAt, &m.Body, &m.VisibleAt, &prio, &sortAt); err != nil {
				return nil, err
			}
			m.EnqueuedAt, m.VisibleAt, m.Priority = m.EnqueuedAt.UTC(), m.VisibleAt.UTC(), int(prio)
			got = append(got, claimed{m, sortAt})
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		// RETURNING promises no order: the claim's is sort_at's.
		slices.SortFunc(got, func(a, b claimed) int {
			return cmp.Or(a.sortAt.Compare(b.sortAt), cmp.Compare(a.m.ID, b.m.ID))
		})
		msgs := make([]*queue.Message, len(got))
		for i, c := range got {
			msgs[i] = c.m
		}
		return msgs, nil
	}
	return q.stmtsOf(p.Queue).claim, []any{q.now(), p.VisibilityTimeout.Microseconds(), p.Max}, scan
}

func receiptArgs(rs []queue.Receipt) ([]int64, []int32) {
	ids := make([]int64, len(rs))
	reads := make([]int32, len(rs))
	for i, r := range rs {
		ids[i], reads[i] = r.ID, int32(r.ReadCount)
	}
	return ids, reads
}

// ackQuery returns the statement that acknowledges receipts: it deletes
// them, or archives them with Config.ArchiveOnAck.
func (q *Queue) ackQuery(name string, rs []queue.Receipt) (string, []any) {
	s := q.stmtsOf(name)
	if len(rs) == 1 && !q.cfg.ArchiveOnAck {
		return s.deleteOne, []any{rs[0].ID, int32(rs[0].ReadCount)}
	}
	ids, reads := receiptArgs(rs)
	if q.cfg.ArchiveOnAck {
		return s.archiveMsgs, []any{q.now(), ids, reads}
	}
	return s.delete, []any{ids, reads}
}

// MessageAck implements queue.Queue: the messages are deleted (moved to
// the queue's archive with Config.ArchiveOnAck), in one statement.
// Receipts that match no message are skipped.
func (q *Queue) MessageAck(ctx context.Context, p *queue.AckParams) error {
	if err := q.check("ack"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if len(p.Receipts) == 0 {
		return nil
	}
	sql, args := q.ackQuery(p.Queue, p.Receipts)
	if _, err := q.db.Pool.Exec(ctx, sql, args...); err != nil && !pgdb.IsUndefinedTable(err) {
		return fmt.Errorf("queue: ack on %q: %w", p.Queue, err)
	}
	return nil
}

// MessageNack implements queue.Queue. Releasing a message that no longer
// exists, or that was claimed again since, is an error wrapping
// taskertype.ErrNotFound.
func (q *Queue) MessageNack(ctx context.Context, p *queue.NackParams) error {
	if err := q.check("nack"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	s := q.stmtsOf(p.Queue)
	var (
		ct  pgconn.CommandTag
		err error
	)
	if p.Delay == 0 {
		ct, err = q.db.Pool.Exec(ctx, s.nackNotify, q.now(), p.Receipt.ID, p.Receipt.ReadCount, int64(0), q.channel, p.Queue)
	} else {
		ct, err = q.db.Pool.Exec(ctx, s.nack, q.now(), p.Receipt.ID, p.Receipt.ReadCount, p.Delay.Microseconds())
	}
	if err := updatedOne("nack", p.Queue, p.Receipt, ct, err); err != nil {
		return err
	}
	q.NotifySent(queue.SendParams{Queue: p.Queue, Delay: p.Delay})
	return nil
}

func updatedOne(op, name string, r queue.Receipt, ct pgconn.CommandTag, err error) error {
	if err != nil && !pgdb.IsUndefinedTable(err) {
		return fmt.Errorf("queue: %s message %d on %q: %w", op, r.ID, name, err)
	}
	if err != nil || ct.RowsAffected() == 0 {
		return fmt.Errorf("queue: %s: message %d (read %d times) on %q is gone or was claimed again: %w", op, r.ID, r.ReadCount, name, taskertype.ErrNotFound)
	}
	return nil
}

// MessageExtend implements queue.Queue. Extending a message that no longer
// exists, or that was claimed again since, is an error wrapping
// taskertype.ErrNotFound.
func (q *Queue) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	if err := q.check("extend"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	ct, err := q.db.Pool.Exec(ctx, q.stmtsOf(p.Queue).extend, q.now(), p.Receipt.ID, p.Receipt.ReadCount, p.VisibilityTimeout.Microseconds())
	return updatedOne("extend", p.Queue, p.Receipt, ct, err)
}

// MessageArchive implements queue.Queue: one statement moves the messages
// to the archive. Receipts that match no message are skipped.
func (q *Queue) MessageArchive(ctx context.Context, p *queue.ArchiveParams) error {
	if err := q.check("archive"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if len(p.Receipts) == 0 {
		return nil
	}
	ids, reads := receiptArgs(p.Receipts)
	if _, err := q.db.Pool.Exec(ctx, q.stmtsOf(p.Queue).archiveMsgs, q.now(), ids, reads); err != nil && !pgdb.IsUndefinedTable(err) {
		return fmt.Errorf("queue: archive on %q: %w", p.Queue, err)
	}
	return nil
}

// ArchivePurge deletes the messages archived before a time from a queue's
// archive, and returns how many. A program that archives (MessageArchive,
// or acknowledgements with Config.ArchiveOnAck) calls it now and then to
// bound the archive.
func (q *Queue) ArchivePurge(ctx context.Context, name string, before time.Time) (int64, error) {
	if err := q.check("archive purge"); err != nil {
		return 0, err
	}
	if err := queue.CheckName("archive purge", name); err != nil {
		return 0, err
	}
	ct, err := q.db.Pool.Exec(ctx, q.stmtsOf(name).purge, before)
	if pgdb.IsUndefinedTable(err) {
		return 0, errNoQueue("archive purge", name)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: archive purge of %q: %w", name, err)
	}
	return ct.RowsAffected(), nil
}

// QueueStats implements queue.Queue, in one statement. Stats of a queue that
// was never ensured are an error wrapping taskertype.ErrNotFound. Archived
// counts acknowledged messages too with Config.ArchiveOnAck.
func (q *Queue) QueueStats(ctx context.Context, name string) (*queue.Stats, error) {
	if err := q.check("stats"); err != nil {
		return nil, err
	}
	if err := queue.CheckName("stats", name); err != nil {
		return nil, err
	}
	s := &queue.Stats{Queue: name}
	var oldest *time.Time
	var now time.Time // the database's, or the test clock's
	err := q.db.Pool.QueryRow(ctx, q.stmtsOf(name).stats, q.now()).Scan(&s.Visible, &s.Claimed, &s.Delayed, &oldest, &s.Archived, &now)
	if pgdb.IsUndefinedTable(err) {
		return nil, fmt.Errorf("queue: stats: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: stats of %q: %w", name, err)
	}
	if oldest != nil {
		s.OldestAge = max(now.Sub(*oldest), 0)
	}
	return s, nil
}

// QueueDepth implements queue.Queue, in one statement on the live table.
// The depth of a queue that was never ensured is an error wrapping
// taskertype.ErrNotFound.
func (q *Queue) QueueDepth(ctx context.Context, name string) (int64, error) {
	if err := q.check("depth"); err != nil {
		return 0, err
	}
	if err := queue.CheckName("depth", name); err != nil {
		return 0, err
	}
	var n int64
	err := q.db.Pool.QueryRow(ctx, q.stmtsOf(name).depth, q.now()).Scan(&n)
	if pgdb.IsUndefinedTable(err) {
		return 0, fmt.Errorf("queue: depth: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: depth of %q: %w", name, err)
	}
	return n, nil
}

// QueueDepthEstimate implements queue.DepthEstimator from the table's
// statistics and its identity sequence, without reading a row: the live
// messages (visible, claimed and delayed) as the statistics last counted
// them, plus the messages sent since that the statistics have not counted
// yet. It is never below the live messages; the deletes the statistics
// have not counted yet make it more, and so does a reset of the statistics
// (a crash of the server). A count(*) reads every row version, dead ones
// included, which costs milliseconds on a busy, unvacuumed queue table.
func (q *Queue) QueueDepthEstimate(ctx context.Context, name string) (int64, error) {
	if err := q.check("depth estimate"); err != nil {
		return 0, err
	}
	if err := queue.CheckName("depth estimate", name); err != nil {
		return 0, err
	}
	s := q.stmtsOf(name)
	var n int64
	err := q.db.Pool.QueryRow(ctx, s.estimate, s.table).Scan(&n)
	if pgdb.IsUndefinedTable(err) {
		return 0, fmt.Errorf("queue: depth estimate: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: depth estimate of %q: %w", name, err)
	}
	return max(n, 0), nil
}

// Close stops the listener and the delay timers and, when the queue opened
// its own pool, closes it. It may be called more than once.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	q.cancel()
	q.timers.stop()
	q.wg.Wait()
	if q.ownsDB {
		q.db.Close()
	}
	return nil
}

// errClosed reports whether err comes from the queue being closed.
func (q *Queue) errClosed(err error) bool {
	return q.closed.Load() || errors.Is(err, context.Canceled)
}
