package pgdb

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/migration"
)

// The table of applied migrations, in the schema the pool's search_path
// selects.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  text        NOT NULL,
	version    integer     NOT NULL,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL,
	PRIMARY KEY (component, version)
)`

// migrateLock serializes the migrations of one schema across processes. It
// is a transaction-level advisory lock: it goes with the transaction,
// whatever way it ends.
const migrateLock = `SELECT pg_advisory_xact_lock(hashtext('tasker.migrate:' || coalesce(current_schema(), '')))`

// Migrate applies the migrations of component found at the root of fsys
// (NNNN_name.sql, versions 1, 2, 3… without gaps) that the database does not
// have yet: all in one transaction, together with their rows in
// schema_migrations, under an advisory lock, so that processes starting at
// once migrate once and the others wait and find nothing left to do. It is
// idempotent. A database migrated by a newer binary (a version this one
// does not know) is an error wrapping ErrSchemaTooNew, and nothing changes.
func (db *DB) Migrate(ctx context.Context, component string, fsys fs.FS) error {
	ms, err := migration.Read(fsys)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	// Without the lock first: an up-to-date database, the usual case, costs
	// one query and takes no lock.
	applied, err := db.appliedVersion(ctx, component)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if err := db.tooNew(component, applied, len(ms)); err != nil || applied == len(ms) {
		return err
	}
	return db.InTx(ctx, func(t *Tx) error {
		// A migration may take long, and the processes starting beside
		// this one wait for it on the lock: the session timeouts do not
		// apply to it.
		t.Add(Stmt{SQL: `SET LOCAL lock_timeout = 0`})
		t.Add(Stmt{SQL: `SET LOCAL statement_timeout = 0`})
		t.Add(Stmt{SQL: migrateLock})
		t.Add(Stmt{SQL: createMigrationsTable})
		// A batch prepares all its statements before it runs any: the
		// table must exist before a statement that reads it is sent.
		if err := t.Send(ctx); err != nil {
			return fmt.Errorf("migrate %s: %w", component, err)
		}
		// Read again under the lock: another process may have migrated.
		applied = 0
		err := t.Query(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = $1`, []any{component},
			func(rows pgx.Rows) error {
				for rows.Next() {
					if err := rows.Scan(&applied); err != nil {
						return err
					}
				}
				return nil
			})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", component, err)
		}
		if err := db.tooNew(component, applied, len(ms)); err != nil {
			return err
		}
		for _, m := range ms[applied:] {
			if err := t.ExecScript(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrate %s to %04d_%s: %w", component, m.Version, m.Name, err)
			}
			t.Add(Stmt{SQL: `INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ($1, $2, $3, $4)`,
				Args: []any{component, m.Version, m.Name, time.Now()}})
			db.Logger.Info("database migrated", "database", db.Where, "component", component, "version", m.Version, "name", m.Name)
		}
		return nil
	})
}

// CheckSchema checks, without changing anything, that the database has
// exactly the migrations of component in fsys: fewer is an error wrapping
// ErrNotMigrated that says to run `tasker migrate`, more one wrapping
// ErrSchemaTooNew.
func (db *DB) CheckSchema(ctx context.Context, component string, fsys fs.FS) error {
	ms, err := migration.Read(fsys)
	if err != nil {
		return fmt.Errorf("check schema of %s: %w", component, err)
	}
	applied, err := db.appliedVersion(ctx, component)
	if err != nil {
		return fmt.Errorf("check schema of %s: %w", component, err)
	}
	if err := db.tooNew(component, applied, len(ms)); err != nil {
		return err
	}
	if applied < len(ms) {
		return fmt.Errorf("database %s: schema of component %s is at version %d, this binary needs version %d: run `tasker migrate` against this database first (or let the process migrate at start-up): %w",
			db.Where, component, applied, len(ms), ErrNotMigrated)
	}
	return nil
}

func (db *DB) tooNew(component string, applied, known int) error {
	if applied > known {
		return fmt.Errorf("database %s: schema of component %s is at version %d, this binary knows up to %d: upgrade tasker: %w",
			db.Where, component, applied, known, ErrSchemaTooNew)
	}
	return nil
}

// appliedVersion is the last migration of component the database has; 0
// when schema_migrations does not exist yet.
func (db *DB) appliedVersion(ctx context.Context, component string) (int, error) {
	var v int
	err := db.Pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = $1`, component).Scan(&v)
	if IsUndefinedTable(err) {
		return 0, nil
	}
	return v, err
}
