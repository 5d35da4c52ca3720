// Package pgdb is the PostgreSQL plumbing shared by the store
// (store/postgres) and the queue (queue/postgres): a pgx pool opened from a
// URL with errors that say what to do, versioned migrations per component
// applied under an advisory lock, transactions whose statements are sent in
// pipelined batches and retried on serialization failures and deadlocks, a
// round-trip counter, and the translation of PostgreSQL errors into the
// sentinels of taskertype.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-go/tasker/taskertype"
)

// Options says which database to open and how. The zero value of each field
// but URL means its default.
type Options struct {
	// URL is the database, as postgres://user:password@host:5432/dbname?sslmode=disable
	// or as key=value pairs ("host=... dbname=..."). Parameters that pgx
	// does not know are sent to the server as run-time settings, so
	// "&search_path=myschema" puts the tables in schema myschema.
	// pool_max_conns sets the size of the pool.
	URL    string
	Logger *slog.Logger
	// MaxConns bounds the pool; it overrides pool_max_conns of the URL.
	// Default: the URL's, else pgxpool's (the larger of 4 and the number of
	// CPUs).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt when the URL sets no
	// connect_timeout. Default 10s.
	ConnectTimeout time.Duration
	// Timeouts bound what one session may hold; see SessionTimeouts.
	Timeouts SessionTimeouts
}

// SessionTimeouts are set on every connection of the pool, so that a
// process that stops in the middle of a transaction (SIGSTOP, a long GC
// pause, a frozen VM, a network partition) cannot hold rows for long: the
// server ends its transaction, and the others go on. A claim is a lease in
// a row (vt), never a lock held by an open transaction. A URL parameter of
// the same name (idle_in_transaction_session_timeout, lock_timeout,
// statement_timeout) overrides each; zero means the default and a negative
// value turns one off.
type SessionTimeouts struct {
	// IdleInTransaction ends the session of a transaction that waits for
	// its client longer than this: its locks go, and it rolls back.
	// Default 5s. The engine's transactions never wait on anything but
	// the database.
	IdleInTransaction time.Duration
	// Lock bounds each wait for a lock; the statement then fails with
	// lock_not_available, a retryable error. Default 5s.
	Lock time.Duration
	// Statement bounds each statement. Default 30s.
	Statement time.Duration
}

// Default session timeouts.
const (
	DefaultIdleInTransactionTimeout = 5 * time.Second
	DefaultLockTimeout              = 5 * time.Second
	DefaultStatementTimeout         = 30 * time.Second
)

// params returns the run-time settings of the timeouts, in milliseconds
// ("0" turns a setting off).
func (st SessionTimeouts) params() map[string]string {
	ms := func(d, def time.Duration) string {
		switch {
		case d < 0:
			return "0"
		case d == 0:
			d = def
		}
		return fmt.Sprint(max(d.Milliseconds(), 1))
	}
	return map[string]string{
		"idle_in_transaction_session_timeout": ms(st.IdleInTransaction, DefaultIdleInTransactionTimeout),
		"lock_timeout":                        ms(st.Lock, DefaultLockTimeout),
		"statement_timeout":                   ms(st.Statement, DefaultStatementTimeout),
	}
}

// DB is an open pool.
type DB struct {
	// Pool runs the statements. Its connections count their round trips
	// (RoundTrips).
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Where names the database for messages: host, port, database and
	// user, never the password.
	Where string

	trips counter
	pids  sync.Map // uint32 → struct{}: backend pids of the pool's connections

	closeOnce sync.Once
}

// Open parses the URL, opens the pool and checks that the database answers.
// A malformed URL is an error wrapping taskertype.ErrInvalid; an unreachable
// server, a database that does not exist or refused credentials give an
// error that says what to check.
func Open(ctx context.Context, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(opts.URL) == "" {
		return nil, fmt.Errorf("open database: no database URL: set one such as postgres://user@localhost:5432/tasker?sslmode=disable: %w", taskertype.ErrInvalid)
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: the URL cannot be parsed (%s): want postgres://user:password@host:5432/dbname?sslmode=disable: %w",
			redact(opts.URL), parseReason(err), taskertype.ErrInvalid)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = 10 * time.Second
		}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tasker"
	}
	for k, v := range opts.Timeouts.params() {
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	// Every statement of the engine finds its rows through an index. A
	// prepared statement keeps the plan it got when first planned, and a
	// table that was nearly empty then (a fresh database, or one whose
	// statistics autovacuum has not refreshed) gets a sequential scan that
	// costs more with every row the table gains. Without sequential scans
	// the planner takes the index whatever the statistics say. The URL may
	// set enable_seqscan=on to undo this.
	if _, ok := cfg.ConnConfig.RuntimeParams["enable_seqscan"]; !ok {
		cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	}
	db := &DB{Logger: logger, Where: where(cfg.ConnConfig)}
	cfg.ConnConfig.Tracer = &db.trips
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerTypes(c.TypeMap())
		db.pids.Store(c.PgConn().PID(), struct{}{})
		return nil
	}
	cfg.BeforeClose = func(c *pgx.Conn) { db.pids.Delete(c.PgConn().PID()) }
	// pgxpool's own rule (ping a connection idle for more than a second
	// before handing it out), with the ping counted as a round trip.
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		if p.IdleDuration <= time.Second {
			return false
		}
		db.trips.n.Add(1)
		return true
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", db.Where, err)
	}
	db.Pool = pool
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, explainConnect(db.Where, cfg.ConnConfig, err)
	}
	logger.Debug("postgres database open", "database", db.Where, "max_conns", cfg.MaxConns)
	return db, nil
}

