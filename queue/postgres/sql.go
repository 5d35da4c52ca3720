package postgres

import (
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

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

// stmts are the statements of one queue: its table names are part of the
// text, so each queue has its own, built once (Queue.stmts).
type stmts struct {
	name           string
	table, archive string // sanitized identifiers

	create, createArchive string
	send, sendID          string
	sendNotify            string
	claim                 string
	sendMany              string
	archiveMsgs, delete   string
	nack, nackNotify      string
	extend                string
	stats, depth          string
	fire                  string
	purge                 string
}

func newStmts(name string) *stmts {
	s := &stmts{
		name:    name,
		table:   pgx.Identifier{tableName("q_", name)}.Sanitize(),
		archive: pgx.Identifier{tableName("a_", name)}.Sanitize(),
	}
	f := func(format string) string { return fmt.Sprintf(format, s.table, s.archive) }
	// vt is when the message becomes visible (again); claimed tells a
	// claimed message from a delayed one while vt is in the future.
	// fillfactor leaves room on each page so that a claim, a release or an
	// extension, which change no indexed column, is a HOT update.
	s.create = f(`CREATE TABLE IF NOT EXISTS %[1]s (
		msg_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		read_ct     integer     NOT NULL DEFAULT 0,
		enqueued_at timestamptz NOT NULL,
		vt          timestamptz NOT NULL,
		claimed     boolean     NOT NULL DEFAULT false,
		message     bytea       NOT NULL
	) WITH (fillfactor = 70)`)
	s.createArchive = f(`CREATE TABLE IF NOT EXISTS %[2]s (
		msg_id      bigint      PRIMARY KEY,
		read_ct     integer     NOT NULL,
		enqueued_at timestamptz NOT NULL,
		vt          timestamptz NOT NULL,
		message     bytea       NOT NULL,
		archived_at timestamptz NOT NULL
	)`)
	s.send = f(`INSERT INTO %[1]s (enqueued_at, vt, message) VALUES ($1, $2, $3)`)
	s.sendMany = f(`INSERT INTO %[1]s (enqueued_at, vt, message)
		SELECT e, v, m FROM unnest($1::timestamptz[], $2::timestamptz[], $3::bytea[]) WITH ORDINALITY AS u(e, v, m, n) ORDER BY n`)
	s.sendID = f(`INSERT INTO %[1]s (enqueued_at, vt, message) VALUES ($1, $2, $3) RETURNING msg_id`)
	// The notification goes with the insert: PostgreSQL delivers it when
	// the transaction commits, and not at all if it rolls back.
	s.sendNotify = f(`WITH m AS (INSERT INTO %[1]s (enqueued_at, vt, message) VALUES ($1, $2, $3) RETURNING msg_id)
		SELECT m.msg_id FROM m, pg_notify($4, $5)`)
	// The claim: the oldest visible messages, skipping those another
	// transaction is claiming at this instant (SKIP LOCKED), so concurrent
	// claimers neither wait for each other nor take the same message.
	s.claim = f(`UPDATE %[1]s SET vt = $1, read_ct = read_ct + 1, claimed = true
		WHERE msg_id IN (SELECT msg_id FROM %[1]s WHERE vt <= $2 ORDER BY msg_id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING msg_id, read_ct, enqueued_at, message`)
	// A receipt is (msg_id, read_ct): a message claimed again since has
	// another read_ct and is left alone. $1 and $2 are the receipts' ids and
	// read counts; "msg_id = ANY($1)" lets the planner use the primary key.
	s.archiveMsgs = f(`WITH d AS (
			DELETE FROM %[1]s WHERE msg_id = ANY($1) AND (msg_id, read_ct) IN (SELECT * FROM unnest($1::bigint[], $2::integer[]))
			RETURNING msg_id, read_ct, enqueued_at, vt, message)
		INSERT INTO %[2]s (msg_id, read_ct, enqueued_at, vt, message, archived_at)
		SELECT msg_id, read_ct, enqueued_at, vt, message, $3 FROM d`)
	s.delete = f(`DELETE FROM %[1]s WHERE msg_id = ANY($1) AND (msg_id, read_ct) IN (SELECT * FROM unnest($1::bigint[], $2::integer[]))`)
	s.nack = f(`UPDATE %[1]s SET vt = $3, claimed = false WHERE msg_id = $1 AND read_ct = $2`)
	s.nackNotify = f(`WITH u AS (UPDATE %[1]s SET vt = $3, claimed = false WHERE msg_id = $1 AND read_ct = $2 RETURNING 1)
		SELECT pg_notify($4, $5) FROM u`)
	s.extend = f(`UPDATE %[1]s SET vt = $3 WHERE msg_id = $1 AND read_ct = $2`)
	s.stats = f(`SELECT count(*) FILTER (WHERE vt <= $1),
			count(*) FILTER (WHERE vt > $1 AND claimed),
			count(*) FILTER (WHERE vt > $1 AND NOT claimed),
			min(enqueued_at),
			(SELECT count(*) FROM %[2]s)
		FROM %[1]s`)
	s.depth = f(`SELECT count(*) FROM %[1]s WHERE vt <= $1`)
	// When a delay runs out: wake the other processes and find the next
	// delayed message.
	s.fire = f(`SELECT (SELECT min(vt) FROM %[1]s WHERE vt > $1 AND NOT claimed) FROM pg_notify($2, $3)`)
	s.purge = f(`DELETE FROM %[2]s WHERE archived_at < $1`)
	return s
}
