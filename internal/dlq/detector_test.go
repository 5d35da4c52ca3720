package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

var start = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// backend opens stores on one database: open(t) may be called more than
// once, for as many "processes".
type backend struct {
	name string
	open func(t *testing.T, clock taskertype.Clock) store.Store
}

func onBackends(t *testing.T, test func(t *testing.T, b backend)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.db")
		var (
			mu sync.Mutex
			st *storesqlite.Store
		)
		test(t, backend{name: "sqlite", open: func(t *testing.T, clock taskertype.Clock) store.Store {
			// One process per SQLite database: every "process" shares it.
			mu.Lock()
			defer mu.Unlock()
			if st == nil {
				s, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: path, Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				st = s
			}
			return st
		}})
	})
	if os.Getenv(pgtest.EnvURL) == "" {
		return
	}
	t.Run("postgres", func(t *testing.T) {
		_, url := pgtest.Schema(t)
		test(t, backend{name: "postgres", open: func(t *testing.T, clock taskertype.Clock) store.Store {
			s, err := storepg.Open(t.Context(), storepg.Config{URL: url, AutoMigrate: true, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}})
	})
}

type templates map[string]*template.Template

func (ts templates) get(_ context.Context, ns, name, version string) (*template.Template, error) {
	if t := ts[ns+"/"+name+"@"+version]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("template %s/%s@%s: %w", ns, name, version, taskertype.ErrNotFound)
}

func withLifecycle(name string, lc *template.Lifecycle) *template.Template {
	return &template.Template{Namespace: "shop", Name: name, Version: "1.0.0", Lifecycle: lc}
}

// paths from pending to each state a task can be stuck in.
var paths = map[taskertype.TaskState][]taskertype.TaskEvent{
	taskertype.TaskWaitingForDependencies: {taskertype.TaskEventStart, taskertype.TaskEventNoReadySteps},
	taskertype.TaskStepsInProcess:         {taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventStepsEnqueued},
	taskertype.TaskWaitingForRetry: {taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventStepsEnqueued,
		taskertype.TaskEventRetryScheduled},
}

// stuck creates a task of template name with one step and moves it to
// state at the clock's time.
func stuck(t *testing.T, st store.Store, clock *testclock.Clock, name string, state taskertype.TaskState) uuid.UUID {
	t.Helper()
	ctx := t.Context()
	id, sid := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	task := &taskertype.Task{ID: id, Namespace: "shop", Name: name, Version: "1.0.0", Context: json.RawMessage(`{}`)}
	err := transition.InTx(ctx, st, nil, "test", func(tx store.Tx, rec *transition.Recorder) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, At: clock.Now(), Processor: "test",
			Steps: []*taskertype.Step{{ID: sid, Name: "charge", Handler: "charge", Timeout: time.Minute,
				Retry: taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffNone}}}}); err != nil {
			return err
		}
		task.State = taskertype.TaskPending
		for _, ev := range paths[state] {
			if err := rec.Task(ctx, tx, task, ev, clock.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("stuck task in %s: %v", state, err)
	}
	return id
}

func detector(t *testing.T, st store.Store, clock *testclock.Clock, ts templates, mod func(*Config)) *Detector {
	t.Helper()
	cfg := Config{Store: st, Templates: ts.get, Clock: clock}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, d *Detector) Report {
	t.Helper()
	rep, err := d.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return rep
}

