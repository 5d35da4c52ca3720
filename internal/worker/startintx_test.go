package worker

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
)

// commitWatchingStore stands for a store whose commit honours the
// transaction's context (PostgreSQL's does): after fn, the commit takes
// commit, and fails if the context ends first. It keeps the context each
// transaction was given.
type commitWatchingStore struct {
	*storesqlite.Store
	commit time.Duration
	txCtx  context.Context
}

func (s *commitWatchingStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	s.txCtx = ctx
	return s.Store.InTx(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.commit):
			return nil
		}
	})
}

// startInTx: Stop's end rolls a start back while its work runs, never once
// its commit is on its way; the commit's budget cuts off one that outlasts
// it, and says so.
func TestStartInTxCommitsOnceItsWorkIsDone(t *testing.T) {
	st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &commitWatchingStore{Store: st}
	w := &Worker{store: s, cfg: Config{Processor: "t"}, commitBudget: time.Minute}

	// Stopped while fn works: rolled back, and the transaction's context
	// (the one a wait for a connection would use) ends.
	ctx, stop := context.WithCancel(t.Context())
	s.commit = 0
	err = w.startInTx(ctx, func(store.Tx, *transition.Recorder) error {
		stop()
		time.Sleep(10 * time.Millisecond) // the stop's AfterFunc runs
		return nil
	})
	if !errors.Is(err, errStartStopped) || s.txCtx.Err() == nil {
		t.Errorf("stopped during fn: %v, the transaction's context %v; want errStartStopped and it ended", err, s.txCtx.Err())
	}

	// Stopped while the commit is on its way: it commits.
	ctx, stop = context.WithCancel(t.Context())
	s.commit = 200 * time.Millisecond
	err = w.startInTx(ctx, func(store.Tx, *transition.Recorder) error {
		time.AfterFunc(50*time.Millisecond, stop)
		return nil
	})
	if err != nil || ctx.Err() == nil {
		t.Errorf("stopped during the commit: %v (stopped: %v), want it committed", err, ctx.Err())
	}
	stop()

	// A commit past its budget is cut off, and not taken for a stop.
	w.commitBudget = 50 * time.Millisecond
	err = w.startInTx(t.Context(), func(store.Tx, *transition.Recorder) error { return nil })
	if !errors.Is(err, errCommitBudget) || errors.Is(err, errStartStopped) {
		t.Errorf("a commit past its budget: %v, want errCommitBudget only", err)
	}

	// Already stopped: nothing runs.
	ran := false
	err = w.startInTx(ctx, func(store.Tx, *transition.Recorder) error { ran = true; return nil })
	if !errors.Is(err, errStartStopped) || ran {
		t.Errorf("stopped before: %v (fn ran: %v), want errStartStopped and fn not run", err, ran)
	}
}