// Close closes the pool. It may be called more than once.
func (db *DB) Close() {
	db.closeOnce.Do(db.Pool.Close)
}

// RoundTrips counts the exchanges with the server made through the pool so
// far: each query, each batch (however many statements it carries), each
// explicit prepare and each ping of a connection that was idle for more
// than a second. A statement's first use on a connection costs one prepare
// round trip more that is not counted. The listener's connection is outside
// the pool: it only receives.
func (db *DB) RoundTrips() uint64 { return db.trips.n.Load() }

// Statements counts the statements sent through the pool so far: each
// query, and each statement of a batch (BEGIN and COMMIT included, as they
// are statements too).
func (db *DB) Statements() uint64 { return db.trips.stmts.Load() }

// OwnsPID reports whether a server process serves one of the pool's
// connections: a notification sent by this pid was sent by this process.
func (db *DB) OwnsPID(pid uint32) bool {
	_, ok := db.pids.Load(pid)
	return ok
}

// ConnConfig returns a copy of the configuration of the pool's connections,
// without its tracer: for a dedicated connection outside the pool, such as a
// listener.
func (db *DB) ConnConfig() *pgx.ConnConfig {
	c := db.Pool.Config().ConnConfig.Copy()
	c.Tracer = nil
	return c
}

// counter counts round trips and statements: it is the pool's tracer.
type counter struct{ n, stmts atomic.Uint64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	c.stmts.Add(1)
	return ctx
}

func (*counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *counter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.stmts.Add(1)
}
func (*counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *counter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (*counter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// where names a database without its password: postgres://user@host:port/db.
func where(c *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), Path: "/" + c.Database}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	return u.String()
}

// redact hides the password of a URL that may not even parse.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return fmt.Sprintf("%q", u.String())
	}
	if strings.Contains(raw, "password") || strings.Contains(raw, "@") {
		return "(URL hidden: it may hold a password)"
	}
	return fmt.Sprintf("%q", raw)
}

// parseReason is pgx's reason without the connection string it quotes.
func parseReason(err error) string {
	// pgx's message is "cannot parse `<redacted string>`: reason (cause)".
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+3:]
	}
	return msg
}

// explainConnect turns a failed first connection into an error that says
// what to check.
func explainConnect(where string, c *pgx.ConnConfig, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "3D000": // invalid_catalog_name
			return fmt.Errorf("open database %s: database %q does not exist: create it (createdb -h %s -p %d -U %s %s, or CREATE DATABASE %s) or fix the URL's database name: %w",
				where, c.Database, c.Host, c.Port, c.User, c.Database, pgx.Identifier{c.Database}.Sanitize(), err)
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return fmt.Errorf("open database %s: the server refused user %q: check the URL's user and password and the server's pg_hba.conf: %w", where, c.User, err)
		case "57P03": // cannot_connect_now
			return fmt.Errorf("open database %s: the server is starting up or shutting down: try again in a moment: %w", where, err)
		case "53300": // too_many_connections
			return fmt.Errorf("open database %s: the server has no connection slot left: lower pool_max_conns or raise the server's max_connections: %w", where, err)
		}
		return fmt.Errorf("open database %s: %w", where, err)
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &de) {
		return fmt.Errorf("open database %s: host %q is unknown: fix the URL's host: %w", where, c.Host, err)
	}
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("open database %s: cannot reach the server at %s: check that PostgreSQL is running and listening there, and the URL's host and port: %w",
			where, net.JoinHostPort(c.Host, fmt.Sprint(c.Port)), err)
	}
	return fmt.Errorf("open database %s: %w", where, err)
}

// WithSearchPath returns dbURL with its connections' search_path set to
// schema, in the URL's own form (postgres://... or key=value pairs).
func WithSearchPath(dbURL, schema string) (string, error) {
	if !strings.Contains(dbURL, "://") {
		return dbURL + " search_path=" + schema, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("database URL %s: %w: %w", redact(dbURL), err, taskertype.ErrInvalid)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
