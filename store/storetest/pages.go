package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// testTaskPages: TaskList's Offset and Namespace page through the tasks
// newest first, and TaskCount counts what the same filter keeps.
func testTaskPages(t *testing.T, e *env) {
	var ids []uuid.UUID
	for i := range 5 {
		p := diamond(t, e)
		if i%2 == 1 {
			p.Task.Namespace = "other"
		}
		e.create(t, p)
		ids = append(ids, p.Task.ID)
		e.clock.Advance(time.Second)
	}
	e.moveTask(t, ids[4], taskertype.TaskPending, taskertype.TaskEventStart)
	ns := func() string {
		task, err := e.s.TaskGet(t.Context(), ids[0])
		if err != nil {
			t.Fatal(err)
		}
		return task.Namespace
	}()
	page := func(p store.TaskListParams) []uuid.UUID {
		t.Helper()
		tasks, err := e.s.TaskList(t.Context(), &p)
		if err != nil {
			t.Fatalf("TaskList(%+v): %v", p, err)
		}
		var got []uuid.UUID
		for _, task := range tasks {
			got = append(got, task.ID)
		}
		return got
	}
	count := func(p store.TaskListParams) int64 {
		t.Helper()
		n, err := e.s.TaskCount(t.Context(), &p)
		if err != nil {
			t.Fatalf("TaskCount(%+v): %v", p, err)
		}
		return n
	}
	check := func(name string, got, want []uuid.UUID) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	check("offset 1, limit 2", page(store.TaskListParams{Limit: 2, Offset: 1}), []uuid.UUID{ids[3], ids[2]})
	check("offset 4", page(store.TaskListParams{Limit: 2, Offset: 4}), []uuid.UUID{ids[0]})
	check("offset past the end", page(store.TaskListParams{Limit: 2, Offset: 9}), nil)
	check("namespace other", page(store.TaskListParams{Namespace: "other"}), []uuid.UUID{ids[3], ids[1]})
	check("namespace "+ns+", offset 1", page(store.TaskListParams{Namespace: ns, Offset: 1}), []uuid.UUID{ids[2], ids[0]})
	pending := []taskertype.TaskState{taskertype.TaskPending}
	check("pending in "+ns+", offset 1", page(store.TaskListParams{Namespace: ns, States: pending, Offset: 1, Limit: 5}), []uuid.UUID{ids[0]})
	for _, c := range []struct {
		p    store.TaskListParams
		want int64
	}{
		{store.TaskListParams{}, 5},
		{store.TaskListParams{Namespace: "other"}, 2},
		{store.TaskListParams{Namespace: ns, States: pending}, 2},
		{store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskInitializing}}, 1},
		{store.TaskListParams{Namespace: "none"}, 0},
	} {
		if n := count(c.p); n != c.want {
			t.Errorf("TaskCount(%+v) = %d, want %d", c.p, n, c.want)
		}
	}
	if _, err := e.s.TaskList(t.Context(), &store.TaskListParams{Offset: -1}); err == nil {
		t.Error("a negative offset was accepted")
	}
}
