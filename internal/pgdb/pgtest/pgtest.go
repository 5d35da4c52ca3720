// Package pgtest gives each test of the PostgreSQL backends a schema of its
// own in the database named by TASKER_TEST_POSTGRES_URL, dropped when the
// test ends, so that tests run in parallel and leave nothing behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
)

// EnvURL names the environment variable that holds the test database's URL,
// e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvURL = "TASKER_TEST_POSTGRES_URL"

// URL returns the test database's URL, or skips the test when it is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skipf("%s is not set: the PostgreSQL tests need a database, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
			EnvURL, EnvURL)
	}
	return u
}

// Schema creates a uniquely named schema, drops it (and everything in it)
// when the test ends, and returns its name and a URL whose connections use
// it (search_path).
func Schema(t testing.TB) (schema, dbURL string) {
	t.Helper()
	base := URL(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema = "tasker_test_" + hex.EncodeToString(b[:])
	Exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { Exec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	return schema, WithSearchPath(t, base, schema)
}

// WithSearchPath returns dbURL with its connections' search_path set to
// schema.
func WithSearchPath(t testing.TB, dbURL, schema string) string {
	t.Helper()
	u, err := pgdb.WithSearchPath(dbURL, schema)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	return u
}

// Exec runs sql on a connection of its own.
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
