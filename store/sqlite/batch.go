package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// batchSizes are the row counts of the prepared multi-row inserts: rows are
// written in chunks of these sizes, largest first. One statement for many
// rows costs little more than one for a row, with this driver.
var batchSizes = [...]int{32, 16, 8, 4, 2, 1}

// batchInsert is one INSERT prepared for each of batchSizes.
type batchInsert struct {
	width int // values per row
	stmts [len(batchSizes)]*sql.Stmt
}

// prepareBatchInsert prepares "INSERT INTO table (columns) VALUES (...), ..."
// for every batch size.
func prepareBatchInsert(prepare func(string) *sql.Stmt, table, columns string) batchInsert {
	b := batchInsert{width: strings.Count(columns, ",") + 1}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", b.width), ", ") + ")"
	for i, n := range batchSizes {
		b.stmts[i] = prepare("INSERT INTO " + table + " (" + columns + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", "))
	}
	return b
}

// exec inserts the rows, each of b.width values, with the statements bound
// to a transaction by stmt.
func (b *batchInsert) exec(ctx context.Context, stmt func(*sql.Stmt) *sql.Stmt, rows [][]any) error {
	for len(rows) > 0 {
		i := 0
		for batchSizes[i] > len(rows) {
			i++
		}
		n := batchSizes[i]
		args := make([]any, 0, n*b.width)
		for _, r := range rows[:n] {
			if len(r) != b.width {
				return fmt.Errorf("batch insert: a row of %d values, want %d", len(r), b.width)
			}
			args = append(args, r...)
		}
		if _, err := stmt(b.stmts[i]).ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}
