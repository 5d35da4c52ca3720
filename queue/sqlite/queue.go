// Package sqlite is the embedded queue provider: queues and messages are rows
// of the SQLite database the store uses, so that the store can send a message
// in the same transaction as the state change it belongs to.
//
// Consumers in the same process are woken through Subscribe when a send
// commits, when a message is released without delay, and when a delay runs
// out. Other processes are not woken (Capabilities.CrossProcessWakeups is
// false); the process lock of internal/sqlitedb keeps them out anyway.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-go/tasker/internal/sqlitedb"
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

// Config configures the queue.
type Config struct {
	// Path is the database file, for Open; New ignores it.
	Path   string
	Logger *slog.Logger
	// Clock sets enqueue and visibility times; nil means the wall clock.
	Clock taskertype.Clock
	// PriorityAging is the waiting one point of a message's priority is
	// worth in claim order (queue.SendParams.Priority): from
	// queue.MinPriorityAging to queue.MaxPriorityAging. Default
	// queue.DefaultPriorityAging.
	PriorityAging time.Duration
	// InMemory picks the queues whose messages are kept in memory instead
	// of in rows (see mem.go); nil keeps every queue in rows. Their
	// messages live as long as the Queue: New deletes the rows they may
	// have from an earlier run, and the owner, whose records are the
	// truth these messages point at, gives them back with Restore before
	// anyone claims. The process lock of internal/sqlitedb makes this safe:
	// no other process shares them. A transaction that sends, claims or
	// acknowledges their messages (SendTx, ClaimTx, AckTx) must be a MemTx.
	InMemory func(name string) bool
}

// Queue implements queue.Queue on SQLite.
type Queue struct {
	db     *sqlitedb.DB
	ownsDB bool
	clock  taskertype.Clock
	aging  time.Duration // Config.PriorityAging, defaulted
	logger *slog.Logger
	closed atomic.Bool

	// Statements prepared once. The writer's are used as they are outside a
	// transaction and through tx.StmtContext inside one.
	ensure, send, sendNoID, claim, ackOne, ackMany, nack, extend *sql.Stmt
	archiveCopy, archiveDelete, release, nextDue                 *sql.Stmt
	stats                                                        *sql.Stmt
	depth                                                        *sql.Stmt
	dead                                                         deadLetterStmts
	// The statements of the queues kept in memory.
	memArchive, memDead, archived *sql.Stmt

	inMem func(string) bool // Config.InMemory
	mem   memQueues

	mu     sync.Mutex // guards the fields below; never held across a database call
	subs   map[string]map[*subscriber]struct{}
	timers map[string]*delayTimer // at most one per queue: the earliest due delay
	fires  sync.WaitGroup         // timer callbacks running
	done   bool                   // Close has begun: no new timers

	signals, coalesced uint64 // wake-ups delivered, and found pending already
}

type subscriber struct {
	ch chan struct{}
}

// delayTimer wakes the subscribers of a queue when its earliest delayed
// message falls due. due is in real time, as the timer is.
type delayTimer struct {
	timer *time.Timer
	due   time.Time
}

var (
	_ queue.Queue          = (*Queue)(nil)
	_ queue.WakeupReporter = (*Queue)(nil)
)

// Open opens the database at cfg.Path on its own (process lock, pragmas,
// migrations) and returns a queue that closes it on Close.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	db, err := sqlitedb.Open(ctx, sqlitedb.Options{Path: cfg.Path, Logger: cfg.Logger})
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

