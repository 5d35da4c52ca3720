package tasker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// One template per identity strategy, the strict one in the tasker-core
// dialect without the key (strict is the default).
const identityTemplates = `name: strict_job
namespace_name: test
version: 1.0.0
steps:
  - name: only
    handler: {callable: demo.noop}
---
name: keyed_job
namespace: test
version: 1.0.0
identity_strategy: caller_provided
steps:
  - {name: only, handler: demo.noop}
---
name: unique_job
namespace_name: test
version: 1.0.0
identity_strategy: always_unique
steps:
  - name: only
    handler: {callable: demo.noop}
---
name: declared_strict_job
namespace: test
version: 1.0.0
identity_strategy: strict
steps:
  - {name: only, handler: demo.noop}
`

// createConcurrently creates n tasks at once with the same parameters on
// the given engines (round robin) and returns the created ones and the
// errors.
func createConcurrently(t *testing.T, engines []*tasker.Engine, n int, p tasker.CreateTaskParams) ([]*tasker.Task, []error) {
	t.Helper()
	var (
		mu      sync.Mutex
		created []*tasker.Task
		errs    []error
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			task, err := engines[i%len(engines)].CreateTask(t.Context(), p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			created = append(created, task)
		}()
	}
	close(start)
	wg.Wait()
	return created, errs
}

// tasksNamed counts the stored tasks of a template.
func tasksNamed(t *testing.T, eng *tasker.Engine, name string) []*tasker.Task {
	t.Helper()
	all, err := eng.Tasks(t.Context(), 10000)
	must(t, err)
	var out []*tasker.Task
	for _, task := range all {
		if task.Name == name {
			out = append(out, task)
		}
	}
	return out
}

// checkOne: exactly one create succeeded, every other failed with a
// DuplicateTaskError naming it, and one task is stored.
func checkOne(t *testing.T, eng *tasker.Engine, name string, created []*tasker.Task, errs []error) {
	t.Helper()
	if len(created) != 1 {
		t.Fatalf("%d creates succeeded, want exactly 1 (errors: %v)", len(created), errs)
	}
	for _, err := range errs {
		var dup *tasker.DuplicateTaskError
		if !errors.Is(err, tasker.ErrDuplicateTask) || !errors.As(err, &dup) {
			t.Errorf("a duplicate create failed with %v, want ErrDuplicateTask", err)
			continue
		}
		if dup.ExistingID != created[0].ID {
			t.Errorf("the duplicate error names %s, want the created task %s", dup.ExistingID, created[0].ID)
		}
	}
	if stored := tasksNamed(t, eng, name); len(stored) != 1 || stored[0].ID != created[0].ID {
		t.Errorf("%d tasks of %s stored, want the one created", len(stored), name)
	}
}

const concurrentCreates = 16

