package group

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestALoneUnitCommitsAtOnceInTheCallersGoroutine(t *testing.T) {
	var groups [][]int
	c := &Committer[int]{Max: 8, Commit: func(u []int) { groups = append(groups, u) }}
	c.Do(1)
	c.Do(2)
	if len(groups) != 2 || groups[0][0] != 1 || groups[1][0] != 2 {
		t.Fatalf("groups %v, want [[1] [2]]", groups)
	}
}

func TestUnitsArrivingDuringACommitShareTheNextOne(t *testing.T) {
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
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 10 {
			break
		}
		time.Sleep(time.Millisecond)
	}
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
