package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// lostCommit is a store whose next transaction that creates more than one
// task (any task, with single) commits and then reports a connection
// error, as a connection killed before the COMMIT's answer arrived does.
type lostCommit struct {
	store.Store
	armed  atomic.Bool
	single atomic.Bool
	down   atomic.Bool  // every transaction fails before it starts
	lost   atomic.Int32 // commits reported as failed
	// failIfDone: a transaction whose context is done when its work ends
	// rolls back, as PostgreSQL's statements do.
	failIfDone atomic.Bool
	// holdBegin, when set, is waited for by every transaction before it
	// begins, as by one waiting for SQLite's writer (begun counts those
	// that came to it); committed holds the tasks each committed
	// transaction created, in order.
	holdBegin atomic.Pointer[chan struct{}]
	begun     atomic.Int32
	mu        sync.Mutex
	committed []int
}

type countingTx struct {
	store.Tx
	creates *int
}

func (t countingTx) TaskCreate(ctx context.Context, p *store.TaskCreateParams) error {
	*t.creates++
	return t.Tx.TaskCreate(ctx, p)
}

func (s *lostCommit) InTx(ctx context.Context, fn func(store.Tx) error) error {
	if s.down.Load() {
		return fmt.Errorf("begin: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	}
	if h := s.holdBegin.Load(); h != nil {
		s.begun.Add(1)
		select {
		case <-*h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	creates := 0
	err := s.Store.InTx(ctx, func(tx store.Tx) error {
		creates = 0
		if err := fn(countingTx{Tx: tx, creates: &creates}); err != nil {
			return err
		}
		if s.failIfDone.Load() {
			return ctx.Err()
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		s.committed = append(s.committed, creates)
		s.mu.Unlock()
	}
	if err == nil && (creates > 1 || creates == 1 && s.single.Load()) && s.armed.CompareAndSwap(true, false) {
		s.lost.Add(1)
		return fmt.Errorf("commit: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
	}
	return err
}

func newCreateTest(t *testing.T) (*Orchestrator, *lostCommit) {
	t.Helper()
	st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lc := &lostCommit{Store: st}
	o, err := New(Config{Store: lc, Queue: st.Queue()})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.ensureStepQueue(t.Context(), "ns"); err != nil {
		t.Fatal(err)
	}
	return o, lc
}

func createReqs(t *testing.T, n int) []*createReq {
	t.Helper()
	var reqs []*createReq
	for i := range n {
		spec := &TaskSpec{Namespace: "ns", Name: "job", Version: "1", Context: json.RawMessage(fmt.Sprintf(`{"n": %d}`, i)),
			Steps: []StepSpec{{Name: "a", Handler: "h", Retry: taskertype.RetryPolicy{MaxAttempts: 1}}, {Name: "b", Handler: "h", DependsOn: []string{"a"}}}}
		task, steps, err := buildTask(spec)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, &createReq{ctx: t.Context(), task: task, steps: steps})
	}
	return reqs
}

// A group commit that committed but whose answer was lost: the one-by-one
// retry finds each task stored with the same content, and reports it
// created, once.
func TestCreateAfterLostCommit(t *testing.T) {
	o, lc := newCreateTest(t)
	reqs := createReqs(t, 3)
	lc.armed.Store(true)
	o.createBatch(reqs, nil)
	if lc.lost.Load() != 1 {
		t.Fatalf("%d group commits lost, want 1", lc.lost.Load())
	}
	for _, r := range reqs {
		if r.err != nil {
			t.Errorf("task %s: %v, want it created (its group committed)", r.task.ID, r.err)
			continue
		}
		if r.task.State == "" || r.task.Namespace != "ns" {
			t.Errorf("task %s came back as %+v", r.task.ID, r.task)
		}
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != len(reqs) {
		t.Errorf("%d tasks stored, want %d", len(tasks), len(reqs))
	}
}

// A lone create (every create on a quiet server) whose commit's answer was
// lost: the task is looked up and reported created, once.
func TestCreateOneAfterLostCommit(t *testing.T) {
	o, lc := newCreateTest(t)
	reqs := createReqs(t, 1)
	lc.single.Store(true)
	lc.armed.Store(true)
	o.createBatch(reqs, nil)
	if lc.lost.Load() != 1 {
		t.Fatalf("%d commits lost, want 1", lc.lost.Load())
	}
	if err := reqs[0].err; err != nil {
		t.Fatalf("task %s: %v, want it created (its commit happened)", reqs[0].task.ID, err)
	}
	if r := reqs[0]; r.task.State == "" || r.task.Namespace != "ns" {
		t.Errorf("task %s came back as %+v", r.task.ID, r.task)
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Errorf("%d tasks stored, want 1", len(tasks))
	}
}

// A create that failed before its commit finds no task: the error stays.
func TestCreateOneFailedKeepsItsError(t *testing.T) {
	o, lc := newCreateTest(t)
	reqs := createReqs(t, 1)
	lc.down.Store(true)
	o.createBatch(reqs, nil)
	if !errors.Is(reqs[0].err, syscall.ECONNREFUSED) {
		t.Fatalf("a create that never reached the database: %v, want its connection error", reqs[0].err)
	}
}

// A stored task with the same id but another content is not the one asked
// for: the error stays.
func TestCreateExistingOtherContent(t *testing.T) {
	o, _ := newCreateTest(t)
	first := createReqs(t, 1)
	o.createBatch(first, nil)
	if first[0].err != nil {
		t.Fatal(first[0].err)
	}
	other := createReqs(t, 2)[1] // context {"n": 1}, not {"n": 0}
	other.task.ID = first[0].task.ID
	for _, s := range other.steps {
		s.TaskID = other.task.ID
	}
	o.createBatch([]*createReq{other}, nil)
	if !errors.Is(other.err, store.ErrTaskExists) {
		t.Errorf("a task whose id is taken by another: %v, want an error wrapping store.ErrTaskExists", other.err)
	}
}

// brokenClaims is a local worker whose claims in a creation's transaction
// always fail.
type brokenClaims struct{ calls atomic.Int32 }

func (b *brokenClaims) ClaimInTx(context.Context, store.Tx, *transition.Recorder, string) (func(bool), error) {
	b.calls.Add(1)
	return nil, errors.New("a queued message cannot be started")
}

// A creation whose claims of the first steps fail (a message queued before
// it that the worker cannot start) still creates its tasks, once each, in
// a transaction that claims nothing: the claim loops take their steps.
func TestCreateWhoseClaimsFailStillCreates(t *testing.T) {
	o, lc := newCreateTest(t)
	var b brokenClaims
	o.SetLocalWorker(&b)
	reqs := createReqs(t, 3)
	o.createBatch(reqs, nil)
	for _, r := range reqs {
		if r.err != nil {
			t.Errorf("task %s: %v, want it created without claims", r.task.ID, r.err)
		}
	}
	if b.calls.Load() == 0 {
		t.Fatal("the creation never claimed: the test does not test anything")
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != len(reqs) {
		t.Errorf("%d tasks stored, want %d", len(tasks), len(reqs))
	}
}

// partialClaims is a local worker whose claims in a creation's transaction
// succeed for the first queue asked and fail for the others, as when one
// namespace's queue holds a message its worker cannot start.
type partialClaims struct {
	mu     sync.Mutex
	first  string
	calls  int
	failed int
	afters []bool // what each after of the first queue's claims was called with
}

func (p *partialClaims) ClaimInTx(_ context.Context, _ store.Tx, _ *transition.Recorder, q string) (func(bool), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.first == "" {
		p.first = q
	}
	if q != p.first {
		p.failed++
		return nil, errors.New("a queued message cannot be started")
	}
	return func(committed bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.afters = append(p.afters, committed)
	}, nil
}

// A creation of tasks of two namespaces whose second claim fails after the
// first succeeded: the transaction rolls back, the first claim is told so
// once (after(false): its worker gives its slots back and starts nothing),
// and the tasks are created again without claims.
func TestCreateWhoseSecondClaimFailsGivesTheFirstBack(t *testing.T) {
	o, lc := newCreateTest(t)
	if err := o.ensureStepQueue(t.Context(), "ns2"); err != nil {
		t.Fatal(err)
	}
	var p partialClaims
	o.SetLocalWorker(&p)
	reqs := createReqs(t, 2)
	spec := &TaskSpec{Namespace: "ns2", Name: "job", Version: "1", Context: json.RawMessage(`{"n": 2}`),
		Steps: []StepSpec{{Name: "a", Handler: "h"}}}
	task, steps, err := buildTask(spec)
	if err != nil {
		t.Fatal(err)
	}
	reqs = append(reqs, &createReq{ctx: t.Context(), task: task, steps: steps})
	o.createBatch(reqs, nil)
	for _, r := range reqs {
		// created is set by a transaction that created the task; a
		// one-by-one fallback that finds it stored already does not set it.
		if r.err != nil || r.created == nil {
			t.Errorf("task %s (%s): %v (created by the group: %t), want it created by the group without claims",
				r.task.ID, r.task.Namespace, r.err, r.created != nil)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == 0 {
		t.Fatal("no claim failed: the test does not test anything")
	}
	if p.calls != 2 {
		t.Errorf("%d claims, want 2 (one per namespace, none in the retry without claims)", p.calls)
	}
	if len(p.afters) != 1 || p.afters[0] {
		t.Errorf("the first queue's claim was ended with %v, want [false] (given back once, never started)", p.afters)
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != len(reqs) {
		t.Errorf("%d tasks stored, want %d", len(tasks), len(reqs))
	}
}
