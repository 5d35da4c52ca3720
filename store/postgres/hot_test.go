package postgres_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// Steps created together and moved together, as the engine's batches do
// (a creation of many tasks, then claims and reports of many steps a
// transaction), find room on their pages for their new versions
// (migration 0009, fillfactor 50): every start of a batch stays on its
// row's page, which makes it a HOT update, adding no index entry. (At 80,
// 164 of the 400 did. The result's move is logged, not checked: whether
// it finds room depends on the start's old versions being pruned, which a
// transaction of another test holding an old snapshot delays.)
func TestStepMovesAreHOTUpdates(t *testing.T) {
	ctx := t.Context()
	s, clock, conn := packedEnv(t)
	const n, batch = 400, 50
	move := func(st *taskertype.Step, evs ...taskertype.StepEvent) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			for _, ev := range evs {
				from := st.State
				to, err := taskertype.NextStepState(from, ev)
				if err != nil {
					return err
				}
				st.State = to
				switch to {
				case taskertype.StepInProgress:
					st.Attempts++
					st.StartedAt = clock.Now()
				case taskertype.StepEnqueuedForOrchestration:
					st.Result = []byte(`{"order": 42, "status": "shipped", "carrier": "ups", "tracking": "1Z999AA10123456784"}`)
				case taskertype.StepComplete:
					st.FinishedAt = clock.Now()
				}
				if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: from, Event: ev, At: clock.Now(), Processor: "t"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	steps := make([]*taskertype.Step, 0, n)
	// Created and enqueued in one transaction, as the engine does: the
	// enqueue is in the row's insert.
	inTx(t, s, func(tx store.Tx) error {
		for range n {
			task, st := linear(t, 1)
			if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: st, At: clock.Now()}); err != nil {
				return err
			}
			if err := move(st[0], taskertype.StepEventEnqueue)(tx); err != nil {
				return err
			}
			steps = append(steps, st[0])
		}
		return nil
	})
	// The page of each step's row, read from its ctid.
	pages := func() map[uuid.UUID]int64 {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT id, (ctid::text::point)[0]::bigint FROM steps`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[uuid.UUID]int64{}
		for rows.Next() {
			var id uuid.UUID
			var page int64
			if err := rows.Scan(&id, &page); err != nil {
				t.Fatal(err)
			}
			m[id] = page
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, evs := range [][]taskertype.StepEvent{
		{taskertype.StepEventStart},
		{taskertype.StepEventSucceed, taskertype.StepEventComplete},
	} {
		before := pages()
		for i := 0; i < n; i += batch {
			inTx(t, s, func(tx store.Tx) error {
				// The batch's tasks and steps read and held first, as the
				// engine's claims and reports do: a step's moves in one
				// transaction are then one write.
				ids := make([]uuid.UUID, 0, batch)
				for _, st := range steps[i : i+batch] {
					ids = append(ids, st.TaskID)
				}
				if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: ids}); err != nil {
					return err
				}
				for _, st := range steps[i : i+batch] {
					if err := move(st, evs...)(tx); err != nil {
						return err
					}
				}
				return nil
			})
		}
		// A row whose update found no room on its page moved to another
		// one (the update changes no indexed column: it is HOT exactly
		// when it stays on its page).
		stayed := 0
		for id, page := range pages() {
			if before[id] == page {
				stayed++
			}
		}
		t.Logf("%v: %d of %d rows stayed on their page", evs, stayed, n)
		if evs[0] == taskertype.StepEventStart && stayed < n*9/10 {
			t.Errorf("the steps' starts: %d of %d rows stayed on their page, want at least 90 %%: the table's pages lack room for a batch's moves", stayed, n)
		}
	}
}
