// Package rowscan reads result sets the same way on both store backends:
// pgx's rows and database/sql's have the three methods a scan loop needs.
package rowscan

import (
	"encoding/json"
	"fmt"
)

// Rows is what a scan loop needs of a result set; pgx.Rows and *sql.Rows
// both have it. The caller closes the rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// All scans every row with scan and returns the values in order. An error
// of the scan or of the result set is wrapped as "store: op: err".
func All[T any](op string, rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// Each calls scan for every row, for loops that fill something other than
// a slice; errors are wrapped as All wraps them.
func Each(op string, rows Rows, scan func(Rows) error) error {
	_, err := All(op, rows, func(r Rows) (struct{}, error) { return struct{}{}, scan(r) })
	return err
}

// NamedJSON reads rows of (name, JSON) into a map by name: a step's
// ancestors' results, on both backends.
func NamedJSON(op string, rows Rows) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := Each(op, rows, func(r Rows) error {
		var (
			name string
			v    []byte
		)
		err := r.Scan(&name, &v)
		out[name] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