// New returns a queue on a database opened by someone else, typically the
// store; it applies the queue's migrations. Close leaves the database open.
func New(ctx context.Context, db *sqlitedb.DB, cfg Config) (*Queue, error) {
	if err := queue.CheckPriorityAging(cfg.PriorityAging); err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q := &Queue{
		db:     db,
		clock:  cfg.Clock,
		aging:  cmp.Or(cfg.PriorityAging, queue.DefaultPriorityAging),
		logger: cfg.Logger,
		subs:   make(map[string]map[*subscriber]struct{}),
		timers: make(map[string]*delayTimer),
		inMem:  cfg.InMemory,
		mem:    memQueues{queues: make(map[string]*memQueue)},
	}
	if q.clock == nil {
		q.clock = taskertype.SystemClock{}
	}
	if q.logger == nil {
		q.logger = db.Logger
	}
	p := db.Preparer(ctx)
	q.ensure = p.W(`INSERT INTO queue_queues (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING`)
	// One statement checks that the queue exists and inserts: no row back
	// means the queue was never ensured.
	// ?5 is the priority, ?6 the sort key (queue.SortKey of the visibility
	// ?4).
	q.send = p.W(`INSERT INTO queue_messages (queue, body, read_ct, enqueued_at, vt, claimed, priority, sort_at)
		SELECT ?1, ?2, 0, ?3, ?4, 0, ?5, ?6 WHERE EXISTS (SELECT 1 FROM queue_queues WHERE name = ?1)
		RETURNING id`)
	q.sendNoID = p.W(`INSERT INTO queue_messages (queue, body, read_ct, enqueued_at, vt, claimed, priority, sort_at)
		SELECT ?1, ?2, 0, ?3, ?4, 0, ?5, ?6 WHERE EXISTS (SELECT 1 FROM queue_queues WHERE name = ?1)`)
	// The claim takes up to ?4 messages in claim order
	// (queue.SortKey: by the time they became visible or their Since, less
	// their priority's worth of waiting) from two walks of ?4 at most: the
	// messages not claimed, on queue_messages_ready in claim order (the
	// delayed ones it passes over are told apart by the vt it holds), and
	// the claims that expired, at the start of queue_messages_held. Neither
	// reads more than it takes, plus the delayed messages that sort ahead:
	// the cost of a claim does not grow with the backlog nor with the
	// messages in flight (migration 0003).
	// The limit is written (?4 + 0), not ?4: this SQLite is built with STAT4,
	// whose planner looks at a bare LIMIT parameter and so recompiles the
	// statement whenever the limit changes (measured: 95µs a claim instead
	// of 35µs when claims alternate between limits).
	q.claim = p.W(`UPDATE queue_messages SET vt = ?1, read_ct = read_ct + 1, claimed = 1
		WHERE id IN (SELECT id FROM (
				SELECT id, sort_at, vt FROM (SELECT id, sort_at, vt FROM queue_messages INDEXED BY queue_messages_ready
					WHERE queue = ?2 AND claimed = 0 AND vt <= ?3 ORDER BY sort_at, vt, id LIMIT (?4 + 0))
				UNION ALL
				SELECT id, sort_at, vt FROM (SELECT id, sort_at, vt FROM queue_messages INDEXED BY queue_messages_held
					WHERE queue = ?2 AND claimed = 1 AND vt <= ?3 ORDER BY vt LIMIT (?4 + 0)))
			ORDER BY sort_at, vt, id LIMIT (?4 + 0))
		RETURNING id, body, read_ct, enqueued_at, priority, sort_at`)
	// "+queue" keeps the planner from walking the queue's index: the ids
	// find the rows through the primary key, whatever the backlog.
	// A receipt is (id, read_ct): a message claimed again since has another
	// read_ct and is left alone. ?2 of the many-message forms is a JSON array
	// of [id, read_ct] pairs, so one statement serves any number.
	q.ackOne = p.W(`DELETE FROM queue_messages WHERE id = ?2 AND read_ct = ?3 AND +queue = ?1`)
	q.ackMany = p.W(`DELETE FROM queue_messages WHERE +queue = ?1
		AND id IN (SELECT json_extract(value, '$[0]') FROM json_each(?2))
		AND (id, read_ct) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2))`)
	q.nack = p.W(`UPDATE queue_messages SET vt = ?3, claimed = 0 WHERE id = ?2 AND read_ct = ?4 AND +queue = ?1`)
	q.extend = p.W(`UPDATE queue_messages SET vt = ?3 WHERE id = ?2 AND read_ct = ?4 AND +queue = ?1`)
	q.archiveCopy = p.W(`INSERT INTO queue_archive (id, queue, body, read_ct, enqueued_at, vt, archived_at)
		SELECT id, queue, body, read_ct, enqueued_at, vt, ?3 FROM queue_messages WHERE +queue = ?1
		AND id IN (SELECT json_extract(value, '$[0]') FROM json_each(?2))
		AND (id, read_ct) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2))`)
	q.archiveDelete = p.W(`DELETE FROM queue_messages WHERE +queue = ?1
		AND id IN (SELECT json_extract(value, '$[0]') FROM json_each(?2))
		AND (id, read_ct) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2))`)
	q.release = p.W(`UPDATE queue_messages SET vt = ?1, claimed = 0 WHERE claimed = 1 AND vt > ?1 RETURNING queue`)
	// The next delayed message: a walk of the queue's messages not claimed
	// (the index holds vt); it runs when a delay timer fires.
	q.nextDue = p.R(`SELECT MIN(vt) FROM queue_messages INDEXED BY queue_messages_ready WHERE queue = ?1 AND claimed = 0 AND vt > ?2`)
	q.stats = p.R(`SELECT m.visible, m.claimed, m.delayed, m.oldest,
			(SELECT COUNT(*) FROM queue_archive a WHERE a.queue = ?1)
		FROM queue_queues q, (
			SELECT COALESCE(SUM(vt <= ?2), 0) AS visible,
				COALESCE(SUM(vt > ?2 AND claimed = 1), 0) AS claimed,
				COALESCE(SUM(vt > ?2 AND claimed = 0), 0) AS delayed,
				MIN(enqueued_at) AS oldest
			FROM queue_messages WHERE queue = ?1) m
		WHERE q.name = ?1`)
	q.depth = p.R(`SELECT (SELECT COUNT(*) FROM queue_messages WHERE queue = ?1 AND vt <= ?2)
		FROM queue_queues WHERE name = ?1`)
	q.prepareDeadLetters(p)
	// The archive of a message kept in memory takes an id of its own
	// (NULL): a message's id is unique among the queue's messages of one
	// run only.
	q.memArchive = p.W(`INSERT INTO queue_archive (id, queue, body, read_ct, enqueued_at, vt, archived_at)
		VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6)`)
	q.memDead = p.W(`INSERT INTO queue_dead_letters (queue, msg_id, body, read_ct, enqueued_at, dead_at, reason, priority)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`)
	q.archived = p.R(`SELECT COUNT(*) FROM queue_archive WHERE queue = ?1`)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := q.openMem(ctx); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := q.armPending(ctx); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return q, nil
}

