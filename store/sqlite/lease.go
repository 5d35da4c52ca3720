package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The store leases of running attempts (steps.attempt_lease_until, unix
// microseconds of the database's clock). SQLite's own queue shares the
// database, so the engine never takes them there; they are here so that a
// worker on SQLite with a queue elsewhere behaves as on PostgreSQL.

// nowMicros is the database's clock, in unix microseconds.
const nowMicros = `CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)`

// StepLeaseHold implements store.Tx: written just before the commit, after
// the step.
func (t *tx) StepLeaseHold(_ context.Context, p *store.StepLeaseParams) error {
	const op = "step lease hold"
	if err := t.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	t.leases = append(t.leases, *p)
	return nil
}

// flushLeases writes the leases held in the transaction, each only while
// its step runs its attempt.
func (t *tx) flushLeases() error {
	for _, p := range t.leases {
		if _, err := t.tx.ExecContext(t.ctx, `UPDATE steps SET attempt_lease_until = `+nowMicros+` + ?3 WHERE id = ?1 AND attempt_id = ?2`,
			p.StepID.String(), p.AttemptID.String(), p.Lease.Microseconds()); err != nil {
			return fmt.Errorf("store: step lease hold: step %s: %w", p.StepID, err)
		}
	}
	t.leases = nil
	return nil
}

// StepLeaseLeft implements store.Tx.
func (t *tx) StepLeaseLeft(_ context.Context, stepID, attemptID uuid.UUID) (time.Duration, error) {
	const op = "step lease left"
	if err := t.check(op); err != nil {
		return 0, err
	}
	_, st, err := t.loadStep(op, stepID)
	if err != nil {
		return 0, err
	}
	if st.State != taskertype.StepInProgress || st.AttemptID != attemptID || attemptID == uuid.Nil {
		return 0, nil
	}
	var us sql.NullInt64
	err = t.tx.QueryRowContext(t.ctx, `SELECT max(attempt_lease_until - `+nowMicros+`, 0) FROM steps WHERE id = ?1`, stepID.String()).Scan(&us)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: %s: step %s: %w", op, stepID, err)
	}
	return time.Duration(us.Int64) * time.Microsecond, nil
}

// StepLeaseExtend implements store.Store: one statement on the writer.
func (s *Store) StepLeaseExtend(ctx context.Context, p *store.StepLeaseParams) error {
	const op = "step lease extend"
	if err := s.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	res, err := s.db.W.ExecContext(ctx, `UPDATE steps SET attempt_lease_until = `+nowMicros+` + ?3
		WHERE id = ?1 AND attempt_id = ?2 AND state = ?4`, p.StepID.String(), p.AttemptID.String(), p.Lease.Microseconds(), string(taskertype.StepInProgress))
	if err != nil {
		return fmt.Errorf("store: %s: step %s: %w", op, p.StepID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: %s: step %s is not in progress with attempt %s: %w", op, p.StepID, p.AttemptID, taskertype.ErrNotFound)
	}
	return nil
}
