package api

import (
	"testing"
	"time"
)

// A stream remembers the ids read within the settle window, but never more
// than maxRecent: a busy task moves its cursor up instead, so each poll
// reads at most that many rows again.
func TestStreamSettleBoundsWhatItReadsAgain(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	st := &stream{recent: map[int64]time.Time{}}
	for id := int64(1); id <= maxRecent+1000; id++ {
		st.recent[id] = now
	}
	st.settle(now.Add(-DefaultEventSettle))
	if len(st.recent) != maxRecent || st.cursor != 1000 {
		t.Fatalf("after a burst: %d ids remembered, cursor %d; want %d and 1000", len(st.recent), st.cursor, maxRecent)
	}
	// Past the window, the cursor moves to the newest id read before it.
	st.recent[maxRecent+2000] = now.Add(10 * time.Second)
	st.settle(now.Add(time.Second))
	if st.cursor != maxRecent+1000 || len(st.recent) != 1 {
		t.Fatalf("after the window: cursor %d, %d remembered; want %d and 1", st.cursor, len(st.recent), maxRecent+1000)
	}
}