// DB returns the database the queue uses.
func (q *Queue) DB() *sqlitedb.DB { return q.db }

// Capabilities implements queue.Queue.
func (q *Queue) Capabilities() queue.Capabilities {
	return queue.Capabilities{Wakeups: true, CrossProcessWakeups: false, SharesStoreDatabase: true}
}

func (q *Queue) check(op string) error {
	if q.closed.Load() {
		return fmt.Errorf("queue: %s: %w", op, taskertype.ErrClosed)
	}
	return nil
}

// QueueEnsure implements queue.Queue.
func (q *Queue) QueueEnsure(ctx context.Context, name string) error {
	if err := q.check("ensure"); err != nil {
		return err
	}
	if err := queue.CheckName("ensure", name); err != nil {
		return err
	}
	if _, err := q.ensure.ExecContext(ctx, name, sqlitedb.Micros(q.clock.Now())); err != nil {
		return fmt.Errorf("queue: ensure %q: %w", name, err)
	}
	if q.inMemory(name) {
		q.mem.ensure(name)
	}
	return nil
}

// MessageSend implements queue.Queue.
func (q *Queue) MessageSend(ctx context.Context, p *queue.SendParams) (int64, error) {
	if err := q.check("send"); err != nil {
		return 0, err
	}
	var (
		id  int64
		err error
	)
	if p != nil && q.inMemory(p.Queue) {
		id, err = q.memSend(p, nil)
	} else {
		id, err = q.sendWith(ctx, q.send, p)
	}
	if err != nil {
		return 0, err
	}
	q.NotifySent(*p)
	return id, nil
}

