package tasker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/dlq"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// The DLQ of tasks: investigations of tasks an operator must look at,
// recorded by the staleness detector (staleness_timeout), by orchestration
// when a task gives up because a step ran out of attempts
// (max_retries_exceeded) and by operators (SendToDLQ, manual_dlq). It is
// not the dead letters of the orchestration queues (DeadLetters): those are
// messages set aside. The DLQ never requeues anything: fix the task through
// ResetTask, ResetStep, ResolveStep or CompleteStep, and record what was
// done with UpdateDLQEntry. See docs/dlq.md.
type (
	// DLQEntry is one investigation of a task.
	DLQEntry = taskertype.DLQEntry
	// DLQReason says why a task entered the DLQ.
	DLQReason = taskertype.DLQReason
	// DLQResolutionStatus is where an investigation stands.
	DLQResolutionStatus = taskertype.DLQResolutionStatus
	// DLQListParams filters ListDLQ: task, status, reason, limit (default
	// 50, at most 1000) and offset.
	DLQListParams = store.DLQListParams
	// DLQUpdateParams changes an investigation: status (only from
	// pending), notes, resolved_by, metadata. ID and At are set by
	// UpdateDLQEntry.
	DLQUpdateParams = store.DLQUpdateParams
	// DLQStats counts the entries of one reason by status.
	DLQStats = store.DLQStats
)

// StalenessConfig configures the staleness detector. The zero value of
// each field means its default (tasker-core's).
type StalenessConfig struct {
	// Disabled: this process runs no detector. Otherwise every process
	// that orchestrates runs one, and one at a time acts per database.
	Disabled bool
	// Interval between two detections. Default 5m; at least 1s.
	Interval time.Duration
	// BatchSize bounds the tasks acted on per detection. Default 100.
	BatchSize int
	// The thresholds where a template's lifecycle sets none: waiting for
	// dependencies 60m, waiting for retry 30m, steps in process 30m, the
	// whole task 24h. At least 1m each.
	WaitingForDependencies, WaitingForRetry, StepsInProcess, MaxDuration time.Duration
}

func (e *Engine) newDetector() (*dlq.Detector, error) {
	c := e.cfg.Staleness
	d, err := dlq.New(dlq.Config{
		Store: e.store, Templates: e.tmpl.Get, Bus: e.bus, Logger: e.log, Clock: e.clock,
		Processor: "staleness@" + e.cfg.ProcessorName, Interval: c.Interval, BatchSize: c.BatchSize,
		Defaults: dlq.Thresholds{WaitingForDependencies: c.WaitingForDependencies, WaitingForRetry: c.WaitingForRetry,
			StepsInProcess: c.StepsInProcess, MaxDuration: c.MaxDuration},
	})
	if err != nil {
		return nil, fmt.Errorf("tasker: Config.Staleness: %w", err)
	}
	return d, nil
}

func jsonObject(m map[string]any) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

// StalenessAction is what a detection did with one stale task.
type StalenessAction = dlq.Action

// DetectStaleTasks runs one staleness detection now, as the detector
// does every Config.Staleness.Interval, and returns the stale tasks it
// found and what it did with them. It returns nothing when another
// process's detector is running at that moment.
func (e *Engine) DetectStaleTasks(ctx context.Context) ([]StalenessAction, error) {
	d := e.detector
	if d == nil {
		var err error
		if d, err = e.newDetector(); err != nil {
			return nil, err
		}
	}
	rep, err := d.RunOnce(ctx)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return rep.Stale, nil
}

// ListDLQ returns DLQ entries, newest first.
func (e *Engine) ListDLQ(ctx context.Context, p DLQListParams) ([]*DLQEntry, error) {
	es, err := e.store.DLQList(ctx, &p)
	if err != nil {
		return nil, fmt.Errorf("tasker: list dlq: %w", err)
	}
	return es, nil
}

// GetDLQEntry returns one DLQ entry; an unknown one is an error matching
// taskertype.ErrNotFound.
func (e *Engine) GetDLQEntry(ctx context.Context, id uuid.UUID) (*DLQEntry, error) {
	en, err := e.store.DLQGet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasker: dlq entry: %w", err)
	}
	return en, nil
}

