package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"github.com/tasker-go/tasker/internal/migration"
)

// Migrate applies the migrations of component found at the root of fsys
// (NNNN_name.sql, versions 1, 2, 3… without gaps) that the database does not
// have yet, in order, each in its own transaction together with its row in
// schema_migrations. It is idempotent. A database migrated by a newer binary
// (a version this one does not know) is an error wrapping ErrSchemaTooNew,
// and nothing is changed.
func (db *DB) Migrate(ctx context.Context, component string, fsys fs.FS) error {
	ms, err := migration.Read(fsys)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	known := len(ms)
	for {
		applied, err := db.appliedVersion(ctx, db.W, component)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", component, err)
		}
		if applied > known {
			return fmt.Errorf("database %q: database schema of component %s is at version %d, this binary knows up to %d: upgrade tasker: %w",
				db.Path, component, applied, known, ErrSchemaTooNew)
		}
		if applied == known {
			return nil
		}
		if err := db.apply(ctx, component, ms[applied]); err != nil {
			return err
		}
	}
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) appliedVersion(ctx context.Context, q queryer, component string) (int, error) {
	var v int
	err := q.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	return v, err
}

func (db *DB) apply(ctx context.Context, component string, m migration.Migration) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: %w", component, m.Version, m.Name, err)
	}
	defer tx.Rollback()
	// Checked again under the write lock: the version may have moved since.
	applied, err := db.appliedVersion(ctx, tx, component)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if applied >= m.Version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: %w", component, m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)`,
		component, m.Version, m.Name, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: record: %w", component, m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: commit: %w", component, m.Version, m.Name, err)
	}
	db.Logger.Info("database migrated", "path", db.Path, "component", component, "version", m.Version, "name", m.Name)
	return nil
}