func entries(t *testing.T, st store.Store, task uuid.UUID) []*taskertype.DLQEntry {
	t.Helper()
	es, err := st.DLQList(t.Context(), &store.DLQListParams{TaskID: task})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func state(t *testing.T, st store.Store, id uuid.UUID) taskertype.TaskState {
	t.Helper()
	task, err := st.TaskGet(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return task.State
}

func TestATaskStuckPastTheDefaultThresholdGetsOneEntryAndMovesToError(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st := b.open(t, clock)
		deps := stuck(t, st, clock, "order", taskertype.TaskWaitingForDependencies)
		retry := stuck(t, st, clock, "order", taskertype.TaskWaitingForRetry)
		d := detector(t, st, clock, templates{}, nil)

		clock.Advance(59 * time.Minute) // retry's 30 min passed, deps' 60 not yet
		rep := run(t, d)
		if !rep.Leader || len(rep.Stale) != 1 || rep.Stale[0].TaskID != retry {
			t.Fatalf("at 59 min: %+v, want only the task waiting for retry", rep)
		}
		if got := state(t, st, deps); got != taskertype.TaskWaitingForDependencies {
			t.Fatalf("the task waiting for dependencies is %s before its 60 minutes", got)
		}
		clock.Advance(2 * time.Minute)
		rep = run(t, d)
		if len(rep.Stale) != 1 || rep.Stale[0].TaskID != deps || rep.Stale[0].Threshold != time.Hour {
			t.Fatalf("at 61 min: %+v, want the task waiting for dependencies, threshold 1h", rep)
		}
		for _, id := range []uuid.UUID{deps, retry} {
			if got := state(t, st, id); got != taskertype.TaskError {
				t.Fatalf("task %s is %s, want error", id, got)
			}
			es := entries(t, st, id)
			if len(es) != 1 {
				t.Fatalf("task %s has %d entries, want 1", id, len(es))
			}
			e := es[0]
			if e.Reason != taskertype.DLQStalenessTimeout || e.ResolutionStatus != taskertype.DLQPending || e.TaskID != id {
				t.Fatalf("entry %+v", e)
			}
			var snap map[string]any
			if err := json.Unmarshal(e.TaskSnapshot, &snap); err != nil || snap["namespace"] != "shop" ||
				snap["task_name"] != "order" || snap["current_state"] != string(e.OriginalState) || snap["steps"] == nil {
				t.Fatalf("snapshot %s (%v)", e.TaskSnapshot, err)
			}
			var meta map[string]any
			if err := json.Unmarshal(e.Metadata, &meta); err != nil || meta["detection_method"] != "automatic_staleness" {
				t.Fatalf("metadata %s (%v)", e.Metadata, err)
			}
		}
		trs, err := st.TransitionList(t.Context(), &store.TransitionListParams{TaskID: deps})
		if err != nil {
			t.Fatal(err)
		}
		last := trs[len(trs)-1]
		if last.Event != string(taskertype.TaskEventStalenessTimeout) || last.To != string(taskertype.TaskError) {
			t.Fatalf("last transition %+v, want staleness_timeout to error", last)
		}
		// The episode is recorded once: later runs find nothing.
		clock.Advance(24 * time.Hour)
		if rep := run(t, d); len(rep.Stale) != 0 {
			t.Fatalf("a later run acted again: %+v", rep)
		}
		if n := len(entries(t, st, deps)); n != 1 {
			t.Fatalf("%d entries after a later run", n)
		}
	})
}

func TestTemplateLifecycleSetsThresholdsAndTheAction(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st := b.open(t, clock)
		ts := templates{
			"shop/fast@1.0.0":    withLifecycle("fast", &template.Lifecycle{MaxStepsInProcessMinutes: 5, StalenessAction: template.StalenessDLQ}),
			"shop/errors@1.0.0":  withLifecycle("errors", &template.Lifecycle{MaxStepsInProcessMinutes: 5, StalenessAction: template.StalenessError}),
			"shop/watched@1.0.0": withLifecycle("watched", &template.Lifecycle{MaxStepsInProcessMinutes: 5, StalenessAction: template.StalenessNone}),
			"shop/long@1.0.0": withLifecycle("long", &template.Lifecycle{MaxStepsInProcessMinutes: template.MaxThresholdMinutesLimit,
				MaxDurationMinutes: 20}),
		}
		fast := stuck(t, st, clock, "fast", taskertype.TaskStepsInProcess)
		errs := stuck(t, st, clock, "errors", taskertype.TaskStepsInProcess)
		watched := stuck(t, st, clock, "watched", taskertype.TaskStepsInProcess)
		long := stuck(t, st, clock, "long", taskertype.TaskStepsInProcess)
		d := detector(t, st, clock, ts, nil)

		clock.Advance(6 * time.Minute)
		rep := run(t, d)
		got := map[uuid.UUID]Action{}
		for _, a := range rep.Stale {
			got[a.TaskID] = a
		}
		if len(rep.Stale) != 3 || got[fast].EntryID == uuid.Nil || !got[fast].MovedToError ||
			got[errs].EntryID != uuid.Nil || !got[errs].MovedToError ||
			got[watched].Action != template.StalenessNone || got[watched].MovedToError {
			t.Fatalf("at 6 min: %+v", rep)
		}
		if state(t, st, fast) != taskertype.TaskError || len(entries(t, st, fast)) != 1 {
			t.Fatal("dlq: the task is not in error with one entry")
		}
		if state(t, st, errs) != taskertype.TaskError || len(entries(t, st, errs)) != 0 {
			t.Fatal("error: the task is not in error without an entry")
		}
		if state(t, st, watched) != taskertype.TaskStepsInProcess || len(entries(t, st, watched)) != 0 {
			t.Fatal("none: the task was changed")
		}
		if state(t, st, long) != taskertype.TaskStepsInProcess {
			t.Fatal("a task within its template's thresholds was moved")
		}
		// The whole task's maximum duration.
		clock.Advance(15 * time.Minute)
		rep = run(t, d)
		found := false
		for _, a := range rep.Stale {
			if a.TaskID == long {
				found = a.Threshold == 20*time.Minute && a.EntryID != uuid.Nil
			}
		}
		if !found || state(t, st, long) != taskertype.TaskError {
			t.Fatalf("past max_duration_minutes: %+v", rep)
		}
	})
}

