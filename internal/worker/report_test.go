package worker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// reportStore sees the transactions that store outcomes: those that
// acknowledge a message before they claim (a claim loop's transaction
// claims first). It can fail their claims, or hold their acknowledgements;
// and once (slowArmed), make the commit of a transaction that claimed
// messages take slowCommit.
type reportStore struct {
	*storesqlite.Store
	failClaims   atomic.Bool
	claimsFailed atomic.Int32
	hold         chan struct{} // when not nil, an acknowledgement waits for it to close
	acking       chan struct{} // with hold: told when an acknowledgement waits
	slowArmed    atomic.Bool
	slowCommit   time.Duration
	inSlowCommit chan struct{} // closed as the slow commit begins
	mu           sync.Mutex
	acks         []int // the receipts of each acknowledgement committed
	// When set, every transaction waits for the channel to close before
	// it begins, as one waiting for SQLite's writer does.
	beginHold atomic.Pointer[chan struct{}]
}

func (s *reportStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	if h := s.beginHold.Load(); h != nil {
		select {
		case <-*h:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tx := &reportTx{s: s}
	err := s.Store.InTx(ctx, func(inner store.Tx) error {
		*tx = reportTx{Tx: inner, s: s}
		if err := fn(tx); err != nil {
			return err
		}
		if tx.claimed > 0 && s.slowArmed.CompareAndSwap(true, false) {
			close(s.inSlowCommit)
			time.Sleep(s.slowCommit)
		}
		return nil
	})
	if err == nil {
		s.mu.Lock()
		s.acks = append(s.acks, tx.acks...)
		s.mu.Unlock()
	}
	return err
}

// forgetAcks drops the acknowledgements recorded so far.
func (s *reportStore) forgetAcks() {
	s.mu.Lock()
	s.acks = nil
	s.mu.Unlock()
}

type reportTx struct {
	store.Tx
	s       *reportStore
	acks    []int
	claimed int
}

func (tx *reportTx) MessageAck(ctx context.Context, p *queue.AckParams) error {
	if tx.s.hold != nil {
		select {
		case tx.s.acking <- struct{}{}:
		default:
		}
		select {
		case <-tx.s.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tx.acks = append(tx.acks, len(p.Receipts))
	return tx.Tx.MessageAck(ctx, p)
}

func (tx *reportTx) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if len(tx.acks) > 0 && tx.s.failClaims.Load() {
		tx.s.claimsFailed.Add(1)
		return nil, errors.New("claims broke")
	}
	m, err := tx.Tx.MessageClaim(ctx, p)
	tx.claimed += len(m)
	return m, err
}

// gatedHandler returns a handler for n steps that waits, once started, until
// release is closed, and the groups that count the starts and returns.
func gatedHandler(n int) (h taskertype.Handler, started, returned *sync.WaitGroup, release chan struct{}) {
	started, returned = new(sync.WaitGroup), new(sync.WaitGroup)
	started.Add(n)
	returned.Add(n)
	release = make(chan struct{})
	h = taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		started.Done()
		<-release
		defer returned.Done()
		return map[string]int{"ok": 1}, nil
	})
	return h, started, returned, release
}

// reportWorker starts a worker of ns on st with room for many more steps
// than the tests run, so that every report transaction has slots to claim
// with, and claims of claimBatch steps at most (0: the default).
func reportWorker(t *testing.T, st *reportStore, bus *events.Bus, h taskertype.Handler, claimBatch int) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Config{Store: st, Queue: st.Store.Queue(), Bus: bus, Processor: "w",
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: 64, ClaimBatch: claimBatch,
		VisibilityTimeout: time.Minute, IdlePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w
}

// Outcomes that arrive while a report transaction waits to begin go into
// that transaction (group.Committer.More), not into the next one.
func TestOutcomesArrivingWhileATransactionWaitsJoinIt(t *testing.T) {
	const n = 12
	st := &reportStore{Store: openStore(t)}
	bus := events.NewBus()
	for range n {
		enqueue(t, st.Store, bus)
	}
	h, started, returned, release := gatedHandler(n)
	w := reportWorker(t, st, bus, h, 0)
	defer w.Stop(context.Background())
	started.Wait()
	st.forgetAcks() // the claims' own acknowledgements, if any
	hold := make(chan struct{})
	st.beginHold.Store(&hold)
	var once sync.Once
	letGo := func() {
		once.Do(func() {
			st.beginHold.Store(nil)
			close(hold)
		})
	}
	defer letGo() // before the worker's Stop, which waits for the transactions
	close(release)
	returned.Wait()
	// Each handler's outcome goes on to its report at once; the wait
	// leaves it far more time than that takes, even on a loaded machine.
	time.Sleep(100 * time.Millisecond)
	letGo()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		st.mu.Lock()
		acked := 0
		for _, a := range st.acks {
			acked += a
		}
		acks := append([]int(nil), st.acks...)
		st.mu.Unlock()
		if acked >= n {
			// The first outcome's transaction waited while the other
			// n-1 came: it took them in, so one acknowledgement holds
			// all n.
			if !slices.Contains(acks, n) {
				t.Fatalf("acknowledgements of %v receipts: want one of all %d", acks, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d outcomes acknowledged", acked, n)
		}
	}
}

// A report transaction whose claims fail stores its outcomes again, still
// together, in a transaction that claims nothing: a message the claims
// cannot start does not cost a transaction per outcome.
func TestOutcomesWhoseClaimsFailAreStillStoredTogether(t *testing.T) {
	const n = 20
	st := &reportStore{Store: openStore(t)}
	st.failClaims.Store(true)
	bus := events.NewBus()
	for range n {
		enqueue(t, st.Store, bus)
	}
	sub, err := bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 4*n)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	h, started, returned, release := gatedHandler(n)
	// The first report transaction waits at its acknowledgement until
	// every handler has returned and a little more, so that the other
	// outcomes are waiting for the next group then, however fast a
	// transaction is: with the step queue in memory, one often committed
	// before the next outcome came.
	st.hold = make(chan struct{})
	w := reportWorker(t, st, bus, h, 0)
	defer w.Stop(context.Background())
	started.Wait()
	st.forgetAcks() // the claims' own acknowledgements, if any
	close(release)
	go func() {
		returned.Wait()
		time.Sleep(20 * time.Millisecond)
		close(st.hold)
	}()
	stored := map[uuid.UUID]int{}
	for len(stored) < n {
		select {
		case ev := <-sub.C():
			if ev.To == string(taskertype.StepEnqueuedForOrchestration) {
				stored[ev.StepID]++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d outcomes stored", len(stored), n)
		}
	}
	if st.claimsFailed.Load() == 0 {
		t.Fatal("no report transaction claimed: the test does not test anything")
	}
	// Every slot comes back, and no outcome is stored twice.
	for deadline := time.Now().Add(5 * time.Second); w.InFlight() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still held after every outcome was stored", w.InFlight())
		}
	}
	for drain := true; drain; {
		select {
		case ev := <-sub.C():
			if ev.To == string(taskertype.StepEnqueuedForOrchestration) {
				stored[ev.StepID]++
			}
		default:
			drain = false
		}
	}
	for id, k := range stored {
		if k != 1 {
			t.Errorf("step %v: its outcome stored %d times", id, k)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	total, most := 0, 0
	for _, k := range st.acks {
		total += k
		most = max(most, k)
	}
	if total != n || most < 2 {
		t.Errorf("the outcomes' messages were acknowledged %v (receipts per transaction): want %d in all, some together", st.acks, n)
	}
}

// Stop waits for a report transaction's claims, and the claim loops, under
// its context: a stuck store delays it by its context, the handlers' grace
// and 5 s, not by the transaction's budget and then a transaction per
// outcome. A claim loop's round that waited for the store past Stop's end
// rolls back once it gets it: its step is not started after Stop returned.
func TestStopDoesNotWaitForAStuckReport(t *testing.T) {
	hold := make(chan struct{})
	st := &reportStore{Store: openStore(t), hold: hold, acking: make(chan struct{}, 1)}
	bus := events.NewBus()
	step := enqueue(t, st.Store, bus)
	late := enqueueAfter(t, st.Store, bus, 100*time.Millisecond)
	sub, err := bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}, TaskID: step.TaskID}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	lateSub, err := bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}, TaskID: late.TaskID}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer lateSub.Close()
	var lateRan atomic.Int32
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		if in.StepID == late.ID {
			lateRan.Add(1)
		}
		return nil, nil
	})
	w := reportWorker(t, st, bus, h, 1)
	<-st.acking // the outcome's transaction, claims and all, is stuck
	// The late step's message shows, and the claim loop's round for it (one
	// slot, the others free) waits for the store: the embedded store's
	// writer is the stuck transaction.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = w.Stop(ctx)
	if took := time.Since(begin); took > 15*time.Second {
		t.Errorf("Stop took %v with a report stuck in its transaction (err %v)", took, err)
	}
	if err := w.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Start after Stop: %v, want an error saying the worker was stopped", err)
	}
	// The outcome is still stored once the store comes back.
	close(hold)
	for stored := false; !stored; {
		select {
		case ev := <-sub.C():
			stored = ev.To == string(taskertype.StepEnqueuedForOrchestration)
		case <-time.After(35 * time.Second):
			t.Fatal("the outcome was never stored")
		}
	}
	// The round that waited rolls back: the late step stays enqueued, its
	// attempts untouched, its handler never called; it was not even
	// started (and given back, which needs a store still open).
	time.Sleep(200 * time.Millisecond)
	select {
	case ev := <-lateSub.C():
		t.Errorf("the late step moved after Stop: %s → %s (%s)", ev.From, ev.To, ev.Event)
	default:
	}
	steps, err := st.Store.StepList(t.Context(), late.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if s := steps[0]; s.State != taskertype.StepEnqueued || s.Attempts != 0 || lateRan.Load() != 0 {
		t.Errorf("a step claimed by a round that outlived Stop: state %s, %d attempts, its handler called %d times; want it enqueued, untouched",
			s.State, s.Attempts, lateRan.Load())
	}
}

