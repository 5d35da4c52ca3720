package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

const templateCols = `namespace, name, version, source_name, digest, registered_at, registered_by`

func scanTemplate(r pgx.Row, withSource bool) (*store.Template, error) {
	var t store.Template
	dest := []any{&t.Namespace, &t.Name, &t.Version, &t.SourceName, &t.Digest, &t.RegisteredAt, &t.RegisteredBy}
	if withSource {
		dest = append(dest, &t.Source)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	return &t, nil
}

// TemplatePut implements store.Store: one transaction, one statement per
// template (two for one stored already). Processes that put the same
// templates at once (starting together) insert each once: the others'
// inserts wait for the first to commit and then do nothing. The templates
// are inserted in key order, so two puts never wait for each other in a
// cycle.
func (s *Store) TemplatePut(ctx context.Context, p *store.TemplatePutParams) error {
	const op = "template put"
	if err := s.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ts := slices.Clone(p.Templates)
	slices.SortFunc(ts, func(a, b *store.Template) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version))
	})
	var replaced []*store.Template
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		replaced = nil
		for _, t := range ts {
			tag, err := tx.Exec(ctx, `INSERT INTO templates (`+templateCols+`, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (namespace, name, version) DO NOTHING`,
				t.Namespace, t.Name, t.Version, t.SourceName, t.Digest, t.RegisteredAt, t.RegisteredBy, t.Source)
			if err != nil {
				return fmt.Errorf("store: %s: template %s: %w", op, t.Key(), err)
			}
			if tag.RowsAffected() == 1 {
				continue
			}
			// A new statement: it sees the row that made the insert do
			// nothing, committed before the insert returned.
			old, err := scanTemplate(tx.QueryRow(ctx, `SELECT `+templateCols+` FROM templates
				WHERE namespace = $1 AND name = $2 AND version = $3`, t.Namespace, t.Name, t.Version), false)
			if err != nil {
				return fmt.Errorf("store: %s: template %s: %w", op, t.Key(), err)
			}
			if old.Digest == t.Digest {
				continue
			}
			if !p.Replace {
				return &store.TemplateConflictError{Key: t.Key(), Stored: old, GivenDigest: t.Digest, GivenSource: t.SourceName}
			}
			if _, err := tx.Exec(ctx, `UPDATE templates SET source_name = $4, digest = $5, registered_at = $6, registered_by = $7, source = $8
				WHERE namespace = $1 AND name = $2 AND version = $3`,
				t.Namespace, t.Name, t.Version, t.SourceName, t.Digest, t.RegisteredAt, t.RegisteredBy, t.Source); err != nil {
				return fmt.Errorf("store: %s: template %s: replace: %w", op, t.Key(), err)
			}
			replaced = append(replaced, old)
		}
		return nil
	})
	if err == nil {
		p.Replaced = replaced
	}
	if pgdb.IsUndefinedTable(err) {
		return fmt.Errorf("store: %s: %w: the database lacks the templates table: run `tasker migrate` (or open with AutoMigrate)", op, err)
	}
	return err
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
		rows, _ := s.db.Pool.Query(ctx, `SELECT version FROM templates WHERE namespace = $1 AND name = $2`, p.Namespace, p.Name)
		vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, err)
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("store: %s: template %s/%s: %w", op, p.Namespace, p.Name, taskertype.ErrNotFound)
		}
		version = slices.MaxFunc(vs, template.CompareVersions)
	}
	t, err := scanTemplate(s.db.Pool.QueryRow(ctx, `SELECT `+templateCols+`, source FROM templates
		WHERE namespace = $1 AND name = $2 AND version = $3`, p.Namespace, p.Name, version), true)
	if pgdb.IsNoRows(err) {
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
	rows, _ := s.db.Pool.Query(ctx, `SELECT `+templateCols+` FROM templates
		WHERE ($1 = '' OR namespace = $1) AND ($2 = '' OR name = $2)`, p.Namespace, p.Name)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Template, error) { return scanTemplate(r, false) })
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	store.SortTemplates(out)
	return out, nil
}
