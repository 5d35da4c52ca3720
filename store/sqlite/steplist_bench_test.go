package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// BenchmarkStepList measures listSteps, the read of a task's steps and
// their edges that a fresh engine makes in the writer's transaction the
// first time it touches each task (Prefetch, through tx.load; the whole of
// a backlog's drain) and that StepList serves: the statement as shipped,
// its rows sorted in Go ("sort=go"), against the same statement with ORDER
// BY position, name ("sort=sql", the design it replaced, whose sorter
// copied every row, result included, through a temporary b-tree). Both run
// on a reader connection (the writer's prepares the same text) and read
// the seven steps of a DAG task as created, without results (as a drain's
// first read of a task mostly finds them), through the same scan; "sort=sql" also runs the Go sort, over rows already in
// order. The figures are in docs/benchmarks.md ("Claims by task age").
func BenchmarkStepList(b *testing.B) {
	ctx := b.Context()
	s, err := Open(ctx, Config{Path: filepath.Join(b.TempDir(), "tasker.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "bench", Name: "dag", Version: "1", Context: []byte(`{"value": 3}`)}
	// A 7-step DAG: one root, two steps after it, three after those, one
	// last. Named against their positions, so that the index's name order
	// is not the template's.
	deps := [][]int{nil, {0}, {0}, {1}, {1, 2}, {2}, {3, 4, 5}}
	steps := make([]*taskertype.Step, len(deps))
	for i, d := range deps {
		steps[i] = &taskertype.Step{ID: uuid.Must(uuid.NewV7()), TaskID: task.ID, Name: fmt.Sprintf("step_%d", len(deps)-i),
			Handler: "noop", Position: i,
			Retry: taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}}
		for _, j := range d {
			steps[i].DependsOn = append(steps[i].DependsOn, steps[j].ID)
		}
	}
	if err := s.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: time.Now(), Processor: "bench"})
	}); err != nil {
		b.Fatal(err)
	}
	ordered, err := s.db.R.PrepareContext(ctx, `SELECT `+stepColumns+`,
			(SELECT group_concat(e.from_step_id) FROM step_edges e WHERE e.to_step_id = steps.id)
		FROM steps WHERE task_id = ?1 ORDER BY position, name`)
	if err != nil {
		b.Fatal(err)
	}
	defer ordered.Close()
	for _, c := range []struct {
		name string
		stmt *sql.Stmt
	}{{"sort=go", s.r.stepList}, {"sort=sql", ordered}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				got, err := listSteps(ctx, c.stmt, task.ID)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(steps) || got[0].ID != steps[0].ID || got[6].ID != steps[6].ID {
					b.Fatalf("listSteps: %d steps, not in template order", len(got))
				}
			}
		})
	}
}
