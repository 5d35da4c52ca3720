package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/background"
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// LockName is the store lock (store.Store.LockTry) that makes one detector
// act at a time across every process of a database.
const LockName = "staleness_detector"

// StaleStates are the states a task can be stuck in (tasker-core's): the
// others are passed through within one transaction, or are terminal.
var StaleStates = []taskertype.TaskState{
	taskertype.TaskWaitingForDependencies, taskertype.TaskWaitingForRetry, taskertype.TaskStepsInProcess,
}

// Thresholds say how long a task may stay in a state, and live, before it
// is stale.
type Thresholds struct {
	WaitingForDependencies time.Duration
	WaitingForRetry        time.Duration
	StepsInProcess         time.Duration
	// MaxDuration bounds the life of a task in one of StaleStates.
	MaxDuration time.Duration
}

// DefaultThresholds are tasker-core's: 60, 30 and 30 minutes, 24 hours.
func DefaultThresholds() Thresholds {
	return Thresholds{
		WaitingForDependencies: template.DefaultMaxWaitingForDependenciesMinutes * time.Minute,
		WaitingForRetry:        template.DefaultMaxWaitingForRetryMinutes * time.Minute,
		StepsInProcess:         template.DefaultMaxStepsInProcessMinutes * time.Minute,
		MaxDuration:            template.DefaultMaxDurationMinutes * time.Minute,
	}
}

// For returns the threshold of a state; zero for a state that is never
// stale.
func (t Thresholds) For(s taskertype.TaskState) time.Duration {
	switch s {
	case taskertype.TaskWaitingForDependencies:
		return t.WaitingForDependencies
	case taskertype.TaskWaitingForRetry:
		return t.WaitingForRetry
	case taskertype.TaskStepsInProcess:
		return t.StepsInProcess
	}
	return 0
}

// Policy returns the thresholds and the action of a template: its
// lifecycle's where set, defaults' elsewhere. A nil template (not found)
// gets the defaults and StalenessDLQ.
func Policy(defaults Thresholds, t *template.Template) (Thresholds, template.StalenessAction) {
	if t == nil || t.Lifecycle == nil {
		return defaults, template.StalenessDLQ
	}
	lc := t.Lifecycle
	pick := func(minutes int, def time.Duration) time.Duration {
		if minutes > 0 {
			return time.Duration(minutes) * time.Minute
		}
		return def
	}
	th := Thresholds{
		WaitingForDependencies: pick(lc.MaxWaitingForDependenciesMinutes, defaults.WaitingForDependencies),
		WaitingForRetry:        pick(lc.MaxWaitingForRetryMinutes, defaults.WaitingForRetry),
		StepsInProcess:         pick(lc.MaxStepsInProcessMinutes, defaults.StepsInProcess),
		MaxDuration:            pick(lc.MaxDurationMinutes, defaults.MaxDuration),
	}
	action := lc.StalenessAction
	if action == "" {
		action = template.StalenessDLQ
	}
	return th, action
}

// effects says what the action does to a stale task: record a DLQ entry,
// move the task to error. A template's lifecycle may turn either off:
// auto_dlq_on_timeout: false records no entry, auto_fail_on_timeout: false
// leaves the task in its state.
func effects(t *template.Template, action template.StalenessAction) (record, fail bool) {
	record, fail = action == template.StalenessDLQ, action == template.StalenessDLQ || action == template.StalenessError
	if t != nil && t.Lifecycle != nil {
		if v := t.Lifecycle.AutoDLQOnTimeout; v != nil && !*v {
			record = false
		}
		if v := t.Lifecycle.AutoFailOnTimeout; v != nil && !*v {
			fail = false
		}
	}
	return record, fail
}

// TemplateFunc resolves a task's template version (the engine's template
// cache). An error wrapping taskertype.ErrNotFound makes the detector use
// the defaults.
type TemplateFunc func(ctx context.Context, namespace, name, version string) (*template.Template, error)

