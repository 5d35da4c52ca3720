package tasker_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

func parseTemplate(t *testing.T, doc string) *template.Template {
	t.Helper()
	tpl, err := template.Parse("shared.yaml", []byte(doc))
	must(t, err)
	return tpl
}

const sharedV1 = `name: shared
namespace: test
version: 1.0.0
steps:
  - {name: one, handler: demo.add}
  - {name: two, handler: demo.square, depends_on: [one]}
`

// A template registered by one process (a worker at start-up) is used to
// create tasks by another that never loaded it: on PostgreSQL two engines
// on one database at once, on SQLite the engine opened again without the
// template.
func TestATemplateRegisteredByOneProcessIsUsedByAnother(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		cfg := database(t, backend)
		reg := cfg
		reg.Templates = []*template.Template{parseTemplate(t, sharedV1)}
		reg.DisableWorkers, reg.DisableOrchestration = true, true
		first, err := tasker.Open(ctx, reg)
		must(t, err)
		if backend == "sqlite" {
			must(t, first.Stop(ctx)) // one process at a time on the file
		} else {
			stopAtCleanup(t, first)
		}

		cfg.WorkerNamespaces = []string{"test"}
		second, err := tasker.Open(ctx, cfg)
		must(t, err)
		for name, h := range demo.Handlers() {
			must(t, second.RegisterHandler(name, h))
		}
		must(t, second.Start(ctx))
		stopAtCleanup(t, second)
		if n := len(second.Templates()); n != 0 {
			t.Fatalf("the second engine registered %d templates itself", n)
		}
		for _, version := range []string{"", "1.0.0"} {
			task, err := second.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Version: version, Context: map[string]int{"value": 2}})
			if err != nil {
				t.Fatalf("create a task from a template another process registered (version %q): %v", version, err)
			}
			if task.Version != "1.0.0" {
				t.Fatalf("task of version %q, want 1.0.0", task.Version)
			}
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			done, err := second.WaitTask(wctx, task.ID)
			cancel()
			must(t, err)
			if done.State != "complete" {
				t.Fatalf("task %s", done.State)
			}
		}
		_, err = second.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Version: "9.0.0"})
		if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), "registered versions of test/shared: 1.0.0") {
			t.Fatalf("create from an unknown version: %v, want ErrNotFound listing the registered versions", err)
		}
	})
}

// A registered version cannot change: registering another definition
// under it, from another process or this one, is refused with an error
// that says to bump the version, and stores nothing. The same definition
// again, however written, is accepted.
func TestAChangedTemplateUnderARegisteredVersionIsRefused(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		cfg := database(t, backend)
		cfg.DisableWorkers, cfg.DisableOrchestration = true, true
		first := cfg
		first.Templates = []*template.Template{parseTemplate(t, sharedV1)}
		a, err := tasker.Open(ctx, first)
		must(t, err)
		if backend == "sqlite" {
			must(t, a.Stop(ctx))
		} else {
			stopAtCleanup(t, a)
		}

		changed := parseTemplate(t, strings.Replace(sharedV1, "demo.square", "demo.multiply", 1))
		second := cfg
		second.Templates = []*template.Template{changed}
		_, err = tasker.Open(ctx, second)
		var ce *store.TemplateConflictError
		if !errors.As(err, &ce) || !errors.Is(err, taskertype.ErrInvalid) ||
			!strings.Contains(err.Error(), "test/shared@1.0.0") || !strings.Contains(err.Error(), "new version") {
			t.Fatalf("open with a changed template under a registered version: %v, want a conflict naming it and saying to give a new version", err)
		}

		b, err := tasker.Open(ctx, cfg)
		must(t, err)
		stopAtCleanup(t, b)
		// The same definition, written otherwise: accepted.
		same := parseTemplate(t, "# reformatted\n"+strings.Replace(sharedV1, "demo.add}", "demo.add, timeout: 30s}", 1))
		must(t, b.RegisterTemplate(ctx, same))
		must(t, b.RegisterTemplate(ctx, same))
		if err := b.RegisterTemplate(ctx, changed); !errors.As(err, &ce) {
			t.Fatalf("register a changed template: %v, want a conflict", err)
		}
		// ReplaceTemplates replaces the stored definition, not this
		// process's own registration: the error says so.
		r := cfg
		r.ReplaceTemplates = true
		if backend == "sqlite" {
			must(t, b.Stop(ctx)) // one process at a time on the file
		}
		c, err := tasker.Open(ctx, r)
		must(t, err)
		stopAtCleanup(t, c)
		must(t, c.RegisterTemplate(ctx, same))
		if err := c.RegisterTemplate(ctx, changed); !errors.As(err, &ce) || !ce.InProcess || !strings.Contains(err.Error(), "this process registered") {
			t.Fatalf("register in replace mode a changed template this process registered: %v, want an in-process conflict", err)
		}
		b = c
		// LoadTemplates stores all or none.
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(strings.Replace(sharedV1, "name: shared", "name: fresh", 1)), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(strings.Replace(sharedV1, "demo.square", "demo.multiply", 1)), 0o644))
		if err := b.LoadTemplates(ctx, dir); !errors.As(err, &ce) {
			t.Fatalf("load a directory with a changed template: %v, want a conflict", err)
		}
		if _, err := b.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "fresh"}); !errors.Is(err, taskertype.ErrNotFound) {
			t.Fatalf("a template of a load that failed was registered: %v", err)
		}
	})
}

