package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// withIdentity gives each request the identity hash of its index in
// hashes ("" leaves it without).
func withIdentity(reqs []*createReq, hashes ...string) {
	for i, r := range reqs {
		r.task.Request.IdentityHash = hashes[i]
	}
}

// A group in which one task duplicates another of the group and one
// duplicates a stored task: the others are created, each duplicate fails
// alone with the id of the task that has its identity.
func TestCreateGroupWithDuplicates(t *testing.T) {
	o, lc := newCreateTest(t)
	stored := createReqs(t, 1)
	withIdentity(stored, "h-stored")
	o.createBatch(stored, nil)
	if stored[0].err != nil {
		t.Fatal(stored[0].err)
	}
	reqs := createReqs(t, 5)
	withIdentity(reqs, "h-0", "h-1", "h-1", "h-stored", "")
	o.createBatch(reqs, nil)
	ok := 0
	for i, r := range reqs {
		var dup *taskertype.DuplicateTaskError
		switch {
		case r.err == nil:
			ok++
		case i == 3 && errors.As(r.err, &dup):
			if dup.ExistingID != stored[0].task.ID {
				t.Errorf("duplicate of the stored task names %s, want %s", dup.ExistingID, stored[0].task.ID)
			}
		case (i == 1 || i == 2) && errors.As(r.err, &dup):
			other := reqs[3-i]
			if other.err != nil || dup.ExistingID != other.task.ID {
				t.Errorf("duplicate within the group names %s; the other: %v %s", dup.ExistingID, other.err, other.task.ID)
			}
		default:
			t.Errorf("request %d: %v", i, r.err)
		}
	}
	if ok != 3 {
		t.Errorf("%d created, want 3 (h-0, one of h-1, the one without identity)", ok)
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 4 {
		t.Errorf("%d tasks stored, want 4", len(tasks))
	}
}

// A group commit with identities whose answer was lost: each task is
// found stored and reported created, none as a duplicate of itself.
func TestCreateAfterLostCommitWithIdentity(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			o, lc := newCreateTest(t)
			reqs := createReqs(t, n)
			withIdentity(reqs, "a", "b", "c")
			lc.single.Store(n == 1)
			lc.armed.Store(true)
			o.createBatch(reqs, nil)
			if lc.lost.Load() != 1 {
				t.Fatalf("%d commits lost, want 1", lc.lost.Load())
			}
			for _, r := range reqs {
				if r.err != nil {
					t.Errorf("task %s: %v, want it created", r.task.ID, r.err)
				}
			}
		})
	}
}

// The identity path of an ambiguous commit: the task that holds the
// identity is this very one (stored by the commit whose answer was lost):
// created; another task: a duplicate carrying the stored id.
func TestDuplicateIsItselfAfterALostCommit(t *testing.T) {
	o, _ := newCreateTest(t)
	reqs := createReqs(t, 2)
	withIdentity(reqs, "same", "same")
	o.createBatch(reqs[:1], nil)
	if reqs[0].err != nil {
		t.Fatal(reqs[0].err)
	}
	again := *reqs[0]
	taskCopy := *reqs[0].task
	again.task = &taskCopy
	if err := o.duplicate(&again, store.ErrIdentityTaken); err != nil {
		t.Errorf("the task itself holds the identity: %v, want it created", err)
	}
	err := o.duplicate(reqs[1], store.ErrIdentityTaken)
	var dup *taskertype.DuplicateTaskError
	if !errors.As(err, &dup) || dup.ExistingID != reqs[0].task.ID || !errors.Is(err, taskertype.ErrDuplicateTask) {
		t.Errorf("another task with the identity: %v, want a DuplicateTaskError naming %s", err, reqs[0].task.ID)
	}
}

// A transaction begun for one task takes in the creations that arrived
// while it waited (more): the live ones are created with it, in one
// transaction, and one whose caller gave up is answered with its context's
// error and not created.
func TestCreateTakesInLateArrivals(t *testing.T) {
	o, lc := newCreateTest(t)
	reqs := createReqs(t, 3)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	reqs[1].ctx = ctx
	calls := 0
	more := func() []*createReq {
		calls++
		if calls > 1 {
			return nil
		}
		return reqs[1:]
	}
	lc.armed.Store(true) // the next transaction creating more than one task loses its answer
	o.createBatch(reqs[:1], more)
	if lc.lost.Load() != 1 {
		t.Fatalf("%d commits of more than one task, want 1 (the late live one shares the first's)", lc.lost.Load())
	}
	if reqs[0].err != nil || reqs[2].err != nil {
		t.Fatalf("live requests: %v, %v; want both created", reqs[0].err, reqs[2].err)
	}
	if !errors.Is(reqs[1].err, context.Canceled) {
		t.Fatalf("the abandoned request: %v, want its context's error", reqs[1].err)
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("%d tasks stored, want 2", len(tasks))
	}
}

