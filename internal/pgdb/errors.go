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
	// The session timeouts (SessionTimeouts).
	CodeLockNotAvailable         = "55P03" // lock_timeout
	CodeQueryCanceled            = "57014" // statement_timeout, or a cancel request
	CodeIdleInTransactionTimeout = "25P03" // idle_in_transaction_session_timeout
	CodeAdminShutdown            = "57P01" // pg_terminate_backend, or a server shutting down
	CodeCrashShutdown            = "57P02"
	CodeCannotConnectNow         = "57P03"
	CodeTransactionTimeout       = "25P04" // transaction_timeout (PostgreSQL 17)
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
// if run again from the start, knowing that it did not commit:
//   - a serialization failure or a deadlock;
//   - a session timeout (SessionTimeouts): a lock waited for too long, a
//     statement that ran too long, a transaction left idle too long (the
//     server ended it: the process was paused);
//   - the server ended the session (pg_terminate_backend, a restart): it
//     answered with an error, so the COMMIT, if sent, was not done;
//   - a connection error before anything was sent (pgconn.SafeToRetry).
//
// A connection lost after the COMMIT was sent, without an answer, is not
// retryable here: the transaction may have committed.
//
// A statement cancelled because the caller's context ended also has code
// 57014: InTx checks the context before it retries.
func Retryable(err error) bool {
	switch Code(err) {
	case CodeSerializationFailure, CodeDeadlockDetected, CodeLockNotAvailable, CodeQueryCanceled,
		CodeIdleInTransactionTimeout, CodeTransactionTimeout, CodeAdminShutdown, CodeCrashShutdown, CodeCannotConnectNow:
		return true
	}
	return pgconn.SafeToRetry(err)
}
