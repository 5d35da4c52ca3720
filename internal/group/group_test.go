package group

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestALoneUnitCommitsAtOnceInTheCallersGoroutine(t *testing.T) {
	var groups [][]int
	c := &Committer[int]{Max: 8, Commit: func(u []int) { groups = append(groups, u) }}
	c.Do(1)
	c.Do(2)
	if len(groups) != 2 || groups[0][0] != 1 || groups[1][0] != 2 {
		t.Fatalf("groups %v, want [[1] [2]]", groups)
	}
}

// waitLeading waits until a group is being committed and no unit waits
// behind it.
func waitLeading(t *testing.T, c *Committer[int]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		leading := c.leading && len(c.pending) == 0
		c.mu.Unlock()
		if leading {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no group was ever being committed")
}

// queueBehind commits first, holds its group until units have queued
// behind it in their order, then lets it go (closes release, which Commit
// waits on) and waits for every unit.
func queueBehind(t *testing.T, c *Committer[int], release chan struct{}, first int, units ...int) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() { c.Do(first) })
	waitLeading(t, c)
	for i, u := range units {
		wg.Go(func() { c.Do(u) })
		waitPending(t, c, i+1) // one at a time, so they queue in this order
	}
	close(release)
	wg.Wait()
}

// waitPending waits until n units wait behind the group in progress.
func waitPending(t *testing.T, c *Committer[int], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.pending)
		c.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d units never queued up", n)
}

