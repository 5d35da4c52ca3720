package tasker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	storepg "github.com/tasker-go/tasker/store/postgres"
)

// A connection drop under a running handler (issue 13): the broker gives
// the step's message to another worker at once, while the handler runs on.
// The attempt still holds its store lease, so that worker parks the message
// instead of recording the attempt as lost: the handler runs once, its
// outcome is stored, and the parked message, back once the lease can have
// ended, finds the step done.
func TestAConnectionDropUnderARunningStepRunsItOnce(t *testing.T) {
	if !contains(backends(), "rabbitmq") {
		t.Skip("needs PostgreSQL and RabbitMQ: set TASKER_TEST_POSTGRES_URL and TASKER_TEST_AMQP_URL")
	}
	ctx := t.Context()
	db := database(t, "rabbitmq")
	// Process A on a queue of the test's own, so that the test can drop
	// its connection; it reconnects only after B took the message.
	q, err := rabbitmq.Open(ctx, rabbitmq.Config{URL: db.AMQPURL, Prefix: db.AMQPPrefix, ReconnectMin: 2 * time.Second, ReconnectMax: 2 * time.Second})
	must(t, err)
	t.Cleanup(func() { _ = q.Close() })
	st, err := storepg.Open(ctx, storepg.Config{URL: db.DatabaseURL, AutoMigrate: true, Outbox: storepg.OutboxConfig{Queue: q}})
	must(t, err)
	t.Cleanup(func() { _ = st.Close() }) // before q: its relay stops first
	for _, name := range []string{queue.ResultsQueue, queue.TasksQueue} {
		must(t, q.QueueEnsure(ctx, name))
	}
	var runs atomic.Int32
	started, release := make(chan struct{}, 4), make(chan struct{})
	handler := tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
		runs.Add(1)
		started <- struct{}{}
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	})
	handlers := map[string]tasker.Handler{"test.blocks": handler}
	a := leaseEngine(t, tasker.Config{Store: st, Queue: q, DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}, handlers, nil)
	task, err := a.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "blocking"})
	must(t, err)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the step did not start within 10s")
	}
	// Process B: workers only, on the same database and broker.
	b := leaseEngine(t, db, handlers, func(c *tasker.Config) { c.DisableOrchestration, c.AutoMigrate = true, false })

	q.DropConnection()
	// B is given the message and parks it (releases it with a delay).
	parked := func() bool {
		for _, c := range b.eng.Stats().Queues {
			if c.Queue == queue.StepQueue("test") && c.Nacked > 0 {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !parked(); time.Sleep(10 * time.Millisecond) {
		if n := runs.Load(); n > 1 || time.Now().After(deadline) {
			t.Fatalf("the other worker did not park the redelivered message within 10s (the handler ran %d times)", n)
		}
	}
	close(release)
	info := a.wait(task)
	s := a.step(info, "blocks")
	if info.Task.State != "complete" || s.Attempts != 1 || runs.Load() != 1 {
		t.Errorf("task %s, step after %d attempts and %d runs; want complete after 1 and 1", info.Task.State, s.Attempts, runs.Load())
	}
	want := "create,enqueue,start,succeed,complete"
	if got := strings.Join(a.stepEvents(info, "blocks"), ","); got != want {
		t.Errorf("the step went through %s, want %s", got, want)
	}
}
