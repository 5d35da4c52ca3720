// Package sqlitedb is the SQLite plumbing shared by the embedded store and
// queue: one database file opened as two pools (a single writer and a few
// query-only readers), a process lock beside it, versioned migrations per
// component, statements prepared once, and the conversions between Go values
// and the columns.
//
// It uses modernc.org/sqlite (pure Go) through database/sql, driver "sqlite".
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasker-go/tasker/taskertype"
)

// Sentinel errors of this package, besides taskertype.ErrInvalid for bad paths.
var (
	// ErrLocked: another process holds the database's process lock.
	ErrLocked = errors.New("database is in use by another process")
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// Synchronous values for Options.Synchronous.
const (
	SynchronousNormal = "NORMAL"
	SynchronousFull   = "FULL"
)

// readers is the size of the reader pool.
const readers = 4

// Options says which database to open and how.
type Options struct {
	// Path is the database file. Its directory must exist and be writable:
	// SQLite creates Path+"-wal" and Path+"-shm" beside it, and this package
	// Path+".lock".
	Path   string
	Logger *slog.Logger
	// Synchronous is the synchronous pragma, SynchronousNormal when empty.
	// SynchronousFull makes every commit durable against power loss at the
	// cost of an fsync per commit (see docs/sqlite.md).
	Synchronous string
}

// DB is an open database: W is the single writer connection, R the readers.
type DB struct {
	// W is the writer pool: one connection, transactions BEGIN IMMEDIATE.
	W *sql.DB
	// R is the reader pool: a few query-only connections that read the last
	// committed state without waiting for the writer (WAL).
	R *sql.DB
	// Path is the database file.
	Path   string
	Logger *slog.Logger

	lock *processLock

	ckpt     *sql.DB // the checkpointer's connection
	ckptStop context.CancelFunc
	ckptDone chan struct{}

	mu     sync.Mutex // guards stmts and closed, never held across a database call
	stmts  []*sql.Stmt
	closed bool
}

// Open checks the path, takes the process lock and opens both pools with the
// pragmas set on every connection. The caller runs its migrations next.
func Open(ctx context.Context, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = SynchronousNormal
	case SynchronousNormal, SynchronousFull:
	default:
		return nil, fmt.Errorf("open database %q: synchronous %q: want NORMAL or FULL: %w", opts.Path, opts.Synchronous, taskertype.ErrInvalid)
	}
	if err := checkPath(opts.Path); err != nil {
		return nil, err
	}
	lock, err := acquireLock(opts.Path)
	if err != nil {
		return nil, err
	}
	db := &DB{Path: opts.Path, Logger: logger, lock: lock}
	if err := db.open(ctx, syncMode); err != nil {
		db.closePools()
		lock.release()
		return nil, err
	}
	logger.Debug("sqlite database open", "path", opts.Path, "synchronous", syncMode)
	return db, nil
}