func TestUnitsArrivingDuringACommitShareTheNextOnes(t *testing.T) {
	var (
		mu       sync.Mutex
		groups   [][]int
		inCommit atomic.Int32
	)
	release := make(chan struct{})
	first := true
	c := &Committer[int]{Max: 4, Commit: func(u []int) {
		if inCommit.Add(1) != 1 {
			t.Error("Commit ran concurrently")
		}
		if first {
			first = false
			<-release // hold the first group while the others queue up
		}
		mu.Lock()
		groups = append(groups, u)
		mu.Unlock()
		inCommit.Add(-1)
	}}
	var wg sync.WaitGroup
	wg.Go(func() { c.Do(0) })
	waitPending(t, c, 0)
	for {
		c.mu.Lock()
		leading := c.leading
		c.mu.Unlock()
		if leading {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 10; i++ {
		wg.Go(func() { c.Do(i) })
	}
	waitPending(t, c, 10)
	close(release)
	wg.Wait()
	seen := map[int]bool{}
	for i, g := range groups {
		if len(g) > 4 {
			t.Errorf("group %d has %d units, over Max", i, len(g))
		}
		for _, u := range g {
			if seen[u] {
				t.Errorf("unit %d committed twice", u)
			}
			seen[u] = true
		}
	}
	if len(seen) != 11 || len(groups) != 4 { // [0] then 10 waiting in groups of 4, 4, 2
		t.Fatalf("groups %v: want all 11 units in 4 groups", groups)
	}
}

func TestALeaderReturnsAfterItsOwnGroupUnderSteadyLoad(t *testing.T) {
	c := &Committer[int]{Max: 2, Commit: func([]int) { time.Sleep(200 * time.Microsecond) }}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var worst atomic.Int64
	for range 32 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				c.Do(1)
				if d := int64(time.Since(start)); d > worst.Load() {
					worst.Store(d)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// 32 callers in groups of 2: a caller waits for at most the groups
	// ahead of it, about 16 commits of 200µs, not for the whole run.
	if w := time.Duration(worst.Load()); w > 150*time.Millisecond {
		t.Fatalf("a caller waited %v: a leader kept leading", w)
	}
}

func TestAPanicInCommitReleasesTheGroupAndHandsOnTheLead(t *testing.T) {
	boom := true
	c := &Committer[int]{Max: 4, Commit: func([]int) {
		if boom {
			boom = false
			panic("commit broke")
		}
	}}
	func() {
		defer func() {
			if r := recover(); r != "commit broke" {
				t.Fatalf("recovered %v, want the commit's panic", r)
			}
		}()
		c.Do(1)
	}()
	done := make(chan struct{})
	go func() { c.Do(2); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the committer is wedged after a panic")
	}
}

// A group takes units while their sizes sum within MaxSize, and always one:
// a unit larger than MaxSize goes alone.
func TestGroupsStayWithinMaxSize(t *testing.T) {
	var mu sync.Mutex
	var groups [][]int
	release := make(chan struct{})
	first := true
	c := &Committer[int]{Max: 100, MaxSize: 10, Size: func(u int) int { return u }, Commit: func(u []int) {
		if first {
			first = false
			<-release
		}
		mu.Lock()
		groups = append(groups, u)
		mu.Unlock()
	}}
	// Queued in this order: 4 4 4 (12 > 10: two groups), then 30 (alone), then 2 2.
	queueBehind(t, c, release, 1, 4, 4, 4, 30, 2, 2)
	want := "[[1] [4 4] [4] [30] [2 2]]"
	if got := fmt.Sprint(groups); got != want {
		t.Fatalf("groups %s, want %s", got, want)
	}
}

// More, called by Commit, takes the units that queued since the group was
// formed, within Max and MaxSize; they return with the group, and the lead
// passes to the first unit it left in line.
func TestMoreTakesTheUnitsThatQueuedDuringTheCommit(t *testing.T) {
	var mu sync.Mutex
	var groups [][]int
	release := make(chan struct{})
	var c *Committer[int]
	first := true
	c = &Committer[int]{Max: 4, MaxSize: 10, Size: func(u int) int { return u }, Commit: func(u []int) {
		if first {
			first = false
			<-release // as a store does while it waits for its writer
			u = append(u, c.More()...)
			u = append(u, c.More()...) // nothing more queued: nothing
		}
		mu.Lock()
		groups = append(groups, u)
		mu.Unlock()
	}}
	// 1 is in the group: More takes 2 and 3 (sizes 1+2+3 = 6; 6 more
	// would make 12 > MaxSize); TestMoreKeepsAGroupWithinMax checks Max.
	queueBehind(t, c, release, 1, 2, 3, 6, 1, 1)
	want := "[[1 2 3] [6 1 1]]"
	if got := fmt.Sprint(groups); got != want {
		t.Fatalf("groups %s, want %s", got, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leading || len(c.pending) != 0 || len(c.group) != 0 {
		t.Fatalf("after the groups: leading %v, %d pending, %d in a group", c.leading, len(c.pending), len(c.group))
	}
}

func TestMoreKeepsAGroupWithinMax(t *testing.T) {
	var groups [][]int
	release := make(chan struct{})
	var c *Committer[int]
	first := true
	c = &Committer[int]{Max: 3, Commit: func(u []int) {
		if first {
			first = false
			<-release
			u = append(u, c.More()...)
		}
		groups = append(groups, u)
	}}
	queueBehind(t, c, release, 0, 1, 2, 3, 4)
	if got, want := fmt.Sprint(groups), "[[0 1 2] [3 4]]"; got != want {
		t.Fatalf("groups %s, want %s", got, want)
	}
}

// More while no Commit runs takes nothing, though units wait (as in the
// hand-off between two leaders): a unit it took there would belong to no
// group and never be committed.
func TestMoreOutsideACommitTakesNothing(t *testing.T) {
	c := &Committer[int]{Max: 4, Commit: func([]int) {}}
	c.mu.Lock()
	c.leading = true // the lead is being handed on
	c.pending = append(c.pending, &waiter[int]{unit: 7, wake: make(chan struct{}, 1)})
	c.mu.Unlock()
	if got := c.More(); got != nil {
		t.Fatalf("More between two groups took %v", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) != 1 || len(c.group) != 0 {
		t.Fatalf("after More: %d pending, %d in a group; want the unit still in line", len(c.pending), len(c.group))
	}
}
