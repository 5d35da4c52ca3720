package stats_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/stats"
)

func TestOutcomesCountTasksAndJudgedAttempts(t *testing.T) {
	o := stats.NewOutcomes()
	task := func(ns, ev, to string) {
		o.Observe(&events.Event{Kind: events.KindTaskTransition, Namespace: ns, Event: ev, To: to})
	}
	step := func(ns, h, from, to string, d time.Duration) {
		o.Observe(&events.Event{Kind: events.KindStepTransition, Namespace: ns, Handler: h, From: from, To: to, Duration: d})
	}
	task("shop", "create", "pending")
	task("shop", "create", "pending")
	task("shop", "start", "initializing") // not an outcome
	task("shop", "all_steps_complete", "complete")
	task("shop", "give_up", "error")
	task("mail", "create", "pending")
	task("mail", "cancel", "cancelled")
	step("shop", "pay", "enqueued_for_orchestration", "complete", 20*time.Millisecond)
	step("shop", "pay", "enqueued_as_error_for_orchestration", "waiting_for_retry", 3*time.Second)
	step("shop", "pay", "enqueued_as_error_for_orchestration", "error", 20*time.Second)
	step("shop", "pay", "in_progress", "enqueued_for_orchestration", time.Second) // a report, not a judgement
	step("shop", "pay", "pending", "complete", 0)                                 // complete_manually: no attempt
	step("", "pay", "enqueued_for_orchestration", "complete", time.Second)        // namespace unknown: left out

	tasks := o.Tasks()
	want := []stats.TaskCounts{{Namespace: "mail", Created: 1, Cancelled: 1}, {Namespace: "shop", Created: 2, Completed: 1, Failed: 1}}
	if fmt.Sprint(tasks) != fmt.Sprint(want) {
		t.Errorf("tasks: %+v, want %+v", tasks, want)
	}
	steps := o.Steps()
	if len(steps) != 1 {
		t.Fatalf("steps: %+v, want shop/pay only", steps)
	}
	s := steps[0]
	if s.Succeeded != 1 || s.Retried != 1 || s.Failed != 1 || s.Count != 3 || s.Sum != 20*time.Millisecond+23*time.Second {
		t.Errorf("shop/pay: %+v", s)
	}
	// Buckets are cumulative: 20ms ≤ .025; 3s ≤ 5; 20s beyond the last.
	for i, b := range stats.DurationBuckets {
		want := uint64(0)
		if b >= .025 {
			want = 1
		}
		if b >= 5 {
			want = 2
		}
		if s.Buckets[i] != want {
			t.Errorf("bucket le %v: %d, want %d", b, s.Buckets[i], want)
		}
	}
}

func TestOutcomesAreBounded(t *testing.T) {
	o := stats.NewOutcomes()
	for i := range stats.MaxOutcomeKeys + 50 {
		ns := fmt.Sprintf("ns%d", i)
		o.Observe(&events.Event{Kind: events.KindTaskTransition, Namespace: ns, Event: "create"})
		o.Observe(&events.Event{Kind: events.KindStepTransition, Namespace: ns, Handler: "h",
			From: "enqueued_for_orchestration", To: "complete"})
	}
	tasks, steps := o.Tasks(), o.Steps()
	if len(tasks) != stats.MaxOutcomeKeys+1 || len(steps) != stats.MaxOutcomeKeys+1 {
		t.Fatalf("%d task keys, %d step keys; want the bound plus %s", len(tasks), len(steps), stats.OtherLabel)
	}
	var other uint64
	for _, c := range tasks {
		if c.Namespace == stats.OtherLabel {
			other = c.Created
		}
	}
	if other != 50 {
		t.Errorf("%s counted %d creates, want the 50 past the bound", stats.OtherLabel, other)
	}
}