// Config configures a Detector. The zero value of each optional field
// means its default.
type Config struct {
	Store     store.Store  // required
	Templates TemplateFunc // required
	// Bus receives the transitions to error; nil: none.
	Bus    *events.Bus
	Logger *slog.Logger     // default: discard
	Clock  taskertype.Clock // default: the wall clock
	// Processor names the detector in the transition log.
	Processor string
	// Interval is the time between two runs. Default 5m (tasker-core's
	// detection_interval_seconds).
	Interval time.Duration
	// BatchSize bounds the tasks acted on in one run, and the rows of each
	// query. Default 100 (tasker-core's).
	BatchSize int
	// Defaults are the thresholds where a template's lifecycle sets none.
	// Zero fields take DefaultThresholds'.
	Defaults Thresholds

	// testHoldingLock, when set, is called while a run holds the lock,
	// before it looks for stale tasks (tests).
	testHoldingLock func()
}

// Limits of Config.
const (
	MinInterval  = time.Second
	MaxBatchSize = 10_000
)

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = taskertype.SystemClock{}
	}
	if c.Processor == "" {
		c.Processor = "staleness_detector"
	}
	if c.Interval == 0 {
		c.Interval = 5 * time.Minute
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	def := DefaultThresholds()
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.Defaults.WaitingForDependencies, def.WaitingForDependencies},
		{&c.Defaults.WaitingForRetry, def.WaitingForRetry},
		{&c.Defaults.StepsInProcess, def.StepsInProcess},
		{&c.Defaults.MaxDuration, def.MaxDuration},
	} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("staleness detector: Config.Store is required")
	case c.Templates == nil:
		return errors.New("staleness detector: Config.Templates is required")
	case c.Interval < MinInterval:
		return fmt.Errorf("staleness detector: interval %v is below %v: give a longer one (tasker-core runs every 5m)", c.Interval, MinInterval)
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return fmt.Errorf("staleness detector: batch size %d is out of range 1..%d", c.BatchSize, MaxBatchSize)
	}
	for name, d := range map[string]time.Duration{
		"waiting for dependencies": c.Defaults.WaitingForDependencies, "waiting for retry": c.Defaults.WaitingForRetry,
		"steps in process": c.Defaults.StepsInProcess, "max duration": c.Defaults.MaxDuration,
	} {
		if d < time.Minute {
			return fmt.Errorf("staleness detector: the %s threshold %v is below 1m: give minutes, as a template's lifecycle does", name, d)
		}
	}
	return nil
}

// Action is what a run did with one stale task.
type Action struct {
	TaskID                   uuid.UUID
	Namespace, Name, Version string
	State                    taskertype.TaskState // the state it was stuck in
	TimeInState, TaskAge     time.Duration
	Threshold                time.Duration // the one it passed: the state's, or MaxDuration
	Action                   template.StalenessAction
	EntryID                  uuid.UUID // the DLQ entry made; uuid.Nil if none
	// Reason is the DLQ reason: worker_unavailable when a step of the
	// task waited to be taken by a worker (enqueued) past the threshold,
	// staleness_timeout otherwise. Set by the action.
	Reason       taskertype.DLQReason
	MovedToError bool
	// record and fail: what the action may do (effects).
	record, fail bool
}

// Report says what a run did.
type Report struct {
	// Leader: this run held the lock and looked; false: another process's
	// detector is running (nothing was done).
	Leader bool
	// Stale lists the stale tasks acted on, and those of templates whose
	// action is none (Action none: monitored, left as they are).
	Stale []Action
	// Skipped counts stale tasks that moved on between the read and the
	// action (another process acted, or they made progress).
	Skipped int
}

// Detector finds stale tasks and acts on them.
type Detector struct {
	cfg Config

	run background.Run // the periodic runs, between Start and Stop
}

// New checks cfg and returns a detector that is not running.
func New(cfg Config) (*Detector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Detector{cfg: cfg}, nil
}