func TestARunActsOnAtMostItsBatchOldestFirst(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st := b.open(t, clock)
		var ids []uuid.UUID
		for range 5 {
			ids = append(ids, stuck(t, st, clock, "order", taskertype.TaskWaitingForRetry))
			clock.Advance(time.Second)
		}
		d := detector(t, st, clock, templates{}, func(c *Config) { c.BatchSize = 2 })
		clock.Advance(time.Hour)
		for i, want := range [][]uuid.UUID{ids[:2], ids[2:4], ids[4:]} {
			rep := run(t, d)
			if len(rep.Stale) != len(want) {
				t.Fatalf("run %d acted on %d, want %d", i, len(rep.Stale), len(want))
			}
			for j, a := range rep.Stale {
				if a.TaskID != want[j] {
					t.Fatalf("run %d: task %d is %s, want %s (oldest in its state first)", i, j, a.TaskID, want[j])
				}
			}
		}
	})
}

func TestOnlyOneDetectorOfADatabaseActsAtATime(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st1, st2 := b.open(t, clock), b.open(t, clock) // two processes (one on SQLite)
		id := stuck(t, st1, clock, "order", taskertype.TaskWaitingForDependencies)
		clock.Advance(2 * time.Hour)
		var other Report
		second := detector(t, st2, clock, templates{}, nil)
		first := detector(t, st1, clock, templates{}, func(c *Config) {
			c.testHoldingLock = func() {
				// While the first holds the lock, the second runs whole.
				var err error
				if other, err = second.RunOnce(context.WithoutCancel(t.Context())); err != nil {
					t.Error(err)
				}
			}
		})
		rep := run(t, first)
		if !rep.Leader || len(rep.Stale) != 1 {
			t.Fatalf("the first detector: %+v", rep)
		}
		if other.Leader || len(other.Stale) != 0 {
			t.Fatalf("the second detector ran while the first held the lock: %+v", other)
		}
		if n := len(entries(t, st1, id)); n != 1 {
			t.Fatalf("%d entries, want 1", n)
		}
		// The lock is let go: the second runs next time (and finds nothing).
		if rep := run(t, second); !rep.Leader || len(rep.Stale) != 0 {
			t.Fatalf("the second detector after the first: %+v", rep)
		}
	})
}

func TestConfigErrorsSayWhatToGive(t *testing.T) {
	st := &storesqlite.Store{}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Templates: templates{}.get}, "Store is required"},
		{Config{Store: st}, "Templates is required"},
		{Config{Store: st, Templates: templates{}.get, Interval: time.Millisecond}, "below 1s"},
		{Config{Store: st, Templates: templates{}.get, BatchSize: -1}, "batch size"},
		{Config{Store: st, Templates: templates{}.get, Defaults: Thresholds{WaitingForRetry: time.Second}}, "waiting for retry"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
}

