package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The store leases of running attempts (steps.attempt_lease_until, in
// database time): taken and renewed only by workers whose queue is not in
// this database (RabbitMQ). See store.Tx.StepLeaseHold.

// StepLeaseHold implements store.Tx: the lease is written with the COMMIT,
// after the step's own write, so it costs no round trip.
func (x *tx) StepLeaseHold(_ context.Context, p *store.StepLeaseParams) error {
	const op = "step lease hold"
	if err := x.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	x.leases = append(x.leases, *p)
	return nil
}

// holdLeasesStmt writes the leases of ps, each only while its step runs
// its attempt.
func holdLeasesStmt(ps []store.StepLeaseParams) pgdb.Stmt {
	ids, attempts, leases := make([]uuid.UUID, len(ps)), make([]uuid.UUID, len(ps)), make([]int64, len(ps))
	for i, p := range ps {
		ids[i], attempts[i], leases[i] = p.StepID, p.AttemptID, p.Lease.Microseconds()
	}
	return pgdb.Stmt{
		SQL: `UPDATE steps AS s SET attempt_lease_until = clock_timestamp() + u.lease_us * interval '1 microsecond'
			FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS u(id, attempt_id, lease_us)
			WHERE s.id = u.id AND s.attempt_id = u.attempt_id`,
		Args: []any{ids, attempts, leases},
		Err:  func(err error) error { return fmt.Errorf("store: step lease hold: %w", err) },
	}
}

// StepLeaseLeft implements store.Tx: one round trip, after the step's
// buffered writes.
func (x *tx) StepLeaseLeft(ctx context.Context, stepID, attemptID uuid.UUID) (time.Duration, error) {
	const op = "step lease left"
	if err := x.check(op); err != nil {
		return 0, err
	}
	var us int64
	err := x.query(ctx, op, readsSteps, pgdb.Stmt{
		SQL: `SELECT COALESCE(GREATEST(EXTRACT(EPOCH FROM attempt_lease_until - clock_timestamp()) * 1000000, 0), 0)::bigint
			FROM steps WHERE id = $1 AND attempt_id = $2 AND state = $3`,
		Args: []any{stepID, attemptID, string(taskertype.StepInProgress)},
		Row: func(row pgx.Row) error {
			if err := row.Scan(&us); err != nil && !pgdb.IsNoRows(err) {
				return err
			}
			return nil
		}})
	if err != nil {
		return 0, err
	}
	return time.Duration(us) * time.Microsecond, nil
}

// StepLeaseExtend implements store.Store: one statement.
func (s *Store) StepLeaseExtend(ctx context.Context, p *store.StepLeaseParams) error {
	const op = "step lease extend"
	if err := s.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	tag, err := s.db.Pool.Exec(ctx, `UPDATE steps SET attempt_lease_until = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE id = $1 AND attempt_id = $2 AND state = $4`, p.StepID, p.AttemptID, p.Lease.Microseconds(), string(taskertype.StepInProgress))
	if err != nil {
		return fmt.Errorf("store: %s: step %s: %w", op, p.StepID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: %s: step %s is not in progress with attempt %s: %w", op, p.StepID, p.AttemptID, taskertype.ErrNotFound)
	}
	return nil
}
