package postgres

import (
	"crypto/md5"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/queue"
)

// queueFillfactor is the fillfactor of the queues' tables (newStmts); it
// must equal migration 0004's, which sets it on the tables made before.
const queueFillfactor = "45"

// maxIdent is PostgreSQL's longest identifier (NAMEDATALEN - 1).
const maxIdent = 63

// tableName is the table of a queue with the given prefix ("q_", "a_"): the
// prefix and the name, or, when that is longer than an identifier may be,
// the prefix, the name's start and a hash of the whole name.
func tableName(prefix, name string) string {
	if len(prefix)+len(name) <= maxIdent {
		return prefix + name
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	sum := fmt.Sprintf("_%08x", h.Sum32())
	return prefix + name[:maxIdent-len(prefix)-len(sum)] + sum
}

// sortIndexName is the claim-order index of a queue's table: "qs_" and the
// MD5 of the table's name, unique per table whatever the length of the name,
// as migration 0003 names it in SQL ('qs_' || md5(queue_table)).
func sortIndexName(table string) string {
	return fmt.Sprintf("qs_%x", md5.Sum([]byte(table)))
}

// stmts are the statements of one queue: its table names are part of the
// text, so each queue has its own, built once (Queue.stmts).
type stmts struct {
	name           string
	table, archive string // sanitized identifiers
	sortIndex      string // sanitized: the claim order's index

	create, createArchive          string
	createSortIndex                string
	upgrade                        string
	send, sendID                   string
	sendNotify                     string
	claim                          string
	sendMany                       string
	archiveMsgs, delete, deleteOne string
	nack, nackNotify               string
	extend                         string
	stats, depth                   string
	estimate                       string
	fire                           string
	purge                          string
}

func newStmts(name string) *stmts {
	s := &stmts{
		name:    name,
		table:   pgx.Identifier{tableName("q_", name)}.Sanitize(),
		archive: pgx.Identifier{tableName("a_", name)}.Sanitize(),
	}
	s.sortIndex = pgx.Identifier{sortIndexName(tableName("q_", name))}.Sanitize()
	f := func(format string) string { return fmt.Sprintf(format, s.table, s.archive) }
	// vt is when the message becomes visible (again); claimed tells a
	// claimed message from a delayed one while vt is in the future.
	// sort_at orders claims: the time the message became visible (or its
	// queue.SendParams.Since, if earlier) less its priority's worth of
	// waiting (queue.SortKey); it is set
	// once, at the send. A claim, a release or an extension changes no
	// indexed column, and writes a row of the same size (the columns it
	// changes have fixed widths): it is a HOT update, which adds no index
	// entry, when the row's page has room for the new version. Claims take
	// messages in their order, which is mostly the order of their rows, so
	// a claim of a batch rewrites most of a page at once, before a prune
	// can free anything: the page must hold two versions of each of its
	// rows, with its header and line pointers; 45 leaves that room with a
	// margin. At 70 only about 44 % of the claims were HOT, and the index
	// entries of the others were what claims scanned past
	// (docs/benchmarks.md, "Issue 9: the queues' claims as HOT updates").
	s.create = f(`CREATE TABLE IF NOT EXISTS %[1]s (
		msg_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		read_ct     integer     NOT NULL DEFAULT 0,
		enqueued_at timestamptz NOT NULL,
		vt          timestamptz NOT NULL,
		claimed     boolean     NOT NULL DEFAULT false,
		message     bytea       NOT NULL,
		priority    integer     NOT NULL DEFAULT 0,
		sort_at     timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00'
	) WITH (fillfactor = ` + queueFillfactor + `)`)
	// A table an older binary created after migration 0003 lacks the
	// columns: they are added, without a rewrite (constant defaults), and
	// without the table's lock when they exist. One an older binary created
	// after migration 0004 has their fillfactor, 70: it gets this one (for
	// the pages written from then on); a fillfactor an operator set is
	// left alone. SET (fillfactor) takes a lock that conflicts with
	// VACUUM and index builds, not with reads and writes; this statement
	// waits for it at most 2 s (or the session's lock_timeout, if lower)
	// and otherwise leaves the table as it is: the setting only saves
	// work, and another process's QueueEnsure sets it later. (The index
	// statement after it takes a SHARE lock on the table, as it always
	// has, which waits behind a VACUUM up to the session's lock_timeout.)
	s.upgrade = f(`DO $$
	DECLARE
		waited text := current_setting('lock_timeout');
	BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '%[1]s'::regclass AND attname = 'sort_at' AND NOT attisdropped) THEN
			ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0;
			ALTER TABLE %[1]s ADD COLUMN IF NOT EXISTS sort_at timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00';
		END IF;
		IF EXISTS (SELECT 1 FROM pg_class WHERE oid = '%[1]s'::regclass AND 'fillfactor=70' = ANY (reloptions)) THEN
			BEGIN
				IF waited::interval = interval '0' OR waited::interval > interval '2s' THEN
					PERFORM set_config('lock_timeout', '2s', true);
				END IF;
				ALTER TABLE %[1]s SET (fillfactor = ` + queueFillfactor + `);
			EXCEPTION WHEN lock_not_available THEN
				NULL;
			END;
			PERFORM set_config('lock_timeout', waited, true);
		END IF;
	END $$`)
	s.createSortIndex = fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (sort_at, msg_id)`, s.sortIndex, s.table)
	s.createArchive = f(`CREATE TABLE IF NOT EXISTS %[2]s (
		msg_id      bigint      PRIMARY KEY,
		read_ct     integer     NOT NULL,
		enqueued_at timestamptz NOT NULL,
		vt          timestamptz NOT NULL,
		message     bytea       NOT NULL,
		archived_at timestamptz NOT NULL
	)`)
	// Time comes from the database: each statement reads clock_timestamp()
	// once, in the CTE c, unless the queue has a test clock, whose time is
	// then the statement's first argument (NULL otherwise). A process whose
	// clock runs ahead of the others' therefore never claims a message
	// another still holds. Durations travel as microseconds.
	const c = `WITH c AS (SELECT coalesce($1::timestamptz, clock_timestamp()) AS now) `
	g := func(format string) string { return c + f(format) }
	// $2 is the delay, $4 the priority, $5 its offset (queue.PriorityOffset),
	// in microseconds, and $6 the message's queue.SendParams.Since (NULL
	// when not set): the sort key is queue.SortKey's.
	row := `c.now, c.now + $2::bigint * interval '1 microsecond', $3, $4::integer, ` +
		sortKeySQL(`c.now + $2::bigint * interval '1 microsecond'`, `$6::timestamptz`, `$5::bigint`)
	s.send = g(`INSERT INTO %[1]s (enqueued_at, vt, message, priority, sort_at) SELECT ` + row + ` FROM c`)
	s.sendMany = g(`INSERT INTO %[1]s (enqueued_at, vt, message, priority, sort_at)
		SELECT coalesce(e, c.now), coalesce(e, c.now) + d * interval '1 microsecond', m, p, ` +
		sortKeySQL(`coalesce(e, c.now) + d * interval '1 microsecond'`, `si`, `o`) + `
		FROM c, unnest($2::timestamptz[], $3::bigint[], $4::bytea[], $5::integer[], $6::bigint[], $7::timestamptz[]) WITH ORDINALITY AS u(e, d, m, p, o, si, n) ORDER BY n`)
	s.sendID = s.send + ` RETURNING msg_id`
	// The notification goes with the insert: PostgreSQL delivers it when
	// the transaction commits, and not at all if it rolls back.
	s.sendNotify = c + f(`, m AS (INSERT INTO %[1]s (enqueued_at, vt, message, priority, sort_at) SELECT `+row+` FROM c RETURNING msg_id)
		SELECT m.msg_id FROM m, pg_notify($7, $8)`)
	// The claim: the first visible messages in claim order (sort_at, on its
	// index), skipping those another transaction is claiming at this
	// instant (SKIP LOCKED), so concurrent claimers neither wait for each
	// other nor take the same message.
	s.claim = g(`UPDATE %[1]s SET vt = (SELECT now FROM c) + $2::bigint * interval '1 microsecond', read_ct = read_ct + 1, claimed = true
		WHERE msg_id IN (SELECT msg_id FROM %[1]s WHERE vt <= (SELECT now FROM c) ORDER BY sort_at, msg_id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING msg_id, read_ct, enqueued_at, message, vt, priority, sort_at`)
	// A receipt is (msg_id, read_ct): a message claimed again since has
	// another read_ct and is left alone. $2 and $3 are the receipts' ids and
	// read counts; "msg_id = ANY($2)" lets the planner use the primary key.
	s.archiveMsgs = g(`, d AS (
			DELETE FROM %[1]s WHERE msg_id = ANY($2) AND (msg_id, read_ct) IN (SELECT * FROM unnest($2::bigint[], $3::integer[]))
			RETURNING msg_id, read_ct, enqueued_at, vt, message)
		INSERT INTO %[2]s (msg_id, read_ct, enqueued_at, vt, message, archived_at)
		SELECT msg_id, read_ct, enqueued_at, vt, message, c.now FROM d, c`)
	s.delete = f(`DELETE FROM %[1]s WHERE msg_id = ANY($1) AND (msg_id, read_ct) IN (SELECT * FROM unnest($1::bigint[], $2::integer[]))`)
	// One receipt, the usual case one task at a time: PostgreSQL plans the
	// array form above at every bind (~0.18 ms on this machine, more than
	// its execution), while this one settles on its generic plan.
	s.deleteOne = f(`DELETE FROM %[1]s WHERE msg_id = $1 AND read_ct = $2`)
	const release = `UPDATE %[1]s SET vt = (SELECT now FROM c) + $4::bigint * interval '1 microsecond', claimed = false WHERE msg_id = $2 AND read_ct = $3`
	s.nack = g(release)
	s.nackNotify = g(`, u AS (` + release + ` RETURNING 1)
		SELECT pg_notify($5, $6) FROM u`)
	s.extend = g(`UPDATE %[1]s SET vt = (SELECT now FROM c) + $4::bigint * interval '1 microsecond' WHERE msg_id = $2 AND read_ct = $3`)
	s.stats = g(`SELECT count(*) FILTER (WHERE vt <= (SELECT now FROM c)),
			count(*) FILTER (WHERE vt > (SELECT now FROM c) AND claimed),
			count(*) FILTER (WHERE vt > (SELECT now FROM c) AND NOT claimed),
			min(enqueued_at),
			(SELECT count(*) FROM %[2]s),
			(SELECT now FROM c)
		FROM %[1]s`)
	s.depth = g(`SELECT count(*) FROM %[1]s WHERE vt <= (SELECT now FROM c)`)
	// The live rows as the statistics count them, plus the inserts they
	// have not counted yet: each backend reports its counts about once a
	// second, but every insert takes a value of the identity's sequence
	// at once, so the sequence's last value less the inserts counted
	// covers them. No row is read. Deletes not counted yet only make it
	// more; after the statistics were reset (a crash of the server) it
	// counts every message ever sent, and admission counts the rows. $1 is
	// the table's name, quoted.
	s.estimate = `SELECT pg_stat_get_live_tuples(c.oid) + greatest(coalesce(
			pg_sequence_last_value(pg_get_serial_sequence($1, 'msg_id')::regclass), 0) - pg_stat_get_tuples_inserted(c.oid), 0)
		FROM pg_class c WHERE c.oid = $1::regclass`
	// When a delay runs out: wake the other processes and find how long
	// until the next delayed message falls due, in microseconds.
	s.fire = g(`SELECT (SELECT (extract(epoch FROM min(vt) - (SELECT now FROM c)) * 1000000)::bigint FROM %[1]s WHERE vt > (SELECT now FROM c) AND NOT claimed) FROM pg_notify($2, $3)`)
	s.purge = f(`DELETE FROM %[2]s WHERE archived_at < $1`)
	return s
}

// sortKeySQL is queue.SortKey in SQL: the earlier of the visibility vt and
// since (NULL: not set; LEAST and GREATEST pass over NULLs), less offset
// microseconds, and no more than queue.MaxPriorityBoost before vt.
func sortKeySQL(vt, since, offset string) string {
	return fmt.Sprintf(`GREATEST(LEAST(%[1]s, %[2]s) - %[3]s * interval '1 microsecond', %[1]s - %[4]d * interval '1 microsecond')`,
		vt, since, offset, queue.MaxPriorityBoost.Microseconds())
}
