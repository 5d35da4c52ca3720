package events

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/benchutil"
)

const benchTasks = 4096 // tasks the events are about

var terminal = []string{"complete", "error", "cancelled"}

// benchEvents returns events about benchTasks tasks, half task and half step
// transitions, with a spread of target states.
func benchEvents(tasks []uuid.UUID) []Event {
	r := rand.New(rand.NewPCG(1, 2))
	states := []string{"pending", "enqueued", "in_progress", "complete", "error", "steps_in_process", "cancelled"}
	evs := make([]Event, 1<<14)
	for i := range evs {
		e := Event{Kind: KindStepTransition, TaskID: tasks[r.IntN(len(tasks))], From: "pending", To: states[r.IntN(len(states))], Event: "x"}
		if i%2 == 0 {
			e.Kind = KindTaskTransition
		} else {
			e.StepID = uuid.New()
			e.StepName = "step"
		}
		evs[i] = e
	}
	return evs
}

// BenchmarkBusPublish publishes to N per-task subscribers (as WaitTask
// makes: one task, task transitions into a terminal state, buffer 4; most
// events match none of them) plus one subscriber of everything. No buffer
// is drained: the subscriber of everything has a full buffer from the start,
// so each publish pays the full-buffer check and a drop count on it, and a
// per-task subscriber drops its matches after its first 4. Delivery into a
// channel costs the same in every design; a draining goroutine would only
// add its noise (on 2 CPUs it cannot keep up with 16 publishers anyway, and
// the faster a design, the more it drops: the designs would not do the
// same work).
func BenchmarkBusPublish(b *testing.B) {
	tasks := make([]uuid.UUID, benchTasks)
	for i := range tasks {
		tasks[i] = uuid.New()
	}
	evs := benchEvents(tasks)
	for _, c := range candidates {
		for _, n := range []int{0, 1, 64} {
			for _, g := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/subs=%d/g%d", c.name, n, g), func(b *testing.B) {
					bus := c.new()
					var subs []subAPI
					for i := range n {
						s, err := bus.Subscribe(Filter{TaskID: tasks[i*(benchTasks/n)], Kinds: []string{KindTaskTransition}, To: terminal}, 4)
						if err != nil {
							b.Fatal(err)
						}
						subs = append(subs, s)
					}
					all, _ := bus.Subscribe(Filter{}, 1024)
					for i := range 1024 {
						bus.Publish(evs[i])
					}
					b.ResetTimer()
					benchutil.RunG(b, g, func(id uint64, next func() bool) {
						i := int(id * 4099)
						for next() {
							bus.Publish(evs[i&(len(evs)-1)])
							i++
						}
					})
					b.StopTimer()
					if d := all.Dropped(); d < uint64(b.N) {
						b.Fatalf("the subscriber of everything dropped %d of %d", d, b.N)
					}
					all.Close()
					for _, s := range subs {
						s.Close()
					}
				})
			}
		}
	}
}

// BenchmarkBusSubscribe is the other side of the trade: one Subscribe and
// its Close with N per-task subscribers (and one of everything) already
// there, as each WaitTask does.
func BenchmarkBusSubscribe(b *testing.B) {
	for _, c := range candidates {
		for _, n := range []int{8, 64, 1024} {
			b.Run(fmt.Sprintf("%s/subs=%d", c.name, n), func(b *testing.B) {
				bus := c.new()
				for range n {
					bus.Subscribe(Filter{TaskID: uuid.New(), Kinds: []string{KindTaskTransition}, To: terminal}, 4)
				}
				bus.Subscribe(Filter{}, 1024)
				id := uuid.New()
				b.ResetTimer()
				for range b.N {
					s, err := bus.Subscribe(Filter{TaskID: id, Kinds: []string{KindTaskTransition}, To: terminal}, 4)
					if err != nil {
						b.Fatal(err)
					}
					s.Close()
				}
			})
		}
	}
}
