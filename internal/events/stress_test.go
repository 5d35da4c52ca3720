package events

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The stress test runs 16 publishers against subscribers that stay for the
// whole run and subscribers that come and go, on every design of
// bus_candidates_test.go (the current Bus first), and checks:
//
//   - every delivered event matches its subscriber's filter, and none is
//     delivered twice;
//   - a subscriber present for the whole run: delivered + dropped equals
//     the published events that match it, exactly;
//   - a subscriber that came and went: every matching event published
//     wholly inside its lifetime (after Subscribe returned, before Close
//     was called) is delivered or dropped; no event published wholly
//     outside it (before Subscribe was called, after Close returned) is
//     delivered; delivered + dropped is between those two counts;
//   - Close returns true once, then false; Subscribers() is back to zero;
//   - no goroutine is left (goleak, main_test.go).
//
// "Wholly inside" is decided by a global sequence counter ticked before
// and after each Publish, Subscribe and Close.

const (
	stressPublishers = 16
	stressEvents     = 3000 // per publisher
	stressChurners   = 4
	minChurn         = 25  // subscriptions each churner makes at least
	maxChurn         = 250 // and at most
)

type pubRecord struct {
	ev         Event
	start, end uint64 // seq ticks around Publish
}

type stressSub struct {
	filter               Filter
	sub                  subAPI
	subStart, subEnd     uint64 // ticks around Subscribe
	closeStart, closeEnd uint64 // ticks around Close; 0 for a stable subscriber
	delivered            []int  // event ids, in arrival order
	stable               bool
	mu                   sync.Mutex // guards delivered for stable readers
}

var (
	stressTasks  = []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	stressStates = []string{"pending", "enqueued", "in_progress", "complete", "error"}
	stressKinds  = []string{KindTaskTransition, KindStepTransition}
)

func randomFilter(r *rand.Rand) Filter {
	var f Filter
	if r.IntN(2) == 0 {
		f.TaskID = stressTasks[r.IntN(len(stressTasks))]
	}
	if r.IntN(3) == 0 {
		f.Kinds = []string{stressKinds[r.IntN(2)]}
	}
	if r.IntN(3) == 0 {
		f.To = []string{stressStates[r.IntN(len(stressStates))], stressStates[r.IntN(len(stressStates))]}
	}
	return f
}

func TestStress(t *testing.T) {
	for _, c := range candidates {
		t.Run(c.name, func(t *testing.T) { stress(t, c.new()) })
	}
}

