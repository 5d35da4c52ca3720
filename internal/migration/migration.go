// Package migration reads the embedded schema migrations that both database
// backends apply: files named NNNN_name.sql, versions 1, 2, 3… without gaps.
package migration

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// file is the name of a migration: a four-digit version, an underscore, a
// name, ".sql".
var file = regexp.MustCompile(`^([0-9]{4})_([A-Za-z0-9_]+)\.sql$`)

// Migration is one schema change of a component.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Read reads and orders the migrations of fsys. Files other than .sql ones
// are ignored; a .sql file with another name, a duplicate or a gap in the
// versions is an error, since it would be a mistake in the binary.
func Read(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		sm := file.FindStringSubmatch(e.Name())
		if sm == nil {
			return nil, fmt.Errorf("migration %q: want a name like 0001_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(sm[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: sm[2], SQL: string(b)})
	}
	// fs.ReadDir sorts by name, hence by version.
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: want version %d: versions start at 1 and have no gaps or duplicates", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}