func TestIdentityStrategiesUnderConcurrentCreates(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := &harness{t: t, eng: identityEngine(t, database(t, backend))}
		engines := []*tasker.Engine{h.eng}

		t.Run("strict", func(t *testing.T) {
			p := tasker.CreateTaskParams{Namespace: "test", Name: "strict_job", Context: map[string]any{"order": 7, "items": []int{1, 2}}}
			created, errs := createConcurrently(t, engines, concurrentCreates, p)
			checkOne(t, h.eng, "strict_job", created, errs)
			// The same context spelled otherwise is the same task.
			_, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "strict_job",
				Context: `{ "items": [1, 2.0], "order": 7e0 }`})
			var dup *tasker.DuplicateTaskError
			if !errors.As(err, &dup) || dup.ExistingID != created[0].ID {
				t.Errorf("the same context spelled otherwise: %v, want a duplicate of %s", err, created[0].ID)
			}
			// Another context is another task.
			other, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "strict_job", Context: map[string]any{"order": 8}})
			must(t, err)
			if other.ID == created[0].ID || other.Request.IdentityHash == created[0].Request.IdentityHash {
				t.Errorf("another context got the same task or identity")
			}
			// An idempotency key overrides: the same context with a key is
			// another identity, and the key is unique in turn.
			p.IdempotencyKey = "strict-key"
			keyed, errs := createConcurrently(t, engines, concurrentCreates, p)
			if len(keyed) != 1 || len(errs) != concurrentCreates-1 {
				t.Fatalf("with a key: %d created, %d failed; want 1 and %d", len(keyed), len(errs), concurrentCreates-1)
			}
			if keyed[0].ID == created[0].ID {
				t.Error("the key did not override the strict identity")
			}
		})

		t.Run("caller_provided", func(t *testing.T) {
			_, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "keyed_job"})
			if !errors.Is(err, taskertype.ErrInvalid) || errors.Is(err, tasker.ErrDuplicateTask) {
				t.Fatalf("no key: %v, want ErrInvalid saying a key is required", err)
			}
			if got := tasksNamed(t, h.eng, "keyed_job"); len(got) != 0 {
				t.Fatalf("a refused create stored %d tasks", len(got))
			}
			p := tasker.CreateTaskParams{Namespace: "test", Name: "keyed_job", IdempotencyKey: "order-42", Context: map[string]any{"n": 1}}
			created, errs := createConcurrently(t, engines, concurrentCreates, p)
			checkOne(t, h.eng, "keyed_job", created, errs)
			// The key alone is the identity: another context, same key.
			p.Context = map[string]any{"n": 2}
			_, err = h.eng.CreateTask(t.Context(), p)
			if !errors.Is(err, tasker.ErrDuplicateTask) {
				t.Errorf("same key, other context: %v, want ErrDuplicateTask", err)
			}
			p.IdempotencyKey = "order-43"
			if _, err := h.eng.CreateTask(t.Context(), p); err != nil {
				t.Errorf("another key: %v", err)
			}
		})

		t.Run("always_unique", func(t *testing.T) {
			p := tasker.CreateTaskParams{Namespace: "test", Name: "unique_job", Context: map[string]any{"n": 1}}
			created, errs := createConcurrently(t, engines, concurrentCreates, p)
			if len(created) != concurrentCreates || len(errs) != 0 {
				t.Fatalf("%d created, errors %v; want all %d", len(created), errs, concurrentCreates)
			}
			for _, task := range created {
				if task.Request.IdentityHash != "" {
					t.Errorf("an always_unique task without a key has identity %q", task.Request.IdentityHash)
				}
			}
			if got := tasksNamed(t, h.eng, "unique_job"); len(got) != concurrentCreates {
				t.Errorf("%d tasks stored, want %d", len(got), concurrentCreates)
			}
			// An idempotency key always overrides.
			p.IdempotencyKey = "once"
			before := len(tasksNamed(t, h.eng, "unique_job"))
			keyed, errs := createConcurrently(t, engines, concurrentCreates, p)
			if len(keyed) != 1 {
				t.Fatalf("with a key: %d created (errors %v), want 1", len(keyed), errs)
			}
			for _, err := range errs {
				var dup *tasker.DuplicateTaskError
				if !errors.As(err, &dup) || dup.ExistingID != keyed[0].ID {
					t.Errorf("a duplicate keyed create: %v, want a DuplicateTaskError naming %s", err, keyed[0].ID)
				}
			}
			if after := len(tasksNamed(t, h.eng, "unique_job")); after != before+1 {
				t.Errorf("%d tasks stored after the keyed creates, want %d", after, before+1)
			}
		})
	})
}

