package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func pragma(t *testing.T, pool *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := pool.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenSetsPragmas(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "t.db"))
	for _, pool := range []struct {
		name string
		db   *sql.DB
	}{{"writer", db.W}, {"reader", db.R}} {
		for p, want := range map[string]string{
			"journal_mode": "wal", "synchronous": "1", "busy_timeout": "5000", "foreign_keys": "1", "temp_store": "2",
		} {
			if got := pragma(t, pool.db, p); got != want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", pool.name, p, got, want)
			}
		}
	}
	if got, want := pragma(t, db.W, "cache_size"), "-16384"; got != want {
		t.Errorf("writer: cache_size = %s, want %s", got, want)
	}
	if got, want := pragma(t, db.R, "cache_size"), "-8192"; got != want {
		t.Errorf("reader: cache_size = %s, want %s", got, want)
	}
	if got := pragma(t, db.R, "query_only"); got != "1" {
		t.Errorf("reader: query_only = %s, want 1", got)
	}
	if _, err := db.R.ExecContext(t.Context(), "CREATE TABLE x (a)"); err == nil {
		t.Error("the reader pool wrote")
	}
	if got := db.W.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool allows %d connections, want 1", got)
	}
	// The writer's transactions take the write lock at BEGIN: a second
	// writer (another handle) cannot begin until the first ends.
	tx, err := db.W.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", db.Path+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.BeginTx(t.Context(), nil); err == nil {
		t.Error("a second BEGIN IMMEDIATE succeeded while the writer held a transaction")
	}
	tx.Rollback()
}

func TestSynchronousFull(t *testing.T) {
	db, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "t.db"), Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := pragma(t, db.W, "synchronous"); got != "2" {
		t.Errorf("synchronous = %s, want 2 (FULL)", got)
	}
	if _, err := Open(t.Context(), Options{Path: filepath.Join(t.TempDir(), "u.db"), Synchronous: "sometimes"}); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("synchronous=sometimes: %v, want ErrInvalid", err)
	}
}

func TestProcessLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open(t.Context(), Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + ".lock")
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q (%v), want our pid %d", b, err, os.Getpid())
	}
	_, err = Open(t.Context(), Options{Path: path})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	for _, want := range []string{fmt.Sprint(os.Getpid()), path, "choose another --db path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A clean Close checkpoints the WAL into the database and removes it.
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("%s left behind after Close", path+suffix)
		}
	}
	// Released on Close.
	open(t, path)
}

func TestPathErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path string
		want       []string
	}{
		{"empty", "", []string{"empty"}},
		{"in-memory", ":memory:", []string{"file path"}},
		{"missing directory", filepath.Join(dir, "nope", "t.db"), []string{filepath.Join(dir, "nope"), "does not exist", "create it or choose another --db path"}},
		{"a directory", dir, []string{"is a directory", filepath.Join(dir, "tasker.db")}},
		{"parent is a file", filepath.Join(file, "t.db"), []string{"not a directory"}},
	} {
		_, err := Open(t.Context(), Options{Path: c.path})
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}

	if os.Geteuid() == 0 {
		t.Log("running as root, which may write anywhere: the unwritable directory case is skipped")
		return
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), Options{Path: filepath.Join(ro, "t.db")})
	if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("unwritable directory: %v, want ErrInvalid saying it is not writable", err)
	}
}

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "t.db")
	db := open(t, path)
	v1 := fstest.MapFS{
		"0001_init.sql": {Data: []byte("CREATE TABLE a (x INTEGER);\nCREATE INDEX a_x ON a (x);")},
		"README.md":     {Data: []byte("ignored")},
	}
	v2 := fstest.MapFS{
		"0001_init.sql":  v1["0001_init.sql"],
		"0002_more.sql":  {Data: []byte("ALTER TABLE a ADD COLUMN y TEXT;")},
		"sub/0003_x.sql": {Data: []byte("not applied: in a directory")},
	}
	for range 2 { // idempotent
		if err := db.Migrate(ctx, "comp", v1); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx, "comp", v2); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, "other", v1); err == nil {
		t.Error("another component re-creating table a succeeded")
	}
	if _, err := db.W.ExecContext(ctx, "INSERT INTO a (x, y) VALUES (1, 'y')"); err != nil {
		t.Fatalf("schema after two migrations: %v", err)
	}
	var n int
	if err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE component = 'comp'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("schema_migrations rows of comp: %d, %v; want 2", n, err)
	}

	// A binary that knows only version 1 meets a database at version 2.
	err := db.Migrate(ctx, "comp", v1)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Migrate with older migrations: %v, want ErrSchemaTooNew", err)
	}
	want := "database schema of component comp is at version 2, this binary knows up to 1: upgrade tasker"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

	// A failing migration changes nothing.
	bad := fstest.MapFS{
		"0001_init.sql": v1["0001_init.sql"],
		"0002_more.sql": v2["0002_more.sql"],
		"0003_bad.sql":  {Data: []byte("CREATE TABLE b (x); THIS IS NOT SQL;")},
	}
	if err := db.Migrate(ctx, "comp", bad); err == nil || !strings.Contains(err.Error(), "0003_bad") {
		t.Fatalf("a bad migration: %v, want an error naming it", err)
	}
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE b (x)"); err != nil {
		t.Errorf("the failed migration left table b behind: %v", err)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"a gap":       {"0001_a.sql": {Data: []byte("SELECT 1;")}, "0003_c.sql": {Data: []byte("SELECT 1;")}},
		"a bad name":  {"1_a.sql": {Data: []byte("SELECT 1;")}},
		"a duplicate": {"0001_a.sql": {Data: []byte("SELECT 1;")}, "0001_b.sql": {Data: []byte("SELECT 1;")}},
	} {
		if err := db.Migrate(ctx, "broken", fsys); err == nil {
			t.Errorf("migrations with %s were accepted", name)
		}
	}
}

