//go:build unix

package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

const crashChildEnv = "TASKER_SQLITE_CRASH_CHILD"

// TestCommittedSurvivesKill runs a child process that commits a task and a
// message and is then killed with SIGKILL while holding the database open:
// the commit must be there when the database is opened again, the process
// lock must be free, and the message's claim must be releasable.
func TestCommittedSurvivesKill(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "tasker.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCommittedSurvivesKill$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %v", err)
	}
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "committed ")
	if !ok {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Logf("no WAL file after the kill (%v): the commit was checkpointed already", err)
	}

	s := openStore(t, path, nil)
	task, err := s.TaskGet(t.Context(), uuid.MustParse(id))
	if err != nil {
		t.Fatalf("the task committed before SIGKILL: %v", err)
	}
	if task.State != taskertype.TaskPending {
		t.Errorf("task state %s", task.State)
	}
	n, err := s.Queue().ReleaseClaims(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("ReleaseClaims: %d, %v; want the child's claim", n, err)
	}
	msgs, err := s.Queue().MessageClaim(t.Context(), &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 || msgs[0].ReadCount != 2 {
		t.Fatalf("claim after release: %v, %v; want the message, read twice", msgs, err)
	}
}

func crashChild(path string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	s, err := storesqlite.Open(ctx, storesqlite.Config{Path: path})
	if err != nil {
		fail(err)
	}
	if err := s.Queue().QueueEnsure(ctx, "q"); err != nil {
		fail(err)
	}
	id := uuid.New()
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{
			Task: &taskertype.Task{ID: id, Namespace: "ns", Name: "t", Version: "1"}, At: time.Now()}); err != nil {
			return err
		}
		return tx.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("m")})
	})
	if err != nil {
		fail(err)
	}
	if _, err := s.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 1, VisibilityTimeout: time.Hour}); err != nil {
		fail(err)
	}
	fmt.Printf("committed %s\n", id)
	time.Sleep(time.Hour) // until killed
}
