package template

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a_good.yaml", header+steps("a:h", "b:h:a"))
	writeFile(t, dir, "b_cycle.yml", "name: cyc\nnamespace: demo\nversion: 1.0.0\n"+steps("x:h:y", "y:h:x"))
	writeFile(t, dir, "c_broken.yaml", "name: broken\nnamespace: demo\nversion: 1.0\nsteps:\n  - name: a\n    timeout: 5\n")
	writeFile(t, dir, "notes.txt", "not a template")
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub.yaml"), "nested.yaml", "not: loaded")

	got, err := LoadPaths(dir)
	t.Run("the good file is loaded despite the bad ones", func(t *testing.T) {
		if len(got) != 1 || got[0].Name != "wf" || got[0].Source != filepath.Join(dir, "a_good.yaml") {
			t.Fatalf("LoadPaths = %v", got)
		}
	})
	t.Run("all problems of all bad files come in one ValidationError", func(t *testing.T) {
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, taskertype.ErrInvalid) {
			t.Fatalf("error = %T %v, want *ValidationError", err, err)
		}
		for _, w := range []string{
			"b_cycle.yml:7: step \"x\": depends_on: cycle: x -> y -> x",
			"c_broken.yaml:3: version: invalid version \"1.0\"",
			"c_broken.yaml:5: step \"a\": handler: missing handler",
			"c_broken.yaml:6: step \"a\": timeout: 5 is a bare number",
		} {
			if _, ok := find(ve, w); !ok {
				t.Errorf("missing %q in:\n%v", w, err)
			}
		}
		if len(ve.Problems) != 4 {
			t.Errorf("%d problems, want 4:\n%v", len(ve.Problems), err)
		}
		if first := strings.SplitN(err.Error(), "\n", 2)[0]; first != "4 problems in 2 files" {
			t.Errorf("summary = %q", first)
		}
	})
	t.Run("other extensions and subdirectories are skipped", func(t *testing.T) {
		if strings.Contains(err.Error(), "notes.txt") || strings.Contains(err.Error(), "nested") {
			t.Errorf("error mentions a skipped file:\n%v", err)
		}
	})
}

func TestLoadPathsOfFilesAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", header+steps("a:h"))
	b := writeFile(t, dir, "b.yaml", header+steps("b:h"))
	t.Run("good files load in the order given", func(t *testing.T) {
		got, err := LoadPaths(a, filepath.Join(dir, "..", filepath.Base(dir), "a.yaml"))
		if err != nil || len(got) != 1 {
			t.Fatalf("LoadPaths of one file named twice = %d templates, %v", len(got), err)
		}
	})
	t.Run("two files defining the same key are reported", func(t *testing.T) {
		got, err := LoadPaths(a, b)
		if err == nil || !strings.Contains(err.Error(), "demo/wf@1.0.0 is also defined in "+a) ||
			!strings.Contains(err.Error(), b) {
			t.Fatalf("LoadPaths = %v", err)
		}
		if len(got) != 1 {
			t.Errorf("got %d templates, want the first one", len(got))
		}
	})
	t.Run("a missing path is a problem naming it", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.yaml")
		_, err := LoadPaths(a, missing)
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Source != missing {
			t.Fatalf("LoadPaths = %v", err)
		}
	})
	t.Run("an empty directory loads nothing without error", func(t *testing.T) {
		got, err := LoadPaths(t.TempDir())
		if err != nil || len(got) != 0 {
			t.Fatalf("LoadPaths = %v, %v", got, err)
		}
	})
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	t.Run("a good file is parsed with its path as source", func(t *testing.T) {
		p := writeFile(t, dir, "ok.yaml", header+steps("a:h"))
		tp, err := LoadFile(p)
		if err != nil || tp.Source != p {
			t.Fatalf("LoadFile = %v, %v", tp, err)
		}
	})
	t.Run("a missing file gives the os error", func(t *testing.T) {
		_, err := LoadFile(filepath.Join(dir, "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("LoadFile = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("a bad file gives a ValidationError with the path", func(t *testing.T) {
		p := writeFile(t, dir, "bad.yaml", header)
		_, err := LoadFile(p)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Problems[0].Source != p {
			t.Fatalf("LoadFile = %v", err)
		}
	})
}