// Tx is a transaction on the queue's database, as the *Tx methods take it:
// a *sql.Tx, or a caller's wrapper of one that binds each prepared
// statement to it once and reuses it (the embedded store does: database/sql
// makes a new statement at every tx.StmtContext).
type Tx interface {
	StmtContext(ctx context.Context, st *sql.Stmt) *sql.Stmt
}

var _ Tx = (*sql.Tx)(nil)

// SendTx sends a message in the caller's transaction on the queue's database
// (the store's): it becomes visible when tx commits. After the commit, the
// caller passes the same params to NotifySent to wake the subscribers; after
// a rollback it passes nothing.
func (q *Queue) SendTx(ctx context.Context, tx Tx, p *queue.SendParams) (int64, error) {
	if err := q.check("send"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if q.inMemory(p.Queue) {
		tm, err := memTx(tx, "send")
		if err != nil {
			return 0, err
		}
		return q.memSend(p, tm)
	}
	// The store does not need the id: the statement without RETURNING
	// spares the driver a result set per message.
	now := q.clock.Now()
	res, err := tx.StmtContext(ctx, q.sendNoID).ExecContext(ctx, q.sendArgs(p, now)...)
	if err != nil {
		return 0, fmt.Errorf("queue: send to %q: %w", p.Queue, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return 0, errNoQueue(p.Queue)
	}
	return 0, nil
}

func errNoQueue(name string) error {
	return fmt.Errorf("queue: send: queue %q does not exist: call QueueEnsure first: %w", name, taskertype.ErrNotFound)
}

func bodyOf(p *queue.SendParams) []byte {
	if p.Body == nil {
		return []byte{}
	}
	return p.Body
}

// sendArgs are the arguments of the send statements for p sent at now.
func (q *Queue) sendArgs(p *queue.SendParams, now time.Time) []any {
	vt := sqlitedb.Micros(now.Add(p.Delay))
	return []any{p.Queue, bodyOf(p), sqlitedb.Micros(now), vt, p.Priority, queue.SortKey(vt, p.Since, p.Priority, q.aging)}
}

func (q *Queue) sendWith(ctx context.Context, st *sql.Stmt, p *queue.SendParams) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	now := q.clock.Now()
	var id int64
	err := st.QueryRowContext(ctx, q.sendArgs(p, now)...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errNoQueue(p.Queue)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: send to %q: %w", p.Queue, err)
	}
	return id, nil
}

// MessageClaim implements queue.Queue. Claiming from a queue that was never
// ensured returns no message.
func (q *Queue) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if p != nil && q.inMemory(p.Queue) {
		return q.memClaim(p, nil)
	}
	return q.claimWith(ctx, q.claim, p)
}

// ClaimTx claims messages in the caller's transaction on the queue's
// database (the store's): the claim holds only if tx commits.
func (q *Queue) ClaimTx(ctx context.Context, tx Tx, p *queue.ClaimParams) ([]*queue.Message, error) {
	if p != nil && q.inMemory(p.Queue) {
		tm, err := memTx(tx, "claim")
		if err != nil {
			return nil, err
		}
		return q.memClaim(p, tm)
	}
	return q.claimWith(ctx, tx.StmtContext(ctx, q.claim), p)
}

