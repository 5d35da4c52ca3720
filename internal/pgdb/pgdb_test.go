package pgdb_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, dbURL string) *pgdb.DB {
	t.Helper()
	db, err := pgdb.Open(t.Context(), pgdb.Options{URL: dbURL})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{
		"",
		"postgres://user:s3cret@localhost:notaport/db",
		"postgres://localhost:5432/db?sslmode=sometimes",
		"host=localhost port=x password=s3cret",
	} {
		_, err := pgdb.Open(t.Context(), pgdb.Options{URL: u})
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("Open(%q): %v, want an error wrapping ErrInvalid", u, err)
			continue
		}
		if !strings.Contains(err.Error(), "postgres://") {
			t.Errorf("Open(%q): %q does not show the form a URL takes", u, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): %q shows the password", u, err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	_, err := pgdb.Open(t.Context(), pgdb.Options{URL: "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the server at 127.0.0.1:1") || !strings.Contains(err.Error(), "running") {
		t.Fatalf("Open of a port nobody listens on: %v, want an error saying the server cannot be reached and what to check", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("%q shows the password", err)
	}
}

func TestOpenMissingDatabase(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Skipf("%s is not a URL: %v", pgtest.EnvURL, err)
	}
	u.Path = "/tasker_no_such_database"
	_, err = pgdb.Open(t.Context(), pgdb.Options{URL: u.String()})
	if err == nil || !strings.Contains(err.Error(), `database "tasker_no_such_database" does not exist`) || !strings.Contains(err.Error(), "CREATE DATABASE") {
		t.Fatalf("Open of a missing database: %v, want an error saying it does not exist and how to create it", err)
	}
}

var migrations = fstest.MapFS{
	"0001_create.sql": {Data: []byte("CREATE TABLE t (x integer);\nINSERT INTO t VALUES (1);")},
	"0002_more.sql":   {Data: []byte("INSERT INTO t VALUES (2);")},
	"README.txt":      {Data: []byte("not a migration")},
}

// TestMigrateOnceConcurrently: four processes (pools) start at once on an
// empty database; the migrations run once.
func TestMigrateOnceConcurrently(t *testing.T) {
	_, dbURL := pgtest.Schema(t)
	dbs := make([]*pgdb.DB, 4)
	for i := range dbs {
		dbs[i] = open(t, dbURL)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dbs))
	start := make(chan struct{})
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			errs[i] = db.Migrate(t.Context(), "test", migrations)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	var rows, versions int
	if err := dbs[0].Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM schema_migrations WHERE component = 'test')`).
		Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || versions != 2 {
		t.Fatalf("after 4 concurrent migrations: %d rows from the migrations, %d versions recorded; want 2 and 2", rows, versions)
	}
	if err := dbs[1].CheckSchema(t.Context(), "test", migrations); err != nil {
		t.Fatalf("CheckSchema after Migrate: %v", err)
	}
}

func TestSchemaVersions(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := open(t, dbURL)
	// Not migrated.
	err := db.CheckSchema(ctx, "test", migrations)
	if !errors.Is(err, pgdb.ErrNotMigrated) || !strings.Contains(err.Error(), "run `tasker migrate`") {
		t.Fatalf("CheckSchema of an empty database: %v, want ErrNotMigrated saying to run tasker migrate", err)
	}
	if err := db.Migrate(ctx, "test", migrations); err != nil {
		t.Fatal(err)
	}
	// Migrated by a newer binary.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('test', 3, 'future', now())`); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"Migrate":     func() error { return db.Migrate(ctx, "test", migrations) },
		"CheckSchema": func() error { return db.CheckSchema(ctx, "test", migrations) },
	} {
		if err := f(); !errors.Is(err, pgdb.ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade tasker") {
			t.Errorf("%s of a database at a newer version: %v, want ErrSchemaTooNew saying to upgrade", name, err)
		}
	}
	var rows int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("the refused migration changed the database: %d rows, %v", rows, err)
	}
	// Another component is not concerned.
	if err := db.CheckSchema(ctx, "other", fstest.MapFS{}); err != nil {
		t.Errorf("CheckSchema of a component without migrations: %v", err)
	}
}

