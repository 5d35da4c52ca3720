package template

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MaxFileSize bounds the size of a template file.
const MaxFileSize = 4 << 20

// Loader says how template documents are read. The zero Loader applies
// the overrides of DefaultEnvironment and keeps warnings as warnings.
type Loader struct {
	// Environment selects the overrides of a tasker-core template's
	// environments section; "" means DefaultEnvironment. Commands take it
	// from --environment or TASKER_ENV.
	Environment string
	// Strict makes warnings errors: in a tasker-core document, keys the
	// loader does not know and overrides of steps that do not exist.
	Strict bool
}

func (o Loader) environment() string {
	if o.Environment == "" {
		return DefaultEnvironment
	}
	return o.Environment
}

// LoadFile reads and parses one template file with the zero Loader.
func LoadFile(path string) (*Template, error) { return Loader{}.LoadFile(path) }

// LoadFile reads and parses one template file. A file that cannot be read
// gives the os error (wrapped); a bad template gives a *ValidationError.
func (o Loader) LoadFile(path string) (*Template, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("template file %s: %w", path, err)
	}
	return o.Parse(path, data)
}

func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", fi.Size(), MaxFileSize)
	}
	return os.ReadFile(path)
}

// LoadPaths loads template files and directories: a directory contributes
// every *.yaml and *.yml file directly inside it, in name order (not
// recursive); a file is loaded whatever its extension. A path named twice
// is loaded once. LoadPaths keeps going after a bad file: on failure it
// returns the templates that did load together with one *ValidationError
// holding every problem of every file, including unreadable paths and keys
// defined by more than one file.
func LoadPaths(paths ...string) ([]*Template, error) { return Loader{}.LoadPaths(paths...) }

// LoadPaths is the package function LoadPaths read with o. The warnings of
// the files that loaded are on their templates; those of the files that
// failed are in the error's Warnings.
func (o Loader) LoadPaths(paths ...string) ([]*Template, error) {
	var (
		out      []*Template
		warnings []Problem
		problems []Problem
		seen     = map[string]bool{}
		keys     = map[Key]string{} // key → the file that defined it
	)
	bad := func(path, msg, hint string) {
		problems = append(problems, Problem{Source: path, Message: msg, Hint: hint})
	}
	load := func(path string) {
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = filepath.Clean(path)
		}
		if seen[abs] {
			return
		}
		seen[abs] = true
		data, err := readFile(path)
		if err != nil {
			bad(path, "cannot read the file: "+describe(err), "check the path and its permissions")
			return
		}
		t, err := o.Parse(path, data)
		var ve *ValidationError
		switch {
		case errors.As(err, &ve):
			problems = append(problems, ve.Problems...)
			warnings = append(warnings, ve.Warnings...)
			return
		case err != nil:
			bad(path, err.Error(), "")
			return
		}
		if first, dup := keys[t.Key()]; dup {
			problems = append(problems, Problem{Source: path, Line: 1, Field: "version",
				Message: fmt.Sprintf("template %s is also defined in %s", t.Key(), first),
				Hint:    "give one of them another version, name or namespace, or remove it"})
			return
		}
		keys[t.Key()] = path
		out = append(out, t)
	}
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			bad(path, "cannot read: "+describe(err), "check the path")
			continue
		}
		if !fi.IsDir() {
			load(path)
			continue
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			bad(path, "cannot list the directory: "+describe(err), "check its permissions")
			continue
		}
		for _, e := range entries { // ReadDir sorts by name
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if ext != ".yaml" && ext != ".yml" {
				continue
			}
			full := filepath.Join(path, e.Name())
			if e.IsDir() {
				continue
			}
			if e.Type()&os.ModeSymlink != 0 {
				if fi, err := os.Stat(full); err != nil || fi.IsDir() {
					if err != nil {
						bad(full, "cannot read: "+describe(err), "fix or remove the link")
					}
					continue
				}
			}
			load(full)
		}
	}
	if len(problems) > 0 {
		return out, &ValidationError{Problems: problems, Warnings: warnings}
	}
	return out, nil
}

// describe strips the path an *os.PathError repeats.
func describe(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