// TaskDLQEntry returns the most recent DLQ entry of a task; none is an
// error matching taskertype.ErrNotFound.
func (e *Engine) TaskDLQEntry(ctx context.Context, taskID uuid.UUID) (*DLQEntry, error) {
	es, err := e.store.DLQList(ctx, &store.DLQListParams{TaskID: taskID, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("tasker: dlq entry of task %s: %w", taskID, err)
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("tasker: task %s has no dlq entry: %w", taskID, taskertype.ErrNotFound)
	}
	return es[0], nil
}

// UpdateDLQEntry records what was done about an investigation: its status
// (only from pending), notes, who resolved it, metadata. It changes
// nothing of the task.
func (e *Engine) UpdateDLQEntry(ctx context.Context, id uuid.UUID, p DLQUpdateParams) (*DLQEntry, error) {
	p.ID, p.At = id, e.clock.Now()
	en, err := e.store.DLQUpdate(ctx, &p)
	if err != nil {
		return nil, fmt.Errorf("tasker: update dlq entry: %w", err)
	}
	e.log.Info("dlq entry updated", "dlq_entry", id, "task_id", en.TaskID, "status", en.ResolutionStatus, "resolved_by", en.ResolvedBy)
	return en, nil
}

// DLQStats counts the DLQ entries by reason and status.
func (e *Engine) DLQStats(ctx context.Context) ([]*DLQStats, error) {
	st, err := e.store.DLQStats(ctx, &store.DLQStatsParams{At: e.clock.Now()})
	if err != nil {
		return nil, fmt.Errorf("tasker: dlq stats: %w", err)
	}
	return st, nil
}

// SendToDLQ records a manual_dlq investigation of a task, with the
// operator's notes; the task is left as it is. A task with a pending
// entry already is refused (taskertype.ErrInvalid), naming that entry.
func (e *Engine) SendToDLQ(ctx context.Context, taskID uuid.UUID, notes, by string) (*DLQEntry, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	var created bool
	err = e.store.InTx(ctx, func(tx store.Tx) error {
		task, err := tx.TaskGetForUpdate(ctx, taskID)
		if err != nil {
			return err
		}
		steps, err := tx.StepList(ctx, taskID)
		if err != nil {
			return err
		}
		created, err = tx.DLQEntryCreate(ctx, &store.DLQEntryCreateParams{Entry: &taskertype.DLQEntry{
			ID: id, TaskID: taskID, OriginalState: task.State, Reason: taskertype.DLQManual, At: now,
			TaskSnapshot: dlq.Snapshot(task, steps, now, nil),
			Metadata:     jsonObject(map[string]any{"detection_method": "manual", "notes": notes, "sent_by": by}),
		}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tasker: send task %s to the dlq: %w", taskID, err)
	}
	if !created {
		pending, _ := e.store.DLQList(ctx, &store.DLQListParams{TaskID: taskID, Status: taskertype.DLQPending, Limit: 1})
		which := ""
		if len(pending) == 1 {
			which = " " + pending[0].ID.String()
		}
		return nil, fmt.Errorf("tasker: send task %s to the dlq: it has a pending investigation already%s; update that one: %w",
			taskID, which, taskertype.ErrInvalid)
	}
	return e.GetDLQEntry(ctx, id)
}

// DLQInvestigation is a pending entry in triage order (tasker-core's
// investigation queue).
type DLQInvestigation struct {
	Entry *DLQEntry
	// MinutesInDLQ is how long the entry has been pending.
	MinutesInDLQ float64
	// PriorityScore is Entry.Reason.Priority() plus MinutesInDLQ: higher
	// is more urgent.
	PriorityScore float64
}

// DLQInvestigationQueue returns up to limit pending entries (default 100,
// at most 1000), most urgent first.
func (e *Engine) DLQInvestigationQueue(ctx context.Context, limit int) ([]DLQInvestigation, error) {
	if limit < 0 || limit > store.MaxDLQListLimit {
		return nil, fmt.Errorf("tasker: dlq investigation queue: limit %d is out of range 0..%d: %w", limit, store.MaxDLQListLimit, taskertype.ErrInvalid)
	}
	limit = cmp.Or(limit, 100)
	now := e.clock.Now()
	// Within a reason the oldest scores highest: the first limit of each
	// reason, oldest first, hold the answer.
	var out []DLQInvestigation
	for _, r := range taskertype.DLQReasons {
		es, err := e.store.DLQList(ctx, &store.DLQListParams{Status: taskertype.DLQPending, Reason: r, Oldest: true, Limit: limit})
		if err != nil {
			return nil, fmt.Errorf("tasker: dlq investigation queue: %w", err)
		}
		for _, en := range es {
			m := now.Sub(en.At).Minutes()
			out = append(out, DLQInvestigation{Entry: en, MinutesInDLQ: m, PriorityScore: r.Priority() + m})
		}
	}
	slices.SortStableFunc(out, func(a, b DLQInvestigation) int { return cmp.Compare(b.PriorityScore, a.PriorityScore) })
	return out[:min(limit, len(out))], nil
}

// TaskStaleness is how close an unfinished task is to its staleness
// threshold (tasker-core's staleness monitoring).
type TaskStaleness struct {
	Task                 *Task
	TimeInState, TaskAge time.Duration
	// Threshold is the one of the task's state, from its template's
	// lifecycle or the defaults.
	Threshold time.Duration
	// Health: "healthy" (under 80 % of Threshold), "warning" (80-99 %),
	// "stale" (100 % and more).
	Health string
	Action template.StalenessAction
}

// Staleness returns up to limit tasks (default 100, at most 1000) in the
// states a task can be stuck in, stale first, then longest in their state.
func (e *Engine) Staleness(ctx context.Context, limit int) ([]TaskStaleness, error) {
	if limit < 0 || limit > store.MaxDLQListLimit {
		return nil, fmt.Errorf("tasker: staleness: limit %d is out of range 0..%d: %w", limit, store.MaxDLQListLimit, taskertype.ErrInvalid)
	}
	limit = cmp.Or(limit, 100)
	now := e.clock.Now()
	keys, err := e.store.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{States: dlq.StaleStates, EnteredBefore: now, CreatedBefore: now})
	if err != nil {
		return nil, fmt.Errorf("tasker: staleness: %w", err)
	}
	c := e.cfg.Staleness
	defaults := dlq.DefaultThresholds()
	defaults.WaitingForDependencies = cmp.Or(c.WaitingForDependencies, defaults.WaitingForDependencies)
	defaults.WaitingForRetry = cmp.Or(c.WaitingForRetry, defaults.WaitingForRetry)
	defaults.StepsInProcess = cmp.Or(c.StepsInProcess, defaults.StepsInProcess)
	defaults.MaxDuration = cmp.Or(c.MaxDuration, defaults.MaxDuration)
	var out []TaskStaleness
	for _, k := range keys {
		tmpl, err := e.tmpl.Get(ctx, k.Namespace, k.Name, k.Version)
		if err != nil && !errors.Is(err, taskertype.ErrNotFound) {
			return nil, fmt.Errorf("tasker: staleness: %w", err)
		}
		th, action := dlq.Policy(defaults, tmpl)
		p := &store.TaskStaleListParams{Template: k, EnteredBefore: map[taskertype.TaskState]time.Time{}, Limit: limit}
		for _, s := range dlq.StaleStates {
			p.EnteredBefore[s] = now
		}
		tasks, err := e.store.TaskStaleList(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("tasker: staleness: %w", err)
		}
		for _, t := range tasks {
			ts := TaskStaleness{Task: t, TimeInState: now.Sub(t.UpdatedAt), TaskAge: now.Sub(t.CreatedAt), Threshold: th.For(t.State), Action: action}
			switch ratio := float64(ts.TimeInState) / float64(ts.Threshold); {
			case ratio >= 1 || ts.TaskAge >= th.MaxDuration:
				ts.Health = "stale"
			case ratio >= 0.8:
				ts.Health = "warning"
			default:
				ts.Health = "healthy"
			}
			out = append(out, ts)
		}
	}
	rank := map[string]int{"stale": 0, "warning": 1, "healthy": 2}
	slices.SortStableFunc(out, func(a, b TaskStaleness) int {
		return cmp.Or(cmp.Compare(rank[a.Health], rank[b.Health]), cmp.Compare(b.TimeInState, a.TimeInState))
	})
	return out[:min(limit, len(out))], nil
}
