package sqlitedb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tasker-go/tasker/taskertype"
)

// pathError is a database path the engine cannot use. Its message says what
// is wrong and what to do; it matches taskertype.ErrInvalid.
type pathError struct{ msg string }

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return taskertype.ErrInvalid }

func badPath(path, format string, args ...any) error {
	return &pathError{msg: fmt.Sprintf("open database %q: ", path) + fmt.Sprintf(format, args...)}
}

// checkPath tells, before SQLite does in its own words, why a database path
// cannot be used.
func checkPath(path string) error {
	switch {
	case path == "":
		return badPath(path, "the path is empty: pass a file path with --db")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return badPath(path, "want a plain file path, not an in-memory database or a URI")
	case strings.ContainsAny(path, "?#"):
		return badPath(path, "the path contains '?' or '#': choose another --db path")
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return badPath(path, "it is a directory: choose a file path, e.g. %q", filepath.Join(path, "tasker.db"))
	case err == nil && !fi.Mode().IsRegular():
		return badPath(path, "it is not a regular file: choose another --db path")
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return badPath(path, "%v: fix the permissions or choose another --db path", err)
	}
	exists := err == nil

	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return badPath(path, "directory %q does not exist: create it or choose another --db path", dir)
	case err != nil:
		return badPath(path, "directory %q: %v: fix the permissions or choose another --db path", dir, err)
	case !di.IsDir():
		return badPath(path, "%q is not a directory: choose another --db path", dir)
	}
	// SQLite creates the -wal and -shm files beside the database, and the
	// process lock lives there too, so the directory must be writable even
	// when the database file already exists.
	if !writable(dir) {
		return badPath(path, "directory %q is not writable: the database, its -wal and -shm files and its .lock file are created there; fix its permissions or choose another --db path", dir)
	}
	if exists && !writable(path) {
		return badPath(path, "the file is not writable: fix its permissions or choose another --db path")
	}
	return nil
}
