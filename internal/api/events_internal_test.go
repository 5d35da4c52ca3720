package api

import (
	"testing"
	"time"

	"github.com/tasker-go/tasker"
)

// A stream remembers the ids read within the settle window, but never more
// than maxRecent read in earlier polls: a busy task moves its cursor up
// instead, so each poll reads at most that many rows again. The ids a poll
// reads first keep their window: a burst does not pass over a slow
// transaction below it at once.
func TestStreamSettleBoundsWhatItReadsAgain(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := &stream{recent: map[int64]time.Time{}}
	// The first read: the cursor stays at zero whatever the ids' times.
	st.start([]*tasker.Transition{{ID: 5, At: now.Add(-time.Hour)}, {ID: 7, At: now.Add(-time.Hour)}}, now)
	if st.cursor != 0 || len(st.recent) != 2 {
		t.Fatalf("after the first read: cursor %d, %d remembered; want 0 and 2", st.cursor, len(st.recent))
	}
	// A burst read by this poll: no id of it is passed yet.
	for id := int64(8); id <= maxRecent+1007; id++ {
		st.recent[id] = now
	}
	st.settle(now, now.Add(-DefaultEventSettle))
	if st.cursor != 0 {
		t.Fatalf("a burst moved the cursor to %d in the poll that read it", st.cursor)
	}
	// The next poll: the burst is earlier now, and the cap keeps its newest maxRecent.
	next := now.Add(time.Second)
	st.settle(next, next.Add(-DefaultEventSettle))
	if len(st.recent) != maxRecent || st.cursor != 1007 {
		t.Fatalf("a poll after the burst: %d ids remembered, cursor %d; want %d and 1007", len(st.recent), st.cursor, maxRecent)
	}
	// Past the window, the cursor moves to the newest id read before it.
	later := now.Add(10 * time.Second)
	st.recent[maxRecent+2000] = later
	st.settle(later, later.Add(-DefaultEventSettle))
	if st.cursor != maxRecent+1007 || len(st.recent) != 1 {
		t.Fatalf("after the window: cursor %d, %d remembered; want %d and 1", st.cursor, len(st.recent), maxRecent+1007)
	}
}
