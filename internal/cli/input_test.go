package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// Every error line carries the program's name once, also when the error
// comes from the engine, whose errors start with it too.
func TestErrorsCarryOnePrefix(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	for _, args := range [][]string{
		{"run", filepath.Join(examples, "linear.yaml"), "--db", db, "-c", `{"value": "x"}`},
		{"task", "show", "0193a5b2-0000-7000-8000-000000000000", "--db", db},
		{"run", filepath.Join(examples, "nope.yaml"), "--db", db},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != ExitBadInput || !strings.HasPrefix(errOut, "tasker: ") || strings.Contains(errOut, "tasker: tasker:") {
			t.Errorf("tasker %s: exit %d, stderr:\n%s\nwant exit 2 and one \"tasker: \" prefix", strings.Join(args, " "), code, errOut)
		}
	}
}

// A command that takes one template file says so when given a directory.
func TestADirectoryForATemplateFileIsBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	for _, args := range [][]string{{"run", examples, "--db", db}, {"task", "create", examples, "--db", db}} {
		code, _, errOut := runCLI(t, args...)
		if code != ExitBadInput || !strings.Contains(errOut, "is a directory") || !strings.Contains(errOut, "tasker template validate") {
			t.Errorf("tasker %s: exit %d, stderr:\n%s\nwant exit 2 saying it is a directory and what takes one", strings.Join(args, " "), code, errOut)
		}
	}
}

func TestSizeLimitFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	linear := filepath.Join(examples, "linear.yaml")
	t.Run("a context over --max-context-bytes exits 2 naming the flag", func(t *testing.T) {
		code, _, errOut := runCLI(t, "run", linear, "--db", db, "-c", `{"value": 3, "padding": "pppppppppp"}`, "--max-context-bytes", "20")
		if code != ExitBadInput || !strings.Contains(errOut, "limit of 20") || !strings.Contains(errOut, "--max-context-bytes") {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		code, _, errOut = runCLI(t, "task", "create", linear, "--db", db, "-c", `{"value": 3, "padding": "pppppppppp"}`, "--max-context-bytes", "20")
		if code != ExitBadInput || !strings.Contains(errOut, "--max-context-bytes") {
			t.Fatalf("task create: exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("a result over --max-result-bytes fails its step naming the flag", func(t *testing.T) {
		code, out, errOut := runCLI(t, "run", linear, "--db", db, "-c", `{"value": 3}`, "--max-result-bytes", "5", "-q", "-o", "json")
		if code != ExitFailed {
			t.Fatalf("exit %d, stderr:\n%s", code, errOut)
		}
		var s summaryJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatal(err)
		}
		first := s.Steps[0]
		if first.Failure == nil || first.Failure.Retryable || len(first.Result) != 0 || !strings.Contains(first.Failure.Message, "--max-result-bytes") {
			t.Fatalf("step %s: %+v, result %s; want a permanent failure naming --max-result-bytes and no result", first.Name, first.Failure, first.Result)
		}
	})
}

// task show and task list read PostgreSQL too, from --database-url or
// TASKER_DATABASE_URL.
func TestTaskShowAndListTakeADatabaseURL(t *testing.T) {
	t.Run("the flag is there", func(t *testing.T) {
		// Nothing listens on port 1: the command gets as far as connecting.
		code, _, errOut := runCLI(t, "task", "list", "--database-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=5")
		if code != ExitFailed || strings.Contains(errOut, "unknown flag") || !strings.Contains(errOut, "127.0.0.1") {
			t.Fatalf("exit %d, stderr:\n%s\nwant a failure to connect", code, errOut)
		}
	})
	t.Run("on PostgreSQL", func(t *testing.T) {
		_, url := pgtest.Schema(t)
		code, out, errOut := runCLI(t, "task", "create", filepath.Join(examples, "linear.yaml"), "-c", `{"value": 3}`, "--database-url", url, "--migrate")
		if code != ExitOK {
			t.Fatalf("task create: exit %d, stderr:\n%s", code, errOut)
		}
		id := strings.TrimSpace(out)
		code, out, errOut = runCLI(t, "task", "show", id, "--database-url", url)
		if code != ExitOK || !strings.Contains(out, "add_one") {
			t.Fatalf("task show: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		t.Setenv("TASKER_DATABASE_URL", url)
		code, out, errOut = runCLI(t, "task", "list")
		if code != ExitOK || !strings.Contains(out, id) {
			t.Fatalf("task list with TASKER_DATABASE_URL: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
}

// A worker on an embedded database another process holds fails at once,
// saying why and what to do.
func TestAWorkerOnALockedDatabaseSaysWhatToDo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	eng, err := tasker.Open(t.Context(), tasker.Config{DatabasePath: db})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(context.Background())
	code, _, errOut := runCLI(t, "worker", "--namespace", "demo", "--db", db)
	if code != ExitFailed {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, w := range []string{"in use by another process", "hint:", "'tasker serve'", "run the workers themselves", "--database-url"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// On PostgreSQL workers run in tasker worker processes: serve refuses
// --namespace there rather than ignore it.
func TestServeOnPostgreSQLRefusesNamespaces(t *testing.T) {
	code, _, errOut := runCLI(t, "serve", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--namespace", "demo")
	if code != ExitBadInput || !strings.Contains(errOut, "tasker worker --namespace") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// tasker serve on the embedded backend runs the workers itself: the
// database's lock keeps a separate tasker worker out.
func TestServeOnTheEmbeddedBackendRunsTheWorkers(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	code, out, errOut := runCLI(t, "task", "create", filepath.Join(examples, "linear.yaml"), "-c", `{"value": 3}`, "--db", db)
	if code != ExitOK {
		t.Fatalf("task create: exit %d, stderr:\n%s", code, errOut)
	}
	id := strings.TrimSpace(out)

	ctx, stop := context.WithCancel(t.Context())
	var stderr syncBuffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = Main(ctx, []string{"serve", "--db", db, "--http="}, &syncBuffer{}, &stderr)
	}()
	// The serving process holds the lock; a read-only connection may still
	// look at the file.
	ro, err := sql.Open("sqlite", "file:"+db+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for state := ""; state != "complete"; {
		select {
		case <-tick.C:
		case <-deadline.C:
			stop()
			wg.Wait()
			t.Fatalf("the task is still %q; serve's stderr:\n%s", state, stderr.String())
		}
		_ = ro.QueryRow(`SELECT state FROM tasks`).Scan(&state)
	}
	stop()
	wg.Wait()
	if code != ExitOK {
		t.Fatalf("serve: exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, w := range []string{"locks the embedded database", "runs the workers itself", "namespaces demo", "--database-url"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("serve's note lacks %q:\n%s", w, stderr.String())
		}
	}
	code, out, _ = runCLI(t, "task", "show", id, "--db", db, "-o", "json")
	if code != ExitOK || !strings.Contains(out, `"complete"`) {
		t.Fatalf("task show: exit %d\n%s", code, out)
	}
}

// syncBuffer is a bytes buffer safe for a writer and a reader at once.
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