// A version registered in this process is the latest at once, though the
// cache held the previous latest.
func TestRegisteringANewVersionMakesItTheLatestAtOnce(t *testing.T) {
	h := newHarness(t, sharedV1, nil)
	ctx := t.Context()
	task, err := h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Context: map[string]int{"value": 1}})
	must(t, err)
	if task.Version != "1.0.0" {
		t.Fatalf("version %s", task.Version)
	}
	must(t, h.eng.RegisterTemplate(ctx, parseTemplate(t, strings.Replace(sharedV1, "1.0.0", "1.1.0", 1))))
	task, err = h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Context: map[string]int{"value": 1}})
	must(t, err)
	if task.Version != "1.1.0" {
		t.Fatalf("latest after registering 1.1.0: %s", task.Version)
	}
}

// Processes starting together on one PostgreSQL database with the same
// templates all open: each template is stored once.
func TestEnginesOpeningTogetherStoreTheirTemplatesOnce(t *testing.T) {
	if !slices.Contains(backends(), "postgres") {
		t.Skip("PostgreSQL only: SQLite admits one process at a time")
	}
	ctx := t.Context()
	cfg := database(t, "postgres")
	cfg.DisableWorkers, cfg.DisableOrchestration = true, true
	cfg.Templates = []*template.Template{
		parseTemplate(t, sharedV1),
		parseTemplate(t, strings.Replace(sharedV1, "version: 1.0.0", "version: 1.1.0", 1)),
		parseTemplate(t, strings.Replace(sharedV1, "name: shared", "name: other", 1)),
	}
	// The first applies the migrations; the others check them.
	first, err := tasker.Open(ctx, cfg)
	must(t, err)
	stopAtCleanup(t, first)
	cfg.AutoMigrate = false
	errs := make(chan error, 6)
	engines := make(chan *tasker.Engine, 6)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			eng, err := tasker.Open(ctx, cfg)
			errs <- err
			if err == nil {
				engines <- eng
			}
		})
	}
	wg.Wait()
	close(errs)
	close(engines)
	for eng := range engines {
		stopAtCleanup(t, eng)
	}
	for err := range errs {
		if err != nil {
			t.Fatalf("open together: %v", err)
		}
	}
	task, err := first.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Context: map[string]int{"value": 1}})
	must(t, err)
	if task.Version != "1.1.0" {
		t.Fatalf("latest: %s, want 1.1.0", task.Version)
	}
}

// syncBuffer is a log destination safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With ReplaceTemplates, a changed definition under a registered version
// replaces the stored one, with a warning naming both digests; this
// process's cache drops the old one at once, so the next task takes the
// new steps.
func TestReplaceTemplatesReplacesTheStoredDefinition(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		cfg := database(t, backend)
		first := cfg
		first.Templates = []*template.Template{parseTemplate(t, sharedV1)}
		first.DisableWorkers, first.DisableOrchestration = true, true
		a, err := tasker.Open(ctx, first)
		must(t, err)
		must(t, a.Stop(ctx))

		var logs syncBuffer
		cfg.ReplaceTemplates, cfg.WorkerNamespaces = true, []string{"test"}
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		b, err := tasker.Open(ctx, cfg)
		must(t, err)
		for name, h := range demo.Handlers() {
			must(t, b.RegisterHandler(name, h))
		}
		must(t, b.Start(ctx))
		stopAtCleanup(t, b)
		last := func() string {
			t.Helper()
			task, err := b.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "shared", Version: "1.0.0", Context: map[string]int{"value": 2}})
			must(t, err)
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err = b.WaitTask(wctx, task.ID)
			must(t, err)
			info, err := b.Task(ctx, task.ID)
			must(t, err)
			for _, s := range info.Steps {
				if s.Name == "two" {
					return strings.Join(strings.Fields(string(s.Result)), "")
				}
			}
			t.Fatal("no step two")
			return ""
		}
		if got := last(); got != `{"value":9}` {
			t.Fatalf("the stored definition: step two %s, want 9 ((2+1)²)", got)
		}
		changed := parseTemplate(t, strings.Replace(sharedV1, "demo.square", "demo.add", 1))
		must(t, b.RegisterTemplate(ctx, changed))
		if got := last(); got != `{"value":4}` {
			t.Fatalf("after the replace: step two %s, want 4 (2+1+1): the new definition", got)
		}
		log := logs.String()
		if !strings.Contains(log, "stored template replaced") || !strings.Contains(log, "old_digest=") || !strings.Contains(log, "new_digest=") {
			t.Fatalf("the replace was not logged with both digests:\n%s", log)
		}
	})
}