// Start runs the detector every Interval until Stop; the first run comes
// after one Interval. Starting a started detector does nothing.
func (d *Detector) Start(ctx context.Context) {
	d.run.Start(ctx, func(runCtx context.Context) {
		t := time.NewTicker(d.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if _, err := d.RunOnce(runCtx); err != nil && runCtx.Err() == nil {
				d.cfg.Logger.Warn("staleness detection failed; trying again next interval", "error", err)
			}
		}
	})
}

// Stop stops the detector and waits for a run in progress, or for ctx.
func (d *Detector) Stop(ctx context.Context) error {
	if err := d.run.Stop(ctx); err != nil {
		return fmt.Errorf("staleness detector: stop: %w", err)
	}
	return nil
}

// RunOnce runs one detection: when it gets the lock, it finds the stale
// tasks, oldest in their state first, and acts on up to BatchSize of them.
func (d *Detector) RunOnce(ctx context.Context) (Report, error) {
	release, held, err := d.cfg.Store.LockTry(ctx, LockName)
	if err != nil {
		return Report{}, fmt.Errorf("staleness detector: %w", err)
	}
	if !held {
		d.cfg.Logger.Debug("staleness detection skipped: another process runs it")
		return Report{}, nil
	}
	defer release()
	if d.cfg.testHoldingLock != nil {
		d.cfg.testHoldingLock()
	}
	rep := Report{Leader: true}
	now := d.cfg.Clock.Now()
	// The lowest threshold a template may set is a minute: every task that
	// may be stale entered its state, or was created, that long ago.
	keys, err := d.cfg.Store.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{
		States: StaleStates, EnteredBefore: now.Add(-time.Minute), CreatedBefore: now.Add(-time.Minute),
	})
	if err != nil {
		return rep, fmt.Errorf("staleness detector: %w", err)
	}
	budget := d.cfg.BatchSize
	for _, k := range keys {
		if budget == 0 {
			break
		}
		tmpl, err := d.cfg.Templates(ctx, k.Namespace, k.Name, k.Version)
		if err != nil && !errors.Is(err, taskertype.ErrNotFound) {
			return rep, fmt.Errorf("staleness detector: template %s/%s@%s: %w", k.Namespace, k.Name, k.Version, err)
		}
		if err != nil {
			d.cfg.Logger.Warn("staleness detection: template not found, default thresholds apply",
				"namespace", k.Namespace, "template", k.Name, "version", k.Version)
			tmpl = nil
		}
		th, action := Policy(d.cfg.Defaults, tmpl)
		p := &store.TaskStaleListParams{Template: k, EnteredBefore: map[taskertype.TaskState]time.Time{},
			CreatedBefore: now.Add(-th.MaxDuration), Limit: budget}
		for _, s := range StaleStates {
			p.EnteredBefore[s] = now.Add(-th.For(s))
		}
		tasks, err := d.cfg.Store.TaskStaleList(ctx, p)
		if err != nil {
			return rep, fmt.Errorf("staleness detector: %w", err)
		}
		for _, t := range tasks {
			a := Action{TaskID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, State: t.State,
				TimeInState: now.Sub(t.UpdatedAt), TaskAge: now.Sub(t.CreatedAt), Threshold: th.For(t.State), Action: action}
			if a.TimeInState < a.Threshold {
				a.Threshold = th.MaxDuration
			}
			a.record, a.fail = effects(tmpl, action)
			if !a.record && !a.fail {
				// Monitoring only: the task stays as it is, and is found
				// again next run; it takes none of the batch.
				rep.Stale = append(rep.Stale, a)
				continue
			}
			budget--
			acted, err := d.act(ctx, t, &a, now)
			if err != nil {
				return rep, err
			}
			if !acted {
				rep.Skipped++
				continue
			}
			rep.Stale = append(rep.Stale, a)
			d.cfg.Logger.Info("stale task", "task_id", a.TaskID, "namespace", a.Namespace, "template", a.Name,
				"state", a.State, "time_in_state", a.TimeInState, "threshold", a.Threshold, "action", a.Action, "reason", a.Reason,
				"dlq_entry", a.EntryID, "moved_to_error", a.MovedToError)
		}
	}
	return rep, nil
}

