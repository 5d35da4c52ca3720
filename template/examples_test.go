package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestExamples loads every template in ../examples and checks its shape.
func TestExamples(t *testing.T) {
	tps, err := LoadPaths("../examples")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(tps) != len(files) || len(tps) < 4 {
		t.Fatalf("loaded %d templates from %d files", len(tps), len(files))
	}
	byName := map[string]*Template{}
	for _, tp := range tps {
		byName[tp.Name] = tp
	}
	tests := []struct {
		name     string
		file     string
		template string
		steps    int
		joins    []int // fan-in widths above 1, sorted
	}{
		{"the linear workflow is a chain of 4 steps", "linear.yaml", "linear_workflow", 4, nil},
		{"the diamond workflow has 4 steps and one 2-way join", "diamond.yaml", "diamond_workflow", 4, []int{2}},
		{"the dag workflow has 7 steps with a 2-way and a 3-way join", "dag.yaml", "dag_workflow", 7, []int{2, 3}},
		{"the tree workflow has 8 steps and one 4-way join", "tree.yaml", "tree_workflow", 8, []int{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := byName[tc.template]
			if tp == nil {
				t.Fatalf("no template %s", tc.template)
			}
			if filepath.Base(tp.Source) != tc.file || tp.Namespace != "demo" || tp.Version != "1.0.0" {
				t.Errorf("%s: source %s, key %v", tc.template, tp.Source, tp.Key())
			}
			if len(tp.Steps) != tc.steps {
				t.Errorf("%d steps, want %d", len(tp.Steps), tc.steps)
			}
			var joins []int
			roots := 0
			for _, s := range tp.Steps {
				if len(s.DependsOn) > 1 {
					joins = append(joins, len(s.DependsOn))
				}
				if len(s.DependsOn) == 0 {
					roots++
				}
				if !slices.Contains([]string{"demo.square", "demo.add", "demo.multiply", "demo.sum"}, s.Handler) {
					t.Errorf("step %s uses handler %q, not a demo handler", s.Name, s.Handler)
				}
			}
			slices.Sort(joins)
			if !slices.Equal(joins, tc.joins) {
				t.Errorf("joins %v, want %v", joins, tc.joins)
			}
			if roots != 1 {
				t.Errorf("%d steps without dependencies, want 1", roots)
			}
			if tc.joins == nil {
				for i, s := range tp.Steps[1:] {
					if !slices.Equal(s.DependsOn, []string{tp.Steps[i].Name}) {
						t.Errorf("step %s depends on %v, want the step before", s.Name, s.DependsOn)
					}
				}
			}
			if err := tp.ValidateContext(json.RawMessage(`{"value": 3}`)); err != nil {
				t.Errorf("context {value: 3}: %v", err)
			}
			for _, bad := range []string{`{}`, `{"value": "3"}`, `{"value": 1000001}`, `{"value": 3, "addend": 100000}`} {
				if tp.ValidateContext(json.RawMessage(bad)) == nil {
					t.Errorf("context %s accepted", bad)
				}
			}
		})
	}
	if _, err := os.Stat("../examples/README.md"); err != nil {
		t.Error(err)
	}
}
