package events_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/benchutil"
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/stats"
)

// BenchmarkPublishObserved is Publish with one subscriber of everything
// (its buffer full: a drop count per event), without and with the engine's
// outcome counters as the bus's observer (stats.Outcomes: every event
// passes them; a quarter are outcomes they count).
func BenchmarkPublishObserved(b *testing.B) {
	evs := make([]events.Event, 1024)
	for i := range evs {
		e := events.Event{Kind: events.KindStepTransition, TaskID: uuid.New(), Namespace: fmt.Sprintf("ns%d", i%8),
			Handler: fmt.Sprintf("h%d", i%16), From: "in_progress", To: "enqueued_for_orchestration"}
		if i%4 == 0 {
			e.From, e.To = "enqueued_for_orchestration", "complete"
		}
		evs[i] = e
	}
	for _, g := range []int{1, 16} {
		for _, observed := range []bool{false, true} {
			b.Run(fmt.Sprintf("observed=%v/g%d", observed, g), func(b *testing.B) {
				bus := events.NewBus()
				if observed {
					bus.Observe(stats.NewOutcomes().Observe)
				}
				all, _ := bus.Subscribe(events.Filter{}, 1)
				defer all.Close()
				benchutil.RunG(b, g, func(id uint64, next func() bool) {
					i := int(id * 4099)
					for next() {
						bus.Publish(&evs[i&(len(evs)-1)])
						i++
					}
				})
			})
		}
	}
}
