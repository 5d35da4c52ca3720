package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
)

const exhausting = `name: exhaust
namespace: test
version: 1.0.0
steps:
  - name: flaky
    handler: test.flaky
    retry: {max_attempts: 2, backoff: none}
---
name: refuse
namespace: test
version: 1.0.0
steps:
  - {name: refused, handler: test.refuse}
`

func TestATaskThatRanOutOfRetriesGetsAnInvestigationAndOperatorsCloseIt(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := newHarnessOn(t, backend, exhausting, map[string]tasker.Handler{
			"test.flaky": tasker.HandlerFunc(func(context.Context, *tasker.StepInput) (any, error) {
				return nil, errors.New("the upstream timed out") // retryable
			}),
			"test.refuse": tasker.HandlerFunc(func(context.Context, *tasker.StepInput) (any, error) {
				return nil, taskertype.Permanent(errors.New("bad input"))
			}),
		})
		ctx := t.Context()
		out := h.run("exhaust", map[string]any{})
		if out.Task.State != taskertype.TaskError {
			t.Fatalf("task %s, want error", out.Task.State)
		}
		entry, err := h.eng.TaskDLQEntry(ctx, out.Task.ID)
		must(t, err)
		if entry.Reason != taskertype.DLQMaxRetriesExceeded || entry.ResolutionStatus != taskertype.DLQPending ||
			entry.OriginalState != taskertype.TaskBlockedByFailures {
			t.Fatalf("entry %+v", entry)
		}
		var meta struct {
			Steps       []string `json:"steps"`
			Attempts    int      `json:"attempts"`
			MaxAttempts int      `json:"max_attempts"`
			LastError   string   `json:"last_error"`
		}
		must(t, json.Unmarshal(entry.Metadata, &meta))
		if len(meta.Steps) != 1 || meta.Steps[0] != "flaky" || meta.Attempts != 2 || meta.MaxAttempts != 2 ||
			!strings.Contains(meta.LastError, "timed out") {
			t.Fatalf("metadata %s", entry.Metadata)
		}
		// A permanent failure is not a retry limit: no entry.
		refused := h.run("refuse", map[string]any{})
		if _, err := h.eng.TaskDLQEntry(ctx, refused.Task.ID); !errors.Is(err, taskertype.ErrNotFound) {
			t.Fatalf("a permanently failed task has an entry: %v", err)
		}
		// An operator sends it to the DLQ by hand; a second time is refused.
		manual, err := h.eng.SendToDLQ(ctx, refused.Task.ID, "bad input from the partner", "ops@example.com")
		must(t, err)
		if manual.Reason != taskertype.DLQManual || manual.OriginalState != taskertype.TaskError {
			t.Fatalf("manual entry %+v", manual)
		}
		if _, err := h.eng.SendToDLQ(ctx, refused.Task.ID, "again", "ops"); !errors.Is(err, taskertype.ErrInvalid) ||
			!strings.Contains(err.Error(), manual.ID.String()) {
			t.Fatalf("a second pending entry: %v, want ErrInvalid naming the pending one", err)
		}
		// Triage: max_retries_exceeded before manual_dlq.
		queue, err := h.eng.DLQInvestigationQueue(ctx, 0)
		must(t, err)
		if len(queue) != 2 || queue[0].Entry.ID != entry.ID || queue[0].PriorityScore < 500 || queue[1].Entry.ID != manual.ID {
			t.Fatalf("investigation queue %+v", queue)
		}
		// The operator records the resolution; the task is not touched.
		status, notes, by := taskertype.DLQPermanentlyFailed, "upstream retired", "ops@example.com"
		upd, err := h.eng.UpdateDLQEntry(ctx, entry.ID, tasker.DLQUpdateParams{Status: &status, Notes: &notes, ResolvedBy: &by})
		must(t, err)
		if upd.ResolutionStatus != status || upd.ResolutionNotes != notes || upd.ResolvedBy != by || upd.ResolvedAt.IsZero() {
			t.Fatalf("updated %+v", upd)
		}
		pending := taskertype.DLQPending
		if _, err := h.eng.UpdateDLQEntry(ctx, entry.ID, tasker.DLQUpdateParams{Status: &pending}); !errors.Is(err, taskertype.ErrIllegalTransition) {
			t.Fatalf("reopening a closed investigation: %v", err)
		}
		if _, err := h.eng.UpdateDLQEntry(ctx, uuid.Must(uuid.NewV7()), tasker.DLQUpdateParams{Notes: &notes}); !errors.Is(err, taskertype.ErrNotFound) {
			t.Fatalf("an unknown entry: %v", err)
		}
		info, err := h.eng.Task(ctx, out.Task.ID)
		must(t, err)
		if info.Task.State != taskertype.TaskError {
			t.Fatalf("the DLQ update moved the task to %s", info.Task.State)
		}
		stats, err := h.eng.DLQStats(ctx)
		must(t, err)
		if len(stats) != 2 || stats[0].Reason != taskertype.DLQMaxRetriesExceeded || stats[0].PermanentlyFailed != 1 ||
			stats[0].Pending != 0 || stats[1].Reason != taskertype.DLQManual || stats[1].Pending != 1 {
			t.Fatalf("stats %+v %+v", stats[0], stats[len(stats)-1])
		}
		list, err := h.eng.ListDLQ(ctx, tasker.DLQListParams{Status: taskertype.DLQPending})
		must(t, err)
		if len(list) != 1 || list[0].ID != manual.ID {
			t.Fatalf("pending entries %+v", list)
		}
	})
}
