package pgdb

import (
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors of this package, besides taskertype.ErrInvalid for bad URLs.
var (
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrNotMigrated: the database lacks migrations this binary needs, and
	// they are not applied automatically.
	ErrNotMigrated = errors.New("database schema is not migrated")
)

// SQLSTATE codes the drivers act on.
const (
	CodeUniqueViolation      = "23505"
	CodeForeignKeyViolation  = "23503"
	CodeUndefinedTable       = "42P01"
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
)

// Code returns the SQLSTATE of a PostgreSQL error, or "".
func Code(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// PgError returns the PostgreSQL error in err's chain, or nil.
func PgError(err error) *pgconn.PgError {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg
	}
	return nil
}

// IsNoRows reports whether err is pgx's "no rows in result set".
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY violation.
func IsUniqueViolation(err error) bool { return Code(err) == CodeUniqueViolation }

// IsUndefinedTable reports whether err says a table does not exist.
func IsUndefinedTable(err error) bool { return Code(err) == CodeUndefinedTable }

// Retryable reports whether a transaction that failed with err may succeed
// if run again from the start: a serialization failure or a deadlock.
func Retryable(err error) bool {
	switch Code(err) {
	case CodeSerializationFailure, CodeDeadlockDetected:
		return true
	}
	return false
}
