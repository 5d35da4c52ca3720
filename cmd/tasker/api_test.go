package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasker-go/tasker/client"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// apiServer is a 'tasker serve' subprocess and its API's address.
type apiServer struct {
	cmd  *exec.Cmd
	base string
}

// startServe runs the built binary's 'tasker serve --templates examples
// --workers' on a free port and waits for it to announce its API.
func startServe(t *testing.T, dbArgs ...string) *apiServer {
	t.Helper()
	bin := faultBin(t)
	args := append([]string{"serve", "--templates", "../../examples", "--workers", "--http", "127.0.0.1:0"}, dbArgs...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &apiServer{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addrRE := regexp.MustCompile(`REST API on (http://[0-9.:]+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case s.base = <-found:
	case <-time.After(60 * time.Second):
		t.Fatal("tasker serve announced no API address within 60s")
	}
	return s
}

// runCLI runs the binary and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(faultBin(t), args...)
	cmd.Env = append(os.Environ(), "TASKER_SERVER=", "TASKER_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The REST API of a real 'tasker serve' process, driven through the client
// package and the CLI, on SQLite and (TASKER_TEST_POSTGRES_URL) PostgreSQL.
func TestAPIOverARealServer(t *testing.T) {
	backends := map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string { return []string{"--db", filepath.Join(t.TempDir(), "t.db")} },
	}
	if os.Getenv(pgtest.EnvURL) != "" {
		backends["postgres"] = func(t *testing.T) []string {
			_, url := pgtest.Schema(t)
			return []string{"--database-url", url, "--migrate"}
		}
	} else {
		t.Logf("PostgreSQL half skipped: set %s", pgtest.EnvURL)
	}
	for name, dbArgs := range backends {
		t.Run(name, func(t *testing.T) {
			srv := startServe(t, dbArgs(t)...)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			c, err := client.New(srv.base)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("client: create, watch to the end, read back", func(t *testing.T) {
				task, err := c.CreateTask(ctx, client.TaskRequest{Namespace: "demo", Name: "linear_workflow", Version: "1.0.0",
					Context: map[string]any{"value": 3}, Initiator: "test", SourceSystem: "test", Reason: "test"})
				if err != nil {
					t.Fatal(err)
				}
				var types []string
				err = c.WatchTask(ctx, task.TaskUuid, func(e client.Event) error { types = append(types, e.Type); return nil })
				if err != nil {
					t.Fatalf("watch: %v (events %v)", err, types)
				}
				if types[0] != "snapshot" || types[len(types)-1] != "end" {
					t.Errorf("events %v: want a snapshot first and end last", types)
				}
				got, err := c.GetTask(ctx, task.TaskUuid)
				if err != nil || got.Status != "complete" {
					t.Fatalf("task after the stream: %+v, %v", got, err)
				}
				steps, err := c.ListSteps(ctx, task.TaskUuid)
				if err != nil || len(steps) != 4 {
					t.Fatalf("steps: %d, %v", len(steps), err)
				}
				if b, _ := json.Marshal(steps[3].Results); string(b) != `{"value":18}` {
					t.Errorf("add_three = %s, want {\"value\":18}", b)
				}
				if _, err := c.GetStep(ctx, task.TaskUuid, steps[0].StepUuid); err != nil {
					t.Error(err)
				}
				_, err = c.CreateTask(ctx, client.TaskRequest{Namespace: "demo", Name: "linear_workflow", Version: "1.0.0",
					Context: map[string]any{"value": 3}})
				if !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), task.TaskUuid) {
					t.Errorf("a duplicate: %v, want 409 naming %s", err, task.TaskUuid)
				}
				_, err = c.ResetStep(ctx, task.TaskUuid, steps[0].StepUuid, "ops", "again")
				if !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), "complete") {
					t.Errorf("reset of a complete step: %v, want 409 naming the state", err)
				}
			})

			t.Run("client: templates validated and listed", func(t *testing.T) {
				v, err := c.ValidateTemplate(ctx, []byte("name: x\nnamespace: demo\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: h\n    depends_on: [zz]\n"), nil)
				if err != nil || v.Valid || len(v.Errors) == 0 || v.Errors[0].Line == nil {
					t.Fatalf("an invalid template: %+v, %v; want invalid with a line", v, err)
				}
				l, err := c.ListTemplates(ctx, "demo")
				if err != nil || len(l.Templates) == 0 {
					t.Fatalf("templates: %+v, %v", l, err)
				}
			})

			t.Run("cli: create --wait, list, get, steps; exit codes", func(t *testing.T) {
				code, out, errs := runCLI(t, "task", "create", "--server", srv.base, "demo/linear_workflow@1.0.0", "-c", `{"value":5}`, "--wait", "-o", "json")
				if code != 0 {
					t.Fatalf("task create --wait: exit %d\n%s\n%s", code, out, errs)
				}
				var task client.Task
				if err := json.Unmarshal([]byte(out), &task); err != nil || task.Status != "complete" {
					t.Fatalf("task create --wait -o json: %v: %s", err, out)
				}
				code, out, errs = runCLI(t, "task", "list", "--server", srv.base)
				if code != 0 || !strings.Contains(out, task.TaskUuid) {
					t.Errorf("task list: exit %d, %s %s", code, out, errs)
				}
				code, out, _ = runCLI(t, "task", "get", "--server", srv.base, task.TaskUuid)
				if code != 0 || !strings.Contains(out, "add_three") {
					t.Errorf("task get: exit %d, %s", code, out)
				}
				code, out, _ = runCLI(t, "task", "steps", "--server", srv.base, task.TaskUuid)
				if code != 0 || !strings.Contains(out, `{"value":38}`) {
					t.Errorf("task steps: exit %d, %s", code, out)
				}
				if code, _, errs = runCLI(t, "task", "get", "--server", srv.base, "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d"); code != 2 || !strings.Contains(errs, "404") {
					t.Errorf("an unknown task: exit %d, %s; want 2 naming the 404", code, errs)
				}
				if code, _, errs = runCLI(t, "task", "get", "--server", "http://127.0.0.1:1", task.TaskUuid); code != 3 || !strings.Contains(errs, "hint:") {
					t.Errorf("no server: exit %d, %s; want 3 with a hint", code, errs)
				}
				if code, out, _ = runCLI(t, "template", "list", "--server", srv.base); code != 0 || !strings.Contains(out, "demo/linear_workflow@1.0.0") {
					t.Errorf("template list: exit %d, %s", code, out)
				}
				code, out, _ = runCLI(t, "template", "get", "--server", srv.base, "demo/linear_workflow@1.0.0")
				if code != 0 || !strings.Contains(out, "demo/linear_workflow@1.0.0\n") || !strings.Contains(out, "add_three") {
					t.Errorf("template get: exit %d, %s", code, out)
				}
				if code, out, _ = runCLI(t, "template", "get", "--server", srv.base, "demo/linear_workflow@1.0.0", "-o", "json"); code != 0 || !json.Valid([]byte(out)) {
					t.Errorf("template get -o json: exit %d, %s", code, out)
				}
				for _, sub := range []string{"queue", "staleness"} {
					if code, out, errs = runCLI(t, "dlq", sub, "--server", srv.base); code != 0 {
						t.Errorf("dlq %s: exit %d, %s %s", sub, code, out, errs)
					}
				}
			})
		})
	}
}