// Two engines on one PostgreSQL database, creating the same task at once:
// the unique identity leaves exactly one, whichever process wins.
func TestDuplicateCreatesAcrossTwoEngines(t *testing.T) {
	if !contains(backends(), "postgres") {
		t.Skip("needs PostgreSQL: set TASKER_TEST_POSTGRES_URL")
	}
	db := database(t, "postgres")
	a := identityEngine(t, db)
	db.AutoMigrate = false
	b := identityEngine(t, db)
	engines := []*tasker.Engine{a, b}
	for _, tc := range []struct {
		name string
		p    tasker.CreateTaskParams
	}{
		{"strict", tasker.CreateTaskParams{Namespace: "test", Name: "strict_job", Context: map[string]any{"order": 1}}},
		{"caller_provided", tasker.CreateTaskParams{Namespace: "test", Name: "keyed_job", IdempotencyKey: "k-1"}},
		{"always_unique with a key", tasker.CreateTaskParams{Namespace: "test", Name: "unique_job", IdempotencyKey: "k-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, errs := createConcurrently(t, engines, 2*concurrentCreates, tc.p)
			checkOne(t, a, tc.p.Name, created, errs)
		})
	}
}

// identityEngine is an engine with the identity templates on db, under
// the engine's own default strategy (strict).
func identityEngine(t *testing.T, db tasker.Config) *tasker.Engine {
	t.Helper()
	return newHarnessWithDefault(t, db, "")
}

// The task request's fields are stored and read back by Task and Tasks;
// a correlation id is made when none is given.
func TestTaskRequestFieldsRoundTrip(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := newHarnessOn(t, backend, identityTemplates, nil)
		corr, parent := uuid.New(), uuid.New()
		p := tasker.CreateTaskParams{Namespace: "test", Name: "unique_job", Context: map[string]any{"a": 1},
			Priority: -7, CorrelationID: corr, ParentCorrelationID: parent,
			Initiator: "user:alice", SourceSystem: "billing", Reason: "monthly run \"quoted\"",
			Tags: []string{"team:payments", `with "quotes", a comma and \ backslash`, "ünïcode"}, IdempotencyKey: "key 1"}
		task, err := h.eng.CreateTask(t.Context(), p)
		must(t, err)
		want := tasker.TaskRequest{Priority: -7, CorrelationID: corr, ParentCorrelationID: parent,
			Initiator: "user:alice", SourceSystem: "billing", Reason: p.Reason, Tags: p.Tags, IdempotencyKey: "key 1",
			IdentityHash: task.Request.IdentityHash}
		if len(want.IdentityHash) != 64 {
			t.Errorf("identity hash %q, want 64 hex digits", want.IdentityHash)
		}
		info, err := h.eng.Task(t.Context(), task.ID)
		must(t, err)
		for what, got := range map[string]tasker.TaskRequest{"returned": task.Request, "Task": info.Task.Request} {
			if !sameRequest(got, want) {
				t.Errorf("%s: %+v, want %+v", what, got, want)
			}
		}
		listed := tasksNamed(t, h.eng, "unique_job")
		if len(listed) != 1 || !sameRequest(listed[0].Request, want) {
			t.Errorf("Tasks: %+v, want one with %+v", listed, want)
		}

		// Nothing given: a correlation id is made, the rest is empty.
		bare, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "unique_job"})
		must(t, err)
		info, err = h.eng.Task(t.Context(), bare.ID)
		must(t, err)
		got := info.Task.Request
		if got.CorrelationID == uuid.Nil || got.CorrelationID != bare.Request.CorrelationID || got.ParentCorrelationID != uuid.Nil ||
			got.Priority != 0 || got.Tags != nil || got.Initiator != "" || got.IdentityHash != "" || got.IdempotencyKey != "" {
			t.Errorf("a bare task's request: %+v", got)
		}
	})
}

func sameRequest(a, b tasker.TaskRequest) bool {
	return slices.Equal(a.Tags, b.Tags) && a.Priority == b.Priority && a.CorrelationID == b.CorrelationID &&
		a.ParentCorrelationID == b.ParentCorrelationID && a.Initiator == b.Initiator && a.SourceSystem == b.SourceSystem &&
		a.Reason == b.Reason && a.IdempotencyKey == b.IdempotencyKey && a.IdentityHash == b.IdentityHash
}