func TestPreparerAndTimes(t *testing.T) {
	ctx := t.Context()
	db := open(t, filepath.Join(t.TempDir(), "t.db"))
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER, opt INTEGER, u TEXT UNIQUE)"); err != nil {
		t.Fatal(err)
	}
	p := db.Preparer(ctx)
	ins := p.W("INSERT INTO t (id, at, opt, u) VALUES (?, ?, ?, ?)")
	get := p.R("SELECT at, opt FROM t WHERE id = ?")
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if p.W("NOT SQL") != nil || p.Err() == nil {
		t.Fatal("a bad statement did not fail the Preparer")
	}

	at := time.Date(2025, 1, 2, 3, 4, 5, 6789000, time.FixedZone("x", 3600))
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.StmtContext(ctx, ins).ExecContext(ctx, 1, Micros(at), NullMicros(time.Time{}), "a"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.StmtContext(ctx, ins).ExecContext(ctx, 2, Micros(at), NullMicros(at), "a")
	if !IsUniqueViolation(err) {
		t.Errorf("duplicate unique value: %v, want a unique violation", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var (
		us  int64
		opt sql.NullInt64
	)
	if err := get.QueryRowContext(ctx, 1).Scan(&us, &opt); err != nil {
		t.Fatal(err)
	}
	if got := Time(us); !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("time read back as %v, want %v in UTC", got, at)
	}
	if opt.Valid || !NullTime(opt).IsZero() {
		t.Errorf("the zero time was stored as %v", opt)
	}
	if got := NullTime(sql.NullInt64{Int64: Micros(at), Valid: true}); !got.Equal(at) {
		t.Errorf("NullTime = %v, want %v", got, at)
	}
}

// BenchmarkCommit compares the cost of a small write transaction with
// synchronous=NORMAL (the default: no fsync at commit in WAL mode) and
// synchronous=FULL (an fsync of the WAL at every commit). The databases live
// in TASKER_BENCH_DIR if set, else in a temporary directory: put it on the
// disk the engine will use, as a tmpfs makes fsync free.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{SynchronousNormal, SynchronousFull} {
		b.Run("synchronous="+mode, func(b *testing.B) {
			dir := os.Getenv("TASKER_BENCH_DIR")
			if dir == "" {
				dir = b.TempDir()
			} else {
				var err error
				if dir, err = os.MkdirTemp(dir, "bench"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
			}
			ctx := b.Context()
			db, err := Open(ctx, Options{Path: filepath.Join(dir, "bench.db"), Synchronous: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)"); err != nil {
				b.Fatal(err)
			}
			p := db.Preparer(ctx)
			ins := p.W("INSERT INTO t (v) VALUES (?)")
			if err := p.Err(); err != nil {
				b.Fatal(err)
			}
			v := make([]byte, 200)
			for b.Loop() {
				tx, err := db.W.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.StmtContext(ctx, ins).ExecContext(ctx, v); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The checkpointer looks every checkpointBusy while the WAL changes and
// spaces its looks out, doubling up to checkpointIdle, once it stops.
func TestNextCheckpoint(t *testing.T) {
	wait := checkpointBusy
	var idle []time.Duration
	for range 5 {
		wait = nextCheckpoint(wait, false)
		idle = append(idle, wait)
	}
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}; !slices.Equal(idle, want) {
		t.Fatalf("waits while idle %v, want %v", idle, want)
	}
	if got := nextCheckpoint(checkpointIdle, true); got != checkpointBusy {
		t.Fatalf("wait after a change %v, want %v", got, checkpointBusy)
	}
}
