package postgres

import (
	"fmt"
	"strings"
	"time"
)

// poll is the fallback for wake-ups that never come: every PollInterval it
// asks, in one statement, which of the queues this process subscribes to
// hold a visible message, and signals their subscribers. Notifications are
// lost while the listener reconnects, behind a connection pooler in
// transaction mode, and never sent for a claim that expires because its
// process died; this finds all of them at a cost of one statement per
// interval per process, however many queues and consumers it has.
func (q *Queue) poll() {
	defer q.wg.Done()
	t := time.NewTicker(q.cfg.PollInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		err := q.pollOnce()
		switch {
		case err != nil && q.errClosed(err):
			return
		case err != nil && !failing:
			// Once per outage: the listener and the consumers report the
			// rest.
			q.logger.Warn("queue: poll for visible messages failed; trying again at each interval", "interval", q.cfg.PollInterval, "err", err)
		case err == nil && failing:
			q.logger.Info("queue: poll for visible messages works again")
		}
		failing = err != nil
	}
}

// pollOnce signals the subscribed queues that have a visible message.
func (q *Queue) pollOnce() error {
	var names []string
	for _, n := range q.demux.names() {
		if q.Known(n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	q.polls.Add(1)
	sql, args := visibleSQL(q, names)
	rows, err := q.db.Pool.Query(q.ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		q.pollWakeups.Add(1)
		q.demux.signal(name)
	}
	return rows.Err()
}

// visibleSQL is one statement that returns the names of the queues among
// names with a message visible now.
func visibleSQL(q *Queue, names []string) (string, []any) {
	var b strings.Builder
	b.WriteString("WITH c AS (SELECT coalesce($1::timestamptz, clock_timestamp()) AS now) ")
	args := []any{q.now()}
	for i, n := range names {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		args = append(args, n)
		fmt.Fprintf(&b, "SELECT $%d::text WHERE EXISTS (SELECT 1 FROM %s WHERE vt <= (SELECT now FROM c))", len(args), q.stmtsOf(n).table)
	}
	return b.String(), args
}