func (q *Queue) claimWith(ctx context.Context, st *sql.Stmt, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := q.check("claim"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	now := q.clock.Now()
	vt := now.Add(p.VisibilityTimeout)
	rows, err := st.QueryContext(ctx, sqlitedb.Micros(vt), p.Queue, sqlitedb.Micros(now), p.Max)
	if err != nil {
		return nil, fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
	}
	defer rows.Close()
	visibleAt := sqlitedb.Time(sqlitedb.Micros(vt))
	type claimed struct {
		m      *queue.Message
		sortAt int64
	}
	var got []claimed
	for rows.Next() {
		m := &queue.Message{Queue: p.Queue, VisibleAt: visibleAt}
		var enq, sortAt int64
		if err := rows.Scan(&m.ID, &m.Body, &m.ReadCount, &enq, &m.Priority, &sortAt); err != nil {
			return nil, fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
		}
		m.EnqueuedAt = sqlitedb.Time(enq)
		got = append(got, claimed{m, sortAt})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
	}
	// RETURNING does not promise an order: the claim's is sort_at's.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Or(cmp.Compare(a.sortAt, b.sortAt), cmp.Compare(a.m.ID, b.m.ID)) })
	msgs := make([]*queue.Message, len(got))
	for i, c := range got {
		msgs[i] = c.m
	}
	return msgs, nil
}

// MessageAck implements queue.Queue.
func (q *Queue) MessageAck(ctx context.Context, p *queue.AckParams) error {
	return q.ackWith(ctx, nil, p)
}

// AckTx acknowledges messages in the caller's transaction on the queue's
// database (the store's): they are gone only if tx commits.
func (q *Queue) AckTx(ctx context.Context, tx Tx, p *queue.AckParams) error {
	return q.ackWith(ctx, tx, p)
}

// ackWith deletes messages, in tx when it is not nil.
func (q *Queue) ackWith(ctx context.Context, tx Tx, p *queue.AckParams) error {
	stmt := func(st *sql.Stmt) *sql.Stmt {
		if tx != nil {
			return tx.StmtContext(ctx, st)
		}
		return st
	}
	if err := q.check("ack"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if q.inMemory(p.Queue) {
		return q.memAck(p, tx)
	}
	var err error
	switch len(p.Receipts) {
	case 0:
		return nil
	case 1:
		_, err = stmt(q.ackOne).ExecContext(ctx, p.Queue, p.Receipts[0].ID, p.Receipts[0].ReadCount)
	default:
		_, err = stmt(q.ackMany).ExecContext(ctx, p.Queue, receiptList(p.Receipts))
	}
	if err != nil {
		return fmt.Errorf("queue: ack on %q: %w", p.Queue, err)
	}
	return nil
}

// receiptList renders receipts as a JSON array of [id, read_ct] pairs, for
// json_each: one prepared statement serves any number of receipts.
func receiptList(rs []queue.Receipt) string {
	b := make([]byte, 0, 2+len(rs)*12)
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, r.ID, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(r.ReadCount), 10)
		b = append(b, ']')
	}
	return string(append(b, ']'))
}