func TestInTx(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := open(t, dbURL)
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE t (x integer)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Retried after a serialization failure; what a failed attempt wrote
	// is gone.
	runs := 0
	err := db.InTx(ctx, func(tx *pgdb.Tx) error {
		runs++
		tx.Add(pgdb.Stmt{SQL: `INSERT INTO t VALUES ($1)`, Args: []any{runs}})
		if runs == 1 {
			tx.Add(pgdb.Stmt{SQL: `DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'conflict'; END $$`})
			return tx.Send(ctx)
		}
		return nil
	})
	if err != nil || runs != 2 || count() != 1 {
		t.Fatalf("a transaction that failed to serialize once: %v after %d runs, %d rows; want success after 2 runs, 1 row", err, runs, count())
	}

	// fn's error is returned as it is, and nothing commits.
	boom := errors.New("boom")
	runs = 0
	err = db.InTx(ctx, func(tx *pgdb.Tx) error {
		runs++
		tx.Add(pgdb.Stmt{SQL: `INSERT INTO t VALUES (9)`})
		if err := tx.Send(ctx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || runs != 1 || count() != 1 {
		t.Fatalf("fn failing: %v after %d runs, %d rows", err, runs, count())
	}

	// A statement's error aborts the transaction; it is not retried.
	runs = 0
	err = db.InTx(ctx, func(tx *pgdb.Tx) error {
		runs++
		tx.Add(pgdb.Stmt{SQL: `INSERT INTO no_such_table VALUES (1)`})
		return nil
	})
	if !pgdb.IsUndefinedTable(err) || runs != 1 {
		t.Fatalf("a failing statement: %v after %d runs", err, runs)
	}

	// The connection went back to the pool outside any transaction.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO t VALUES (5)`); err != nil || count() != 2 {
		t.Fatalf("the pool after the failures: %v, %d rows", err, count())
	}
}

func TestRoundTripsAndPIDs(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := open(t, dbURL)
	before, stmts := db.RoundTrips(), db.Statements()
	err := db.InTx(ctx, func(tx *pgdb.Tx) error {
		for range 5 {
			tx.Add(pgdb.Stmt{SQL: `SELECT 1`})
		}
		var pid uint32
		if err := tx.Query(ctx, `SELECT pg_backend_pid()`, nil, func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&pid); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if !db.OwnsPID(pid) {
			t.Errorf("OwnsPID(%d) of a connection of the pool is false", pid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// BEGIN, five statements and the query; then the COMMIT.
	if n := db.RoundTrips() - before; n != 2 {
		t.Fatalf("a transaction of one batch and a commit counted %d round trips, want 2", n)
	}
	if n := db.Statements() - stmts; n != 8 {
		t.Fatalf("a transaction of BEGIN, six statements and COMMIT counted %d statements, want 8", n)
	}
	if db.OwnsPID(1) {
		t.Error("OwnsPID(1) is true")
	}
}

// TestArraysRoundTrip: the slices the store binds, written by the
// package's own encoders, come back from PostgreSQL as they were sent
// (times to the microsecond), NULL elements included.
func TestArraysRoundTrip(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db := open(t, dbURL)
	s := "ü \"q\" {b},\\"
	at := time.Date(1969, 12, 31, 23, 59, 59, 123_456_789, time.FixedZone("x", 3600))
	ids := []uuid.UUID{uuid.New(), uuid.Nil, uuid.New()}
	in := []any{ids, []string{"a", "", s}, []*string{nil, &s}, []time.Time{at, {}}, []*time.Time{&at, nil},
		[]int32{-1, 7}, []int64{1 << 40}, [][]byte{[]byte(`{"k":[1]}`), nil}, ids[0], at, []uuid.UUID{}}
	var (
		gotIDs, empty []uuid.UUID
		strs          []string
		ptrStrs       []*string
		times         []time.Time
		ptrTimes      []*time.Time
		i4            []int32
		i8            []int64
		js            []*string
		id            uuid.UUID
		one           time.Time
	)
	err := db.InTx(ctx, func(tx *pgdb.Tx) error {
		return tx.Query(ctx, `SELECT $1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
			$6::int4[], $7::int8[], $8::json[]::text[], $9::uuid, $10::timestamptz, $11::uuid[]`, in, func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&gotIDs, &strs, &ptrStrs, &times, &ptrTimes, &i4, &i8, &js, &id, &one, &empty); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	us := at.Truncate(time.Microsecond)
	switch {
	case !slices.Equal(gotIDs, ids) || id != ids[0] || empty == nil || len(empty) != 0:
		t.Errorf("ids: got %v, %v, %v", gotIDs, id, empty)
	case !slices.Equal(strs, []string{"a", "", s}) || len(ptrStrs) != 2 || ptrStrs[0] != nil || *ptrStrs[1] != s:
		t.Errorf("text: got %q, %v", strs, ptrStrs)
	case len(times) != 2 || !times[0].Equal(us) || !times[1].Equal(time.Time{}) || !one.Equal(us):
		t.Errorf("times: got %v, %v, want %v", times, one, us)
	case len(ptrTimes) != 2 || !ptrTimes[0].Equal(us) || ptrTimes[1] != nil:
		t.Errorf("nullable times: got %v", ptrTimes)
	case !slices.Equal(i4, []int32{-1, 7}) || !slices.Equal(i8, []int64{1 << 40}):
		t.Errorf("integers: got %v, %v", i4, i8)
	case len(js) != 2 || *js[0] != `{"k":[1]}` || js[1] != nil:
		t.Errorf("json: got %v", js)
	}
}