func (db *DB) open(ctx context.Context, syncMode string) error {
	w, err := sql.Open("sqlite", dsn(db.Path, roleWriter, syncMode))
	if err != nil {
		return fmt.Errorf("open database %q: %w", db.Path, err)
	}
	db.W = w
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer connects first, so that it is the one that turns WAL on.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("open database %q: %w", db.Path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("open database %q: journal mode is %q, not WAL: the file system may not support the shared memory WAL needs; put the database on a local disk", db.Path, mode)
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component  TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL,
		PRIMARY KEY (component, version)
	)`); err != nil {
		return fmt.Errorf("open database %q: create schema_migrations: %w", db.Path, err)
	}

	r, err := sql.Open("sqlite", dsn(db.Path, roleReader, syncMode))
	if err != nil {
		return fmt.Errorf("open database %q: %w", db.Path, err)
	}
	db.R = r
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		return fmt.Errorf("open database %q: reader: %w", db.Path, err)
	}
	return db.startCheckpointer(syncMode)
}

// Connection roles.
const (
	roleWriter = iota
	roleReader
	roleCheckpointer
)

// dsn builds the data source name of one pool. Every pragma is set on every
// new connection of the pool by the driver.
func dsn(path string, role int, syncMode string) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous("+syncMode+")")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Add("_pragma", "temp_store(MEMORY)")
	// 16 MiB of page cache for the writer, 8 MiB for each reader. (2 MiB
	// for the writer was measured, and not kept: docs/benchmarks.md,
	// "The writer's page cache".)
	switch role {
	case roleWriter:
		v.Add("_pragma", "cache_size(-16384)")
		v.Add("_pragma", "journal_size_limit(67108864)")
		v.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", autoCheckpointPages))
		v.Set("_txlock", "immediate")
	case roleReader:
		v.Add("_pragma", "cache_size(-8192)")
		v.Set("_query_only", "true")
	case roleCheckpointer:
		v.Add("_pragma", "cache_size(-2048)")
	}
	return path + "?" + v.Encode()
}

// Close closes the statements, both pools and the process lock. It may be
// called more than once.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	stmts := db.stmts
	db.stmts = nil
	db.mu.Unlock()

	var errs []error
	for _, s := range stmts {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, db.stopCheckpointer())
	errs = append(errs, db.closePools())
	errs = append(errs, db.lock.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %q: %w", db.Path, err)
	}
	return nil
}

func (db *DB) closePools() error {
	var errs []error
	if db.R != nil {
		errs = append(errs, db.R.Close())
	}
	if db.W != nil {
		// Closing the last connection checkpoints the WAL into the database.
		errs = append(errs, db.W.Close())
	}
	return errors.Join(errs...)
}

// Preparer prepares the statements of a component once, at start-up, and
// records the first error, so that a component lists its statements without
// checking each one:
//
//	p := db.Preparer(ctx)
//	q.send = p.W(`INSERT ...`)
//	q.stats = p.R(`SELECT ...`)
//	if err := p.Err(); err != nil { ... }
//
// The statements belong to the DB and are closed by DB.Close. A statement of
// the writer pool is used in a transaction through tx.StmtContext, which
// reuses the statement already prepared on the writer's only connection.
//
// Prepare everything before the first transaction: preparing on the writer
// pool waits for its only connection, so it must never happen inside a
// transaction of the same DB.
type Preparer struct {
	db  *DB
	ctx context.Context
	err error
}

// Preparer returns a Preparer bound to ctx.
func (db *DB) Preparer(ctx context.Context) *Preparer { return &Preparer{db: db, ctx: ctx} }

// W prepares query on the writer pool.
func (p *Preparer) W(query string) *sql.Stmt { return p.prepare(p.db.W, query) }

// R prepares query on the reader pool.
func (p *Preparer) R(query string) *sql.Stmt { return p.prepare(p.db.R, query) }

// Err returns the first error of W and R.
func (p *Preparer) Err() error { return p.err }

func (p *Preparer) prepare(pool *sql.DB, query string) *sql.Stmt {
	if p.err != nil {
		return nil
	}
	s, err := pool.PrepareContext(p.ctx, query)
	if err != nil {
		p.err = fmt.Errorf("prepare %q: %w", firstLine(query), err)
		return nil
	}
	p.db.mu.Lock()
	if p.db.closed {
		p.db.mu.Unlock()
		s.Close()
		p.err = fmt.Errorf("prepare: database %q: %w", p.db.Path, taskertype.ErrClosed)
		return nil
	}
	p.db.stmts = append(p.db.stmts, s)
	p.db.mu.Unlock()
	return s
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i] + " …"
	}
	return q
}

// Times are stored as INTEGER Unix microseconds. The zero time.Time is stored
// as NULL, and NULL reads back as the zero time.Time.

// Micros returns t as Unix microseconds, for a NOT NULL column.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// NullMicros returns t as Unix microseconds, or nil (NULL) for the zero time.
func NullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// Time returns the UTC time of us Unix microseconds.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// NullTime returns the UTC time of v, or the zero time for NULL.
func NullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func IsUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// IsForeignKeyViolation reports whether err is a FOREIGN KEY constraint failure.
func IsForeignKeyViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