// MessageNack implements queue.Queue. Releasing a message that no longer
// exists is an error wrapping taskertype.ErrNotFound.
func (q *Queue) MessageNack(ctx context.Context, p *queue.NackParams) error {
	if err := q.check("nack"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	vt := q.clock.Now().Add(p.Delay)
	if q.inMemory(p.Queue) {
		if err := q.memUpdate("nack", p.Queue, p.Receipt, vt, false); err != nil {
			return err
		}
		q.NotifySent(queue.SendParams{Queue: p.Queue, Delay: p.Delay})
		return nil
	}
	if err := q.updateOne(ctx, q.nack, "nack", p.Queue, p.Receipt, vt); err != nil {
		return err
	}
	q.NotifySent(queue.SendParams{Queue: p.Queue, Delay: p.Delay})
	return nil
}

// MessageExtend implements queue.Queue. Extending a message that no longer
// exists (acknowledged, or archived) is an error wrapping
// taskertype.ErrNotFound.
func (q *Queue) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	if err := q.check("extend"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	vt := q.clock.Now().Add(p.VisibilityTimeout)
	if q.inMemory(p.Queue) {
		return q.memUpdate("extend", p.Queue, p.Receipt, vt, true)
	}
	return q.updateOne(ctx, q.extend, "extend", p.Queue, p.Receipt, vt)
}

func (q *Queue) updateOne(ctx context.Context, st *sql.Stmt, op, name string, r queue.Receipt, vt time.Time) error {
	id := r.ID
	res, err := st.ExecContext(ctx, name, id, sqlitedb.Micros(vt), r.ReadCount)
	if err != nil {
		return fmt.Errorf("queue: %s message %d on %q: %w", op, id, name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("queue: %s message %d on %q: %w", op, id, name, err)
	}
	if n == 0 {
		return fmt.Errorf("queue: %s: message %d (read %d times) on %q is gone or was claimed again: %w", op, id, r.ReadCount, name, taskertype.ErrNotFound)
	}
	return nil
}

// MessageArchive implements queue.Queue. Archiving a message that no longer
// exists is not an error.
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
	if q.inMemory(p.Queue) {
		return q.memArchiveMsgs(ctx, p)
	}
	ids := receiptList(p.Receipts)
	now := sqlitedb.Micros(q.clock.Now())
	err := q.inWriteTx(ctx, func(tx Tx) error {
		if _, err := tx.StmtContext(ctx, q.archiveCopy).ExecContext(ctx, p.Queue, ids, now); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, q.archiveDelete).ExecContext(ctx, p.Queue, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("queue: archive on %q: %w", p.Queue, err)
	}
	return nil
}

// QueueStats implements queue.Queue. Stats of a queue that was never ensured
// are an error wrapping taskertype.ErrNotFound.
func (q *Queue) QueueStats(ctx context.Context, name string) (*queue.Stats, error) {
	if err := q.check("stats"); err != nil {
		return nil, err
	}
	if err := queue.CheckName("stats", name); err != nil {
		return nil, err
	}
	if q.inMemory(name) {
		return q.memStats(ctx, name)
	}
	now := q.clock.Now()
	s := &queue.Stats{Queue: name}
	var oldest sql.NullInt64
	err := q.stats.QueryRowContext(ctx, name, sqlitedb.Micros(now)).
		Scan(&s.Visible, &s.Claimed, &s.Delayed, &oldest, &s.Archived)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("queue: stats: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: stats of %q: %w", name, err)
	}
	if oldest.Valid {
		s.OldestAge = max(now.Sub(sqlitedb.Time(oldest.Int64)), 0)
	}
	return s, nil
}

// QueueDepth implements queue.Queue. The depth of a queue that was never
// ensured is an error wrapping taskertype.ErrNotFound.
func (q *Queue) QueueDepth(ctx context.Context, name string) (int64, error) {
	if err := q.check("depth"); err != nil {
		return 0, err
	}
	if err := queue.CheckName("depth", name); err != nil {
		return 0, err
	}
	if q.inMemory(name) {
		return q.memDepth(name)
	}
	var n int64
	err := q.depth.QueryRowContext(ctx, name, sqlitedb.Micros(q.clock.Now())).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("queue: depth: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("queue: depth of %q: %w", name, err)
	}
	return n, nil
}

// ReleaseClaims makes every claimed and unacknowledged message visible now,
// and returns how many there were. The embedded engine calls it at start-up:
// it holds the process lock, so the claims it finds belong to a process that
// is gone.
func (q *Queue) ReleaseClaims(ctx context.Context) (int, error) {
	if err := q.check("release claims"); err != nil {
		return 0, err
	}
	rows, err := q.release.QueryContext(ctx, sqlitedb.Micros(q.clock.Now()))
	if err != nil {
		return 0, fmt.Errorf("queue: release claims: %w", err)
	}
	defer rows.Close()
	n := 0
	var queues []queue.SendParams
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return n, fmt.Errorf("queue: release claims: %w", err)
		}
		n++
		if !slices.ContainsFunc(queues, func(p queue.SendParams) bool { return p.Queue == name }) {
			queues = append(queues, queue.SendParams{Queue: name})
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("queue: release claims: %w", err)
	}
	rows.Close()
	for _, name := range q.mem.releaseClaims(q.clock.Now()) {
		n++
		if !slices.ContainsFunc(queues, func(p queue.SendParams) bool { return p.Queue == name }) {
			queues = append(queues, queue.SendParams{Queue: name})
		}
	}
	q.NotifySent(queues...)
	if n > 0 {
		q.logger.Info("released the claims of a previous run", "messages", n)
	}
	return n, nil
}

// Close stops the delay timers and, when the queue opened its own database,
// closes it. It may be called more than once.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	q.mu.Lock()
	q.done = true
	for name, t := range q.timers {
		t.timer.Stop()
		delete(q.timers, name)
	}
	q.mu.Unlock()
	q.fires.Wait()
	if q.ownsDB {
		return q.db.Close()
	}
	return nil
}