// auto_fail_on_timeout: false keeps a stale task in its state (the DLQ
// entry is still recorded, once); auto_dlq_on_timeout: false moves it to
// error without an entry.
func TestLifecycleAutoFlagsTurnOffEitherEffect(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st := b.open(t, clock)
		no := false
		ts := templates{
			"shop/keep@1.0.0":    withLifecycle("keep", &template.Lifecycle{MaxStepsInProcessMinutes: 5, StalenessAction: template.StalenessDLQ, AutoFailOnTimeout: &no}),
			"shop/noentry@1.0.0": withLifecycle("noentry", &template.Lifecycle{MaxStepsInProcessMinutes: 5, StalenessAction: template.StalenessDLQ, AutoDLQOnTimeout: &no}),
		}
		keep := stuck(t, st, clock, "keep", taskertype.TaskStepsInProcess)
		noentry := stuck(t, st, clock, "noentry", taskertype.TaskStepsInProcess)
		d := detector(t, st, clock, ts, nil)
		clock.Advance(6 * time.Minute)
		run(t, d)
		if state(t, st, keep) != taskertype.TaskStepsInProcess || len(entries(t, st, keep)) != 1 {
			t.Fatalf("auto_fail_on_timeout false: state %s, %d entries; want unchanged with one entry", state(t, st, keep), len(entries(t, st, keep)))
		}
		if state(t, st, noentry) != taskertype.TaskError || len(entries(t, st, noentry)) != 0 {
			t.Fatalf("auto_dlq_on_timeout false: state %s, %d entries; want error without an entry", state(t, st, noentry), len(entries(t, st, noentry)))
		}
		// The next run finds the kept task again and records nothing more.
		clock.Advance(6 * time.Minute)
		rep := run(t, d)
		for _, a := range rep.Stale {
			if a.TaskID == keep {
				t.Errorf("the kept task was acted on again: %+v", a)
			}
		}
		if len(entries(t, st, keep)) != 1 {
			t.Errorf("%d entries for the kept task, want 1", len(entries(t, st, keep)))
		}
	})
}

// A task whose step runs within its timeout, or waits for a retry not yet
// due, is not stale however long it has been in its state.
func TestATaskWaitingOnTimeItWasGivenIsNotStale(t *testing.T) {
	steps := []*taskertype.Step{{State: taskertype.StepInProgress, StartedAt: start, Timeout: 2 * time.Hour}}
	if !waitingOnTime(steps, start.Add(time.Hour)) || waitingOnTime(steps, start.Add(3*time.Hour)) {
		t.Error("a step in progress: within its timeout it waits on time, past it not")
	}
	retry := []*taskertype.Step{{State: taskertype.StepWaitingForRetry, NextRetryAt: start.Add(time.Hour)}}
	if !waitingOnTime(retry, start.Add(59*time.Minute)) || waitingOnTime(retry, start.Add(61*time.Minute)) {
		t.Error("a step waiting for a retry: before it is due it waits on time, after not")
	}
}

func TestATaskWhoseStepNoWorkerTookIsWorkerUnavailable(t *testing.T) {
	onBackends(t, func(t *testing.T, b backend) {
		clock := testclock.New(start)
		st := b.open(t, clock)
		ctx := t.Context()
		waiting := stuck(t, st, clock, "order", taskertype.TaskStepsInProcess)
		running := stuck(t, st, clock, "order", taskertype.TaskStepsInProcess)
		// waiting's step is enqueued and no worker ever takes it (its
		// handler is served by no one); running's step started and
		// outlived its timeout.
		for id, evs := range map[uuid.UUID][]taskertype.StepEvent{
			waiting: {taskertype.StepEventEnqueue},
			running: {taskertype.StepEventEnqueue, taskertype.StepEventStart},
		} {
			err := transition.InTx(ctx, st, nil, "test", func(tx store.Tx, rec *transition.Recorder) error {
				steps, err := tx.StepList(ctx, id)
				if err != nil {
					return err
				}
				for _, ev := range evs {
					if err := rec.Step(ctx, tx, steps[0], ev, clock.Now(), func(s *taskertype.Step) {
						if ev == taskertype.StepEventStart {
							s.Attempts, s.StartedAt = 1, clock.Now()
						}
					}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(31 * time.Minute)
		rep := run(t, detector(t, st, clock, templates{}, nil))
		if len(rep.Stale) != 2 {
			t.Fatalf("report %+v, want both tasks", rep)
		}
		for id, want := range map[uuid.UUID]taskertype.DLQReason{waiting: taskertype.DLQWorkerUnavailable, running: taskertype.DLQStalenessTimeout} {
			es := entries(t, st, id)
			if len(es) != 1 || es[0].Reason != want {
				t.Fatalf("task %s: entries %+v, want one with reason %s", id, es, want)
			}
		}
	})
}