// A transaction begun for one task that took in a duplicate fails as a
// group: each task is then created alone, so that only the duplicate
// fails.
func TestCreateLateArrivalDuplicateFailsAlone(t *testing.T) {
	o, _ := newCreateTest(t)
	stored := createReqs(t, 1)
	withIdentity(stored, "taken")
	o.createBatch(stored, nil)
	if stored[0].err != nil {
		t.Fatal(stored[0].err)
	}
	reqs := createReqs(t, 2)
	withIdentity(reqs, "", "taken")
	late := reqs[1:]
	o.createBatch(reqs[:1], func() []*createReq { r := late; late = nil; return r })
	var dup *taskertype.DuplicateTaskError
	if reqs[0].err != nil || !errors.As(reqs[1].err, &dup) || dup.ExistingID != stored[0].task.ID {
		t.Fatalf("got %v and %v; want the first created and the second a duplicate of %s", reqs[0].err, reqs[1].err, stored[0].task.ID)
	}
}

// A transaction begun for one task keeps its caller's context after it
// took in others: when that caller gives up during it and the store honours
// the context (as PostgreSQL's statements do), the transaction fails and
// the others are created one by one; the first gets its context's error.
func TestCreateLateArrivalsOutliveTheFirstCallerGivingUp(t *testing.T) {
	o, lc := newCreateTest(t)
	lc.failIfDone.Store(true)
	reqs := createReqs(t, 3)
	ctx, cancel := context.WithCancel(t.Context())
	reqs[0].ctx = ctx
	late := reqs[1:]
	o.createBatch(reqs[:1], func() []*createReq {
		cancel() // the first caller gives up once the others are in
		r := late
		late = nil
		return r
	})
	if !errors.Is(reqs[0].err, context.Canceled) {
		t.Fatalf("the first request: %v, want its context's error", reqs[0].err)
	}
	for _, r := range reqs[1:] {
		if r.err != nil {
			t.Fatalf("a late request: %v, want it created on its own", r.err)
		}
	}
	tasks, err := lc.TaskList(t.Context(), &store.TaskListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("%d tasks stored, want the 2 late ones", len(tasks))
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if fmt.Sprint(lc.committed) != "[1 1]" {
		t.Fatalf("tasks created by each committed transaction: %v; want the late ones one by one, [1 1]", lc.committed)
	}
}

// The orchestrator's creations take in those that queued while the first
// one's transaction waited to begin: CreateTask calls arriving during the
// wait share its transaction (without More it would create one task).
func TestConcurrentCreatesShareTheWaitingTransaction(t *testing.T) {
	o, lc := newCreateTest(t)
	const n = 6
	hold := make(chan struct{})
	lc.holdBegin.Store(&hold)
	var once sync.Once
	letGo := func() { once.Do(func() { lc.holdBegin.Store(nil); close(hold) }) }
	t.Cleanup(letGo)
	spec := &TaskSpec{Namespace: "ns", Name: "job", Version: "1", Context: json.RawMessage(`{}`),
		Steps: []StepSpec{{Name: "a", Handler: "h", Retry: taskertype.RetryPolicy{MaxAttempts: 1}}}}
	var wg sync.WaitGroup
	errs := make([]error, n)
	wg.Go(func() { _, errs[0] = o.CreateTask(t.Context(), spec) })
	for deadline := time.Now().Add(5 * time.Second); lc.begun.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first create's transaction never began")
		}
	}
	for i := 1; i < n; i++ {
		wg.Go(func() { _, errs[i] = o.CreateTask(t.Context(), spec) })
	}
	time.Sleep(100 * time.Millisecond) // the others queue behind it
	letGo()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.committed) == 0 || lc.committed[0] < 2 {
		t.Fatalf("tasks created by each transaction: %v; want the first to take in the creates that queued", lc.committed)
	}
}