func stress(t *testing.T, bus busAPI) {
	var seq atomic.Uint64
	tick := func() uint64 { return seq.Add(1) }

	// Stable subscribers: one per filter shape, some with slow readers
	// and small buffers so that both delivery and drops happen.
	stableFilters := []Filter{
		{},
		{TaskID: stressTasks[0]},
		{Kinds: []string{KindTaskTransition}},
		{To: []string{"complete", "error"}},
		{TaskID: stressTasks[1], Kinds: []string{KindStepTransition}, To: []string{"in_progress"}},
		{TaskID: uuid.New()}, // a task nobody publishes about
	}
	var stable []*stressSub
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for i, f := range stableFilters {
		ss := &stressSub{filter: f, stable: true}
		ss.subStart = tick()
		s, err := bus.Subscribe(f, 1+i*4)
		if err != nil {
			t.Fatal(err)
		}
		ss.subEnd = tick()
		ss.sub = s
		stable = append(stable, ss)
		slow := i%2 == 0
		readers.Go(func() {
			n := 0
			for {
				select {
				case e := <-s.C():
					ss.mu.Lock()
					ss.delivered = append(ss.delivered, e.Attempt)
					ss.mu.Unlock()
					n++
					if slow && n%64 == 0 {
						time.Sleep(50 * time.Microsecond)
					}
				case <-stopReaders:
					return
				}
			}
		})
	}

	records := make([]pubRecord, stressPublishers*stressEvents)
	var publishers, churners sync.WaitGroup
	var published atomic.Int64
	startPub := make(chan struct{})
	for p := range stressPublishers {
		publishers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(p), 7))
			<-startPub
			for i := range stressEvents {
				id := p*stressEvents + i
				e := Event{
					Kind:    stressKinds[r.IntN(2)],
					TaskID:  stressTasks[r.IntN(len(stressTasks))],
					From:    "x",
					To:      stressStates[r.IntN(len(stressStates))],
					Attempt: id, // the event's identity
				}
				rec := &records[id]
				rec.ev = e
				rec.start = tick()
				bus.Publish(e)
				rec.end = tick()
				published.Add(1)
			}
		})
	}

	// Churning subscribers: subscribe, read a little, close (twice), until
	// the publishers are done. Their channels are drained after the
	// publishers stop: a publisher holding an old snapshot may still
	// deliver into a closed subscription's channel.
	var churned []*stressSub
	var churnMu sync.Mutex
	pubDone := make(chan struct{})
	for c := range stressChurners {
		churners.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 99))
			<-startPub
			for n := 0; n < maxChurn; n++ {
				if n >= minChurn {
					select {
					case <-pubDone:
						return
					default:
					}
				}
				ss := &stressSub{filter: randomFilter(r)}
				ss.subStart = tick()
				s, err := bus.Subscribe(ss.filter, 1+r.IntN(8))
				ss.subEnd = tick()
				if err != nil {
					t.Error(err)
					return
				}
				ss.sub = s
				for range r.IntN(40) {
					select {
					case e := <-s.C():
						ss.delivered = append(ss.delivered, e.Attempt)
					default:
						runtime.Gosched()
					}
				}
				ss.closeStart = tick()
				if !s.Close() {
					t.Error("the first Close returned false")
				}
				ss.closeEnd = tick()
				if s.Close() {
					t.Error("the second Close returned true")
				}
				churnMu.Lock()
				churned = append(churned, ss)
				churnMu.Unlock()
			}
		})
	}
	close(startPub)
	publishers.Wait()
	close(pubDone)
	churners.Wait()
	close(stopReaders)
	readers.Wait()
	for _, ss := range append(slices.Clone(stable), churned...) {
		drain(ss)
	}
	if got := published.Load(); got != int64(len(records)) {
		t.Fatalf("%d published, want %d", got, len(records))
	}

	byStart := make([]int, len(records)) // record indexes sorted by start tick
	maxSpan := uint64(0)
	for i := range records {
		byStart[i] = i
		maxSpan = max(maxSpan, records[i].end-records[i].start)
	}
	sort.Slice(byStart, func(a, b int) bool { return records[byStart[a]].start < records[byStart[b]].start })

	for i, ss := range stable {
		checkDelivered(t, fmt.Sprintf("stable %d %+v", i, ss.filter), ss, records)
		want := 0
		for j := range records {
			if ss.filter.match(&records[j].ev) {
				want++
			}
		}
		got := len(ss.delivered) + int(ss.sub.Dropped())
		if got != want {
			t.Errorf("stable %d %+v: delivered %d + dropped %d = %d, want the %d matching published",
				i, ss.filter, len(ss.delivered), ss.sub.Dropped(), got, want)
		}
		if !ss.sub.Close() || ss.sub.Close() {
			t.Errorf("stable %d: Close should return true, then false", i)
		}
	}
	drops, deliveries := 0, 0
	for i, ss := range churned {
		name := fmt.Sprintf("churned %d %+v", i, ss.filter)
		checkDelivered(t, name, ss, records)
		// Candidates: records with start <= closeEnd and end >= subStart.
		lo := sort.Search(len(byStart), func(k int) bool {
			return records[byStart[k]].start+maxSpan >= ss.subStart
		})
		must, maybe := map[int]bool{}, map[int]bool{}
		for k := lo; k < len(byStart) && records[byStart[k]].start <= ss.closeEnd; k++ {
			rec := &records[byStart[k]]
			if rec.end < ss.subStart || !ss.filter.match(&rec.ev) {
				continue
			}
			if rec.start > ss.subEnd && rec.end < ss.closeStart {
				must[rec.ev.Attempt] = true
			} else {
				maybe[rec.ev.Attempt] = true
			}
		}
		missing := 0
		for id := range must {
			if !slices.Contains(ss.delivered, id) {
				missing++
			}
		}
		for _, id := range ss.delivered {
			if !must[id] && !maybe[id] {
				t.Errorf("%s: event %d was delivered though published wholly outside the subscription", name, id)
			}
		}
		dropped := int(ss.sub.Dropped())
		if missing > dropped {
			t.Errorf("%s: %d events published during the subscription were neither delivered nor dropped (dropped %d)", name, missing-dropped, dropped)
		}
		if total := len(ss.delivered) + dropped; total > len(must)+len(maybe) {
			t.Errorf("%s: delivered %d + dropped %d > %d events that may match", name, len(ss.delivered), dropped, len(must)+len(maybe))
		}
		drops += dropped
		deliveries += len(ss.delivered)
	}
	if n := bus.Subscribers(); n != 0 {
		t.Errorf("%d subscribers left", n)
	}
	t.Logf("%d events, %d churned subscriptions (%d delivered, %d dropped)", len(records), len(churned), deliveries, drops)
}

// drain takes what is left in a subscription's buffer once nobody publishes.
func drain(ss *stressSub) {
	for {
		select {
		case e := <-ss.sub.C():
			ss.delivered = append(ss.delivered, e.Attempt)
		default:
			return
		}
	}
}

func checkDelivered(t *testing.T, name string, ss *stressSub, records []pubRecord) {
	t.Helper()
	seen := make(map[int]bool, len(ss.delivered))
	for _, id := range ss.delivered {
		if seen[id] {
			t.Errorf("%s: event %d delivered twice", name, id)
		}
		seen[id] = true
		if !ss.filter.match(&records[id].ev) {
			t.Errorf("%s: event %+v delivered but does not match", name, records[id].ev)
		}
	}
}