// A start whose commit was on its way as Stop's time ran out commits (it
// is not cut off), and its step is given back before its handler runs,
// its attempt not counted: even when the start took long enough that the
// claim must be renewed first.
func TestAStartCommittingAsStopEndsGivesItsStepBack(t *testing.T) {
	// The commit takes 3 s of a 6 s lease: past a third of it, so the claim
	// is renewed before the handler would start, 1 s before two thirds,
	// when it would be taken for lost.
	st := &reportStore{Store: openStore(t), slowCommit: 3 * time.Second, inSlowCommit: make(chan struct{})}
	st.slowArmed.Store(true)
	bus := events.NewBus()
	var ran atomic.Int32
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) { ran.Add(1); return nil, nil })
	w, err := worker.New(worker.Config{Store: st, Queue: st.Store.Queue(), Bus: bus, Processor: "w",
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: 4,
		VisibilityTimeout: 6 * time.Second, IdlePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	step := enqueue(t, st.Store, bus)
	sub, err := bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}, TaskID: step.TaskID}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-st.inSlowCommit
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	var moves []string
	for done := false; !done; {
		select {
		case ev := <-sub.C():
			moves = append(moves, ev.Event)
			done = ev.Event == string(taskertype.StepEventRelease)
		case <-time.After(10 * time.Second):
			t.Fatalf("the step was never given back: %v", moves)
		}
	}
	steps, err := st.Store.StepList(t.Context(), step.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if s := steps[0]; s.State != taskertype.StepEnqueued || s.Attempts != 0 || ran.Load() != 0 {
		t.Errorf("after %v: state %s, %d attempts, handler ran %d times; want it enqueued, no attempt, not run", moves, s.State, s.Attempts, ran.Load())
	}
}
