package orchestration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// BenchmarkLockTask is the read the state manager saves, on the path
// production takes: a round of results in one transaction (roundInTx), the
// tasks prefetched, then each result's task locked with its steps by
// lockTask. "cache" has the state manager (a hit: the task row, the one
// step that moved, the others from the cache); "none" has none and reads
// every step from the store (TaskGetForUpdate + StepList), the simplest
// correct alternative and what both backends do: after the Prefetch,
// StepList costs no round trip on either.
// The analysis's Mutex<HashMap> in place of the cache is
// BenchmarkMachineOps (internal/statemanager). On PostgreSQL it reports the
// round trips per result.
//
//	TASKER_TEST_POSTGRES_URL=... go test -run '^$' -bench LockTask -count 6 ./internal/orchestration
func BenchmarkLockTask(b *testing.B) {
	const (
		tasks = 64 // in flight
		steps = 7  // the dag shape's
		batch = 8  // results per round
	)
	type backend struct {
		name  string
		open  func(b *testing.B) store.Store
		trips func(store.Store) uint64
	}
	backends := []backend{{"sqlite", func(b *testing.B) store.Store {
		st, err := storesqlite.Open(context.Background(), storesqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}, nil}}
	if os.Getenv(pgtest.EnvURL) != "" {
		backends = append(backends, backend{"postgres", func(b *testing.B) store.Store {
			_, u := pgtest.Schema(b)
			st, err := storepg.Open(context.Background(), storepg.Config{URL: u, AutoMigrate: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}, func(s store.Store) uint64 { return s.(*storepg.Store).RoundTrips() }})
	}
	for _, be := range backends {
		for _, cand := range []string{"cache", "none"} {
			b.Run(be.name+"/"+cand, func(b *testing.B) {
				ctx := context.Background()
				st := be.open(b)
				ids, stepIDs := benchTasks(b, st, tasks, steps)
				o := &Orchestrator{} // no state manager: as on the embedded backend
				if cand == "cache" {
					var err error
					if o.machines, err = newMachines(); err != nil {
						b.Fatal(err)
					}
				}
				lock := func(tx store.Tx, rec *transition.Recorder, id, fresh uuid.UUID) error {
					_, _, err := o.lockTask(ctx, tx, rec, id, fresh, false)
					return err
				}
				round := func(i int) error {
					return transition.InTx(ctx, st, nil, "bench", func(tx store.Tx, rec *transition.Recorder) error {
						these := make([]uuid.UUID, batch)
						for j := range these {
							these[j] = ids[(i*batch+j)%tasks]
						}
						if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: these}); err != nil {
							return err
						}
						for j, id := range these {
							if err := lock(tx, rec, id, stepIDs[id][(i+j)%steps]); err != nil {
								return err
							}
						}
						return nil
					})
				}
				for i := range tasks / batch { // the cache warm, as after the creations
					if err := round(i); err != nil {
						b.Fatal(err)
					}
				}
				var before uint64
				if be.trips != nil {
					before = be.trips(st)
				}
				i := 0
				for b.Loop() {
					if err := round(i); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*batch), "ns/result")
				if be.trips != nil {
					b.ReportMetric(float64(be.trips(st)-before)/float64(i*batch), "trips/result")
				}
			})
		}
	}
}

// benchTasks creates n tasks of a chain of steps steps and returns their
// ids and their steps' ids.
func benchTasks(b *testing.B, st store.Store, n, steps int) ([]uuid.UUID, map[uuid.UUID][]uuid.UUID) {
	b.Helper()
	ids := make([]uuid.UUID, n)
	stepIDs := make(map[uuid.UUID][]uuid.UUID, n)
	retry := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential,
		Base: time.Second, Cap: time.Minute}
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		p := &store.TaskCreateParams{
			Task: &taskertype.Task{ID: ids[i], Namespace: "bench", Name: "chain", Version: "1.0.0", Context: json.RawMessage(`{}`)},
			At:   time.Now(), Processor: "bench",
		}
		for k := range steps {
			s := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: fmt.Sprint("s", k), Handler: "noop", Position: k,
				Retry: retry, Timeout: time.Minute}
			if k > 0 {
				s.DependsOn = []uuid.UUID{p.Steps[k-1].ID}
			}
			p.Steps = append(p.Steps, s)
			stepIDs[ids[i]] = append(stepIDs[ids[i]], s.ID)
		}
		if err := st.InTx(context.Background(), func(tx store.Tx) error { return tx.TaskCreate(context.Background(), p) }); err != nil {
			b.Fatal(err)
		}
	}
	return ids, stepIDs
}
