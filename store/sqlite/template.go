package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

const templateColumns = `namespace, name, version, source_name, digest, registered_at, registered_by`

type templateStmts struct {
	insert, meta, update *sql.Stmt // writer
	get, versions, list  *sql.Stmt // readers
}

func (s *Store) prepareTemplates(p *sqlitedb.Preparer) {
	t := &s.tmpl
	t.insert = p.W(`INSERT INTO templates (` + templateColumns + `, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
		ON CONFLICT (namespace, name, version) DO NOTHING`)
	t.update = p.W(`UPDATE templates SET source_name = ?4, digest = ?5, registered_at = ?6, registered_by = ?7, source = ?8
		WHERE namespace = ?1 AND name = ?2 AND version = ?3`)
	t.meta = p.W(`SELECT ` + templateColumns + ` FROM templates WHERE namespace = ?1 AND name = ?2 AND version = ?3`)
	t.get = p.R(`SELECT ` + templateColumns + `, source FROM templates WHERE namespace = ?1 AND name = ?2 AND version = ?3`)
	t.versions = p.R(`SELECT version FROM templates WHERE namespace = ?1 AND name = ?2`)
	t.list = p.R(`SELECT ` + templateColumns + ` FROM templates WHERE (?1 = '' OR namespace = ?1) AND (?2 = '' OR name = ?2)`)
}

func scanTemplate(r scanner, withSource bool) (*store.Template, error) {
	var (
		t  store.Template
		at int64
	)
	dest := []any{&t.Namespace, &t.Name, &t.Version, &t.SourceName, &t.Digest, &at, &t.RegisteredBy}
	if withSource {
		dest = append(dest, &t.Source)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	t.RegisteredAt = sqlitedb.Time(at)
	return &t, nil
}

// TemplatePut implements store.Store: one write transaction.
func (s *Store) TemplatePut(ctx context.Context, p *store.TemplatePutParams) error {
	const op = "template put"
	if err := s.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// As InTx: the wait for the writer honours ctx, the statements run
	// without its cancellation.
	conn, err := s.db.W.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %s: waiting for the writer: %w", op, err)
	}
	defer conn.Close()
	sctx := context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(sctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: begin: %w", op, err)
	}
	defer tx.Rollback()
	insert, meta := tx.StmtContext(sctx, s.tmpl.insert), tx.StmtContext(sctx, s.tmpl.meta)
	var replaced []*store.Template
	for _, t := range p.Templates {
		res, err := insert.ExecContext(sctx, t.Namespace, t.Name, t.Version, t.SourceName, t.Digest,
			micros(t.RegisteredAt), t.RegisteredBy, t.Source)
		if err != nil {
			return fmt.Errorf("store: %s: template %s: %w", op, t.Key(), err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			if err != nil {
				return fmt.Errorf("store: %s: template %s: %w", op, t.Key(), err)
			}
			continue
		}
		old, err := scanTemplate(meta.QueryRowContext(sctx, t.Namespace, t.Name, t.Version), false)
		if err != nil {
			return fmt.Errorf("store: %s: template %s: %w", op, t.Key(), err)
		}
		if old.Digest == t.Digest {
			continue
		}
		if !p.Replace {
			return &store.TemplateConflictError{Key: t.Key(), Stored: old, GivenDigest: t.Digest, GivenSource: t.SourceName}
		}
		if _, err := tx.StmtContext(sctx, s.tmpl.update).ExecContext(sctx, t.Namespace, t.Name, t.Version, t.SourceName, t.Digest,
			micros(t.RegisteredAt), t.RegisteredBy, t.Source); err != nil {
			return fmt.Errorf("store: %s: template %s: replace: %w", op, t.Key(), err)
		}
		replaced = append(replaced, old)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", op, err)
	}
	p.Replaced = replaced
	return nil
}

// TemplateGet implements store.Store: one query for a version, two for
// the latest (its versions, then it).
func (s *Store) TemplateGet(ctx context.Context, p *store.TemplateGetParams) (*store.Template, error) {
	const op = "template get"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	version := p.Version
	if version == "" {
		rows, err := s.tmpl.versions.QueryContext(ctx, p.Namespace, p.Name)
		if err != nil {
			return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, err)
			}
			if version == "" || template.CompareVersions(v, version) > 0 {
				version = v
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, err)
		}
		if version == "" {
			return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, taskertype.ErrNotFound)
		}
	}
	t, err := scanTemplate(s.tmpl.get.QueryRowContext(ctx, p.Namespace, p.Name, version), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: template %s/%s@%s: %w", op, p.Namespace, p.Name, version, taskertype.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: template %s/%s@%s: %w", op, p.Namespace, p.Name, version, err)
	}
	return t, nil
}

// TemplateList implements store.Store: one query.
func (s *Store) TemplateList(ctx context.Context, p *store.TemplateListParams) ([]*store.Template, error) {
	const op = "template list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if p == nil {
		p = &store.TemplateListParams{}
	}
	rows, err := s.tmpl.list.QueryContext(ctx, p.Namespace, p.Name)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []*store.Template
	for rows.Next() {
		t, err := scanTemplate(rows, false)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	store.SortTemplates(out)
	return out, nil
}
