package sqlite

import (
	"context"
	"fmt"

	"github.com/tasker-go/tasker/internal/rowscan"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
)

// Times are Unix microseconds: durations divide by 1e6 for seconds.

// PerformanceStats implements store.Store.
func (s *Store) PerformanceStats(ctx context.Context, p *store.PerformanceParams) (*store.Performance, error) {
	const op = "performance stats"
	if err := s.check(op); err != nil {
		return nil, err
	}
	var out store.Performance
	since := sqlitedb.Micros(p.Since)
	err := s.db.R.QueryRowContext(ctx, `SELECT count(*),
			coalesce(sum(finished_at IS NULL), 0),
			coalesce(sum(state = 'complete'), 0),
			coalesce(sum(state = 'error'), 0),
			coalesce(avg(CASE WHEN state = 'complete' THEN finished_at - created_at END), 0) / 1e6
		FROM tasks WHERE created_at >= ?`, since).Scan(&out.Tasks, &out.Unfinished, &out.Complete, &out.Error, &out.TaskSeconds)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	err = s.db.R.QueryRowContext(ctx, `SELECT count(*), coalesce(avg(finished_at - started_at), 0) / 1e6
		FROM steps WHERE finished_at >= ? AND started_at IS NOT NULL`, since).Scan(&out.Steps, &out.StepSeconds)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return &out, nil
}

// SlowSteps implements store.Store.
func (s *Store) SlowSteps(ctx context.Context, p *store.SlowParams) ([]*store.SlowStep, error) {
	const op = "slow steps"
	if err := s.check(op); err != nil {
		return nil, err
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT t.namespace, t.name, t.version, st.name,
			avg(st.finished_at - st.started_at) / 1e6, max(st.finished_at - st.started_at) / 1e6,
			count(*), sum(st.state = 'error'), max(st.finished_at)
		FROM steps st JOIN tasks t ON t.id = st.task_id
		WHERE st.started_at IS NOT NULL AND st.finished_at IS NOT NULL
		GROUP BY t.namespace, t.name, t.version, st.name
		HAVING count(*) >= ?
		ORDER BY 5 DESC, 1, 2, 3, 4 LIMIT ?`, p.MinExecutions, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (*store.SlowStep, error) {
		var r store.SlowStep
		var last int64
		err := rows.Scan(&r.Namespace, &r.Task, &r.Version, &r.Step, &r.AvgSeconds, &r.MaxSeconds, &r.Executions, &r.Errors, &last)
		r.LastFinished = sqlitedb.Time(last)
		return &r, err
	})
}

// SlowTasks implements store.Store.
func (s *Store) SlowTasks(ctx context.Context, p *store.SlowParams) ([]*store.SlowTask, error) {
	const op = "slow tasks"
	if err := s.check(op); err != nil {
		return nil, err
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT t.namespace, t.name, t.version,
			avg(t.finished_at - t.created_at) / 1e6, max(t.finished_at - t.created_at) / 1e6,
			avg((SELECT count(*) FROM steps st WHERE st.task_id = t.id)),
			count(*), sum(t.state = 'error'), max(t.finished_at)
		FROM tasks t WHERE t.finished_at IS NOT NULL
		GROUP BY t.namespace, t.name, t.version
		HAVING count(*) >= ?
		ORDER BY 4 DESC, 1, 2, 3 LIMIT ?`, p.MinExecutions, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (*store.SlowTask, error) {
		var r store.SlowTask
		var last int64
		err := rows.Scan(&r.Namespace, &r.Task, &r.Version, &r.AvgSeconds, &r.MaxSeconds, &r.AvgSteps, &r.Executions, &r.Errors, &last)
		r.LastFinished = sqlitedb.Time(last)
		return &r, err
	})
}

// StateCounts implements store.Store.
func (s *Store) StateCounts(ctx context.Context) (*store.StateCounts, error) {
	const op = "state counts"
	if err := s.check(op); err != nil {
		return nil, err
	}
	out := &store.StateCounts{Tasks: map[string]int64{}, Steps: map[string]int64{}}
	rows, err := s.db.R.QueryContext(ctx, `SELECT 'task', state, count(*) FROM tasks GROUP BY state
		UNION ALL SELECT 'step', state, count(*) FROM steps GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	err = rowscan.Each(op, rows, func(rows rowscan.Rows) error {
		var kind, state string
		var n int64
		err := rows.Scan(&kind, &state, &n)
		if kind == "task" {
			out.Tasks[state] = n
		} else {
			out.Steps[state] = n
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
