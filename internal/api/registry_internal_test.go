package api

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
)

// The events of a worker that deregisters or expires are finished in the
// registry before its id is free again: a worker another principal
// registers under that id at once cannot complete them.
func TestAFreedWorkerIDDoesNotInheritItsEvents(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	newReg := func() *registry {
		return newRegistry(registryConfig{maxWorkers: 8, maxPoll: time.Second, ttl: time.Minute, remember: 16},
			tasker.PullMetrics{Capacity: 4}, time.Minute, func(uuid.UUID) bool { return true })
	}
	for _, how := range []string{"deregistered", "expired"} {
		t.Run(how, func(t *testing.T) {
			r := newReg()
			if _, err := r.register("w", "alice", []string{"ns"}, []string{"h"}, 1, now); err != nil {
				t.Fatal(err)
			}
			ev := uuid.New()
			r.hold(ev, "w", false)
			var released []uuid.UUID
			r.release = func(_ string, ids []uuid.UUID) {
				// The id is free here: another principal takes it before
				// the events are failed.
				if _, err := r.register("w", "mallory", []string{"ns"}, []string{"h"}, 1, now.Add(2*time.Minute)); err != nil {
					t.Error(err)
				}
				released = ids
			}
			if how == "deregistered" {
				ids, err := r.deregister("w", "alice")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.register("w", "mallory", []string{"ns"}, []string{"h"}, 1, now); err != nil {
					t.Fatal(err)
				}
				released = ids
			} else {
				r.sweep(now.Add(2*time.Minute), true)
			}
			if len(released) != 1 || released[0] != ev {
				t.Fatalf("released %v, want [%s]", released, ev)
			}
			if h, st := r.lookup(ev); st != eventFinished {
				t.Fatalf("event after its worker %s: state %v held by %q, want finished (else the new worker %q may complete it)", how, st, h.worker, "w")
			}
		})
	}
}