// Bad request fields are refused with ErrInvalid, naming the field, and
// store nothing.
func TestBadTaskRequestFields(t *testing.T) {
	h := newHarness(t, identityTemplates, nil)
	long := string(make([]byte, tasker.MaxRequestBytes+1))
	for name, p := range map[string]tasker.CreateTaskParams{
		"priority":        {Priority: 1 << 40},
		"initiator":       {Initiator: long},
		"tag":             {Tags: []string{"ok", ""}},
		"tags":            {Tags: make([]string, tasker.MaxTags+1)},
		"idempotency_key": {IdempotencyKey: "   "},
		"reason":          {Reason: "a\x00b"},
	} {
		p.Namespace, p.Name = "test", "unique_job"
		_, err := h.eng.CreateTask(t.Context(), p)
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		} else if !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), strings.ReplaceAll(name, "_", " ")) {
			t.Errorf("%s: %q does not name the field", name, err)
		}
	}
	if got := tasksNamed(t, h.eng, "unique_job"); len(got) != 0 {
		t.Errorf("bad creates stored %d tasks", len(got))
	}
}

// Config.DefaultIdentityStrategy applies to the templates that declare no
// strategy, and only to them; a bad one is refused.
func TestDefaultIdentityStrategy(t *testing.T) {
	db := database(t, "sqlite")
	bad := db
	bad.DefaultIdentityStrategy = "unique"
	if _, err := tasker.Open(t.Context(), bad); !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "DefaultIdentityStrategy") {
		t.Fatalf("a bad default: %v, want ErrInvalid naming it", err)
	}
	h := newHarnessWithDefault(t, db, tasker.IdentityAlwaysUnique)
	for range 2 {
		_, err := h.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "strict_job"})
		must(t, err)
	}
	_, err := h.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "declared_strict_job"})
	must(t, err)
	_, err = h.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "declared_strict_job"})
	if !errors.Is(err, tasker.ErrDuplicateTask) {
		t.Errorf("a template declaring strict under an always_unique default: %v, want ErrDuplicateTask", err)
	}
}

func newHarnessWithDefault(t *testing.T, db tasker.Config, s tasker.IdentityStrategy) *tasker.Engine {
	t.Helper()
	var tpls []*template.Template
	for i, doc := range strings.Split(identityTemplates, "\n---\n") {
		tpl, err := template.Parse(fmt.Sprint(i)+".yaml", []byte(doc))
		must(t, err)
		tpls = append(tpls, tpl)
	}
	db.Templates, db.DefaultIdentityStrategy = tpls, s
	eng, err := tasker.Open(t.Context(), db)
	must(t, err)
	for name, h := range demo.Handlers() {
		must(t, eng.RegisterHandler(name, h))
	}
	must(t, eng.Start(t.Context()))
	stopAtCleanup(t, eng)
	return eng
}

// A Go handler's input carries its task's correlation ids, on every
// backend, for each step (the second started in a transaction of its own).
func TestHandlersSeeTheTaskCorrelationIDs(t *testing.T) {
	const tpl = `name: corr
namespace: test
version: 1.0.0
steps:
  - {name: a, handler: test.corr}
  - {name: b, handler: test.corr, depends_on: [a]}
`
	onBackends(t, func(t *testing.T, backend string) {
		type seen struct{ corr, parent uuid.UUID }
		got := make(chan seen, 2)
		h := newHarnessOn(t, backend, tpl, map[string]tasker.Handler{
			"test.corr": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
				got <- seen{in.CorrelationID, in.ParentCorrelationID}
				return nil, nil
			}),
		})
		corr, parent := uuid.New(), uuid.New()
		task, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "corr", Context: map[string]any{},
			CorrelationID: corr, ParentCorrelationID: parent})
		must(t, err)
		if info := h.wait(task); info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task %s", info.Task.State)
		}
		for i := range 2 {
			if s := <-got; s.corr != corr || s.parent != parent {
				t.Errorf("step %d saw correlation ids %s, %s; want %s, %s", i+1, s.corr, s.parent, corr, parent)
			}
		}
	})
}
