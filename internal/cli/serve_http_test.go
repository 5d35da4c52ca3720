package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// tasker serve --templates examples --workers is an all-in-one server: the
// API creates a task, the in-process workers run it, GET answers it
// complete, and a stop drains the API and ends with exit 0.
// On PostgreSQL (TASKER_TEST_POSTGRES_URL set) as on the embedded backend.
func TestServeAllInOneOverHTTP(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		serveAllInOne(t, "--db", filepath.Join(t.TempDir(), "t.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		_, url := pgtest.Schema(t)
		serveAllInOne(t, "--database-url", url, "--migrate")
	})
}

func serveAllInOne(t *testing.T, dbArgs ...string) {
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var stderr syncBuffer
	var wg sync.WaitGroup
	code := -1
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = Main(ctx, append([]string{"serve", "--templates", examples, "--workers", "--http", "127.0.0.1:0"}, dbArgs...), &syncBuffer{}, &stderr)
	}()
	addrRE := regexp.MustCompile(`REST API on (http://[0-9.:]+)`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no API address announced:\n%s", stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	body, _ := json.Marshal(map[string]any{"namespace": "demo", "name": "linear_workflow", "version": "1.0.0", "context": map[string]any{"value": 3}})
	resp, err := http.Post(base+"/v1/tasks", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var task struct {
		ID     string `json:"task_uuid"`
		Status string `json:"status"`
	}
	err = json.NewDecoder(resp.Body).Decode(&task)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tasks: %d %v", resp.StatusCode, err)
	}
	for deadline := time.Now().Add(20 * time.Second); task.Status != "complete"; {
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s", task.ID, task.Status)
		}
		time.Sleep(20 * time.Millisecond)
		resp, err := http.Get(base + "/v1/tasks/" + task.ID)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&task)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	stop()
	wg.Wait()
	if code != ExitOK {
		t.Fatalf("serve exit %d:\n%s", code, stderr.String())
	}
	if _, err := http.Get(base + "/health"); err == nil {
		t.Errorf("the API still answers after the stop")
	}
}

// A serve whose API cannot listen (the address is taken) exits with an
// error naming the address, once what had started (orchestration and the
// workers) has stopped: nothing is left running (goleak checks the
// package's goroutines at its end).
func TestServeWhoseAPICannotListenStopsWhatStarted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	var code int
	var stderr syncBuffer
	go func() {
		defer close(done)
		code = Main(t.Context(), []string{"serve", "--templates", examples, "--workers", "--http", ln.Addr().String(),
			"--db", filepath.Join(t.TempDir(), "t.db")}, &syncBuffer{}, &stderr)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve still runs 30 s after its API could not listen:\n%s", stderr.String())
	}
	if code == ExitOK || !strings.Contains(stderr.String(), ln.Addr().String()) {
		t.Errorf("exit %d, stderr:\n%s\nwant a failure naming %s", code, stderr.String(), ln.Addr())
	}
}