// waitingOnTime reports whether a task's steps still wait on time they were
// given: a step running within its timeout, or one waiting for a retry not
// yet due. Such a task is not stuck, whatever its time in its state (a step
// may run for hours; a retry's backoff may pass a state's threshold).
func waitingOnTime(steps []*taskertype.Step, now time.Time) bool {
	for _, s := range steps {
		switch s.State {
		case taskertype.StepInProgress:
			if s.Timeout > 0 && !s.StartedAt.IsZero() && now.Before(s.StartedAt.Add(s.Timeout)) {
				return true
			}
		case taskertype.StepWaitingForRetry:
			if now.Before(s.NextRetryAt) {
				return true
			}
		}
	}
	return false
}

// waitingForWorker reports whether a step of the task has waited to be
// taken by a worker (enqueued) for longer than threshold: no worker serves
// its handler (a pull worker never registered, or every one left), or none
// had room for it all that time.
func waitingForWorker(steps []*taskertype.Step, now time.Time, threshold time.Duration) bool {
	for _, s := range steps {
		if s.State == taskertype.StepEnqueued && now.Sub(s.UpdatedAt) > threshold {
			return true
		}
	}
	return false
}

// act applies the action to one task in one transaction, if the task is
// still in the state and episode it was found in.
func (d *Detector) act(ctx context.Context, found *taskertype.Task, a *Action, now time.Time) (bool, error) {
	acted := false
	err := transition.InTx(ctx, d.cfg.Store, d.cfg.Bus, d.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
		acted, a.EntryID, a.MovedToError = false, uuid.Nil, false
		task, err := tx.TaskGetForUpdate(ctx, found.ID)
		if err != nil {
			return err
		}
		if task.State != found.State || !task.UpdatedAt.Equal(found.UpdatedAt) {
			return nil // moved on: not the episode found stale
		}
		steps, err := tx.StepList(ctx, task.ID)
		if err != nil {
			return err
		}
		if waitingOnTime(steps, now) {
			return nil
		}
		a.Reason = taskertype.DLQStalenessTimeout
		if waitingForWorker(steps, now, a.Threshold) {
			a.Reason = taskertype.DLQWorkerUnavailable
		}
		if a.record {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			meta := map[string]any{
				"detection_method": "automatic_staleness", "time_in_state_minutes": int(a.TimeInState / time.Minute),
				"threshold_minutes": int(a.Threshold / time.Minute), "task_age_minutes": int(a.TaskAge / time.Minute),
				"state_entered_at": task.UpdatedAt, "detector": d.cfg.Processor,
			}
			created, err := tx.DLQEntryCreate(ctx, &store.DLQEntryCreateParams{Entry: &taskertype.DLQEntry{
				ID: id, TaskID: task.ID, OriginalState: task.State, Reason: a.Reason, At: now,
				TaskSnapshot: Snapshot(task, steps, now, map[string]any{
					"time_in_state_minutes": meta["time_in_state_minutes"], "threshold_minutes": meta["threshold_minutes"],
				}),
				Metadata: object(meta),
			}})
			if err != nil {
				return err
			}
			if created {
				a.EntryID = id
			}
		}
		if !a.fail {
			// The entry is the whole action: a pending one already
			// recorded this episode (created false) means nothing new.
			acted = a.EntryID != uuid.Nil
			return nil
		}
		if err := rec.Task(ctx, tx, task, taskertype.TaskEventStalenessTimeout, now); err != nil {
			return err
		}
		acted, a.MovedToError = true, true
		return nil
	})
	if err != nil {
		if errors.Is(err, taskertype.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("staleness detector: task %s: %w", found.ID, err)
	}
	return acted, nil
}
