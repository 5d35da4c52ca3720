package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// migrationFile is the name of a migration: a four-digit version, an
// underscore, a name, ".sql".
var migrationFile = regexp.MustCompile(`^([0-9]{4})_([A-Za-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// Migrate applies the migrations of component found at the root of fsys
// (NNNN_name.sql, versions 1, 2, 3… without gaps) that the database does not
// have yet, in order, each in its own transaction together with its row in
// schema_migrations. It is idempotent. A database migrated by a newer binary
// (a version this one does not know) is an error wrapping ErrSchemaTooNew,
// and nothing is changed.
func (db *DB) Migrate(ctx context.Context, component string, fsys fs.FS) error {
	ms, err := readMigrations(fsys)
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

func (db *DB) apply(ctx context.Context, component string, m migration) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: %w", component, m.version, m.name, err)
	}
	defer tx.Rollback()
	// Checked again under the write lock: the version may have moved since.
	applied, err := db.appliedVersion(ctx, tx, component)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if applied >= m.version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: %w", component, m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)`,
		component, m.version, m.name, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: record: %w", component, m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s to %04d_%s: commit: %w", component, m.version, m.name, err)
	}
	db.Logger.Info("database migrated", "path", db.Path, "component", component, "version", m.version, "name", m.name)
	return nil
}

// readMigrations reads and orders the migrations of fsys. Other files than
// .sql ones are ignored; a .sql file with another name, a duplicate or a gap
// in the versions is an error, since it would be a mistake in the binary.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		sm := migrationFile.FindStringSubmatch(e.Name())
		if sm == nil {
			return nil, fmt.Errorf("migration %q: want a name like 0001_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(sm[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: sm[2], sql: string(b)})
	}
	// fs.ReadDir sorts by name, hence by version.
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d: versions start at 1 and have no gaps or duplicates", m.version, m.name, i+1)
		}
	}
	return ms, nil
}
