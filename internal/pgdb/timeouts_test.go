package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

func openWith(t *testing.T, opts pgdb.Options) *pgdb.DB {
	t.Helper()
	db, err := pgdb.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

func show(t *testing.T, db *pgdb.DB, setting string) string {
	t.Helper()
	var v string
	if err := db.Pool.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", setting, err)
	}
	return v
}

func TestSessionTimeoutSettings(t *testing.T) {
	_, dbURL := pgtest.Schema(t)
	for _, tc := range []struct {
		name  string
		opts  pgdb.Options
		wants map[string]string
	}{
		{"defaults", pgdb.Options{URL: dbURL}, map[string]string{
			"idle_in_transaction_session_timeout": "5s", "lock_timeout": "5s", "statement_timeout": "30s"}},
		{"options", pgdb.Options{URL: dbURL, Timeouts: pgdb.SessionTimeouts{IdleInTransaction: 1500 * time.Millisecond, Lock: -1, Statement: time.Minute}},
			map[string]string{"idle_in_transaction_session_timeout": "1500ms", "lock_timeout": "0", "statement_timeout": "1min"}},
		{"the URL's win", pgdb.Options{URL: dbURL + "&lock_timeout=123&statement_timeout=0", Timeouts: pgdb.SessionTimeouts{Lock: time.Second}},
			map[string]string{"idle_in_transaction_session_timeout": "5s", "lock_timeout": "123ms", "statement_timeout": "0"}},
	} {
		db := openWith(t, tc.opts)
		for k, want := range tc.wants {
			if got := show(t, db, k); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got, want)
			}
		}
	}
}

// A process paused in the middle of a transaction (SIGSTOP, a GC pause)
// holds its rows only until the idle-in-transaction timeout: then the
// others get them, and the paused process's transaction fails with an
// error that says it may be run again.
func TestPausedTransactionLetsGo(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := openWith(t, pgdb.Options{URL: dbURL, Timeouts: pgdb.SessionTimeouts{IdleInTransaction: 300 * time.Millisecond}})
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE t (x integer PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	paused, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer paused.Release()
	tx, err := paused.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT x FROM t WHERE x = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// The paused transaction does nothing more. Another takes the row as
	// soon as the server ends the paused one; without the timeout it would
	// wait until the deadline.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = db.InTx(wctx, func(t *pgdb.Tx) error {
		t.Add(pgdb.Stmt{SQL: `UPDATE t SET x = 2 WHERE x = 1`})
		return nil
	})
	if err != nil {
		t.Fatalf("the row a paused transaction held: %v", err)
	}
	// The paused process wakes up: its transaction is gone.
	_, err = tx.Exec(ctx, `UPDATE t SET x = 3`)
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err == nil || !pgdb.Retryable(err) {
		t.Errorf("the paused transaction after the timeout: %v (code %q), want a retryable error", err, pgdb.Code(err))
	}
	var x int
	if err := db.Pool.QueryRow(ctx, `SELECT x FROM t`).Scan(&x); err != nil || x != 2 {
		t.Errorf("x = %d (%v), want 2", x, err)
	}
}

// A wait for a lock ends at the lock timeout, with a retryable error: InTx
// runs the transaction again, MaxTxAttempts times at most.
func TestLockTimeoutIsRetried(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := openWith(t, pgdb.Options{URL: dbURL, Timeouts: pgdb.SessionTimeouts{Lock: 50 * time.Millisecond}})
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE t (x integer PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// A holder outside the pool, without timeouts.
	holder, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	htx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := htx.Exec(ctx, `SELECT x FROM t FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	runs := 0
	err = db.InTx(wctx, func(t *pgdb.Tx) error {
		runs++
		return t.Query(wctx, `SELECT x FROM t FOR UPDATE`, nil, func(rows pgx.Rows) error { return nil })
	})
	if pgdb.Code(err) != pgdb.CodeLockNotAvailable || !pgdb.Retryable(err) || runs != pgdb.MaxTxAttempts {
		t.Errorf("waiting on a held row: %v after %d runs, want lock_not_available after %d runs", err, runs, pgdb.MaxTxAttempts)
	}
	htx.Rollback(ctx)
	runs = 0
	err = db.InTx(ctx, func(t *pgdb.Tx) error {
		runs++
		return t.Query(ctx, `SELECT x FROM t FOR UPDATE`, nil, func(rows pgx.Rows) error { return nil })
	})
	if err != nil || runs != 1 {
		t.Errorf("once the row is free: %v after %d runs", err, runs)
	}
}

// A statement that runs past the statement timeout fails with a retryable
// error; one cancelled by its caller is not run again.
func TestStatementTimeout(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := openWith(t, pgdb.Options{URL: dbURL, Timeouts: pgdb.SessionTimeouts{Statement: 50 * time.Millisecond}})
	_, err := db.Pool.Exec(ctx, `SELECT pg_sleep(10)`)
	if pgdb.Code(err) != pgdb.CodeQueryCanceled || !pgdb.Retryable(err) {
		t.Errorf("a statement past the timeout: %v, want a retryable query_canceled", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	runs := 0
	err = db.InTx(cctx, func(t *pgdb.Tx) error {
		runs++
		cancel()
		t.Add(pgdb.Stmt{SQL: `SELECT 1`})
		return t.Send(cctx)
	})
	if err == nil || runs != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("a transaction whose caller went away: %v after %d runs, want context.Canceled after 1 run", err, runs)
	}
}
