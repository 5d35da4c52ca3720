package events

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestFilterMatch(t *testing.T) {
	task, other := uuid.New(), uuid.New()
	taskEv := Event{Kind: KindTaskTransition, TaskID: task, From: "steps_in_process", To: "complete"}
	stepEv := Event{Kind: KindStepTransition, TaskID: task, StepID: uuid.New(), From: "in_progress", To: "error"}
	otherEv := Event{Kind: KindTaskTransition, TaskID: other, From: "pending", To: "initializing"}
	cases := []struct {
		name string
		f    Filter
		want [3]bool // taskEv, stepEv, otherEv
	}{
		{"zero filter keeps all", Filter{}, [3]bool{true, true, true}},
		{"one kind", Filter{Kinds: []string{KindStepTransition}}, [3]bool{false, true, false}},
		{"two kinds", Filter{Kinds: []string{KindStepTransition, KindTaskTransition}}, [3]bool{true, true, true}},
		{"unknown kind", Filter{Kinds: []string{"workflow.started"}}, [3]bool{false, false, false}},
		{"one task", Filter{TaskID: task}, [3]bool{true, true, false}},
		{"a task without events", Filter{TaskID: uuid.New()}, [3]bool{false, false, false}},
		{"to one state", Filter{To: []string{"complete"}}, [3]bool{true, false, false}},
		{"to several states", Filter{To: []string{"complete", "error"}}, [3]bool{true, true, false}},
		{"from is not to", Filter{To: []string{"in_progress"}}, [3]bool{false, false, false}},
		{"all three, and-ed", Filter{TaskID: task, Kinds: []string{KindTaskTransition}, To: []string{"complete", "error"}}, [3]bool{true, false, false}},
		{"task and kind", Filter{TaskID: other, Kinds: []string{KindTaskTransition}}, [3]bool{false, false, true}},
		{"empty lists keep all", Filter{Kinds: []string{}, To: []string{}}, [3]bool{true, true, true}},
	}
	for _, c := range cases {
		for i, e := range []Event{taskEv, stepEv, otherEv} {
			if got := c.f.match(&e); got != c.want[i] {
				t.Errorf("%s: event %d matched %v, want %v", c.name, i, got, c.want[i])
			}
		}
	}
}

// TestSubscriptionGetsOnlyItsEvents goes through Bus.Publish for each
// design: what arrives on C is exactly the matching events, in order.
func TestSubscriptionGetsOnlyItsEvents(t *testing.T) {
	task := uuid.New()
	evs := []Event{
		{Kind: KindTaskTransition, TaskID: task, To: "initializing", Attempt: 0},
		{Kind: KindStepTransition, TaskID: task, To: "complete", Attempt: 1},
		{Kind: KindTaskTransition, TaskID: uuid.New(), To: "complete", Attempt: 2},
		{Kind: KindTaskTransition, TaskID: task, To: "complete", Attempt: 3},
		{Kind: KindTaskTransition, TaskID: task, To: "error", Attempt: 4},
	}
	filters := []struct {
		f    Filter
		want []int
	}{
		{Filter{}, []int{0, 1, 2, 3, 4}},
		{Filter{TaskID: task}, []int{0, 1, 3, 4}},
		{Filter{TaskID: task, Kinds: []string{KindTaskTransition}, To: []string{"complete", "error"}}, []int{3, 4}},
		{Filter{Kinds: []string{KindStepTransition}}, []int{1}},
		{Filter{To: []string{"complete"}}, []int{1, 2, 3}},
	}
	for _, c := range candidates {
		bus := c.new()
		var subs []subAPI
		for _, f := range filters {
			s, err := bus.Subscribe(f.f, 16)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		for _, e := range evs {
			bus.Publish(e)
		}
		for i, s := range subs {
			var got []int
			for len(s.C()) > 0 {
				got = append(got, (<-s.C()).Attempt)
			}
			if !equal(got, filters[i].want) {
				t.Errorf("%s: filter %+v received %v, want %v", c.name, filters[i].f, got, filters[i].want)
			}
			if s.Dropped() != 0 {
				t.Errorf("%s: %d dropped", c.name, s.Dropped())
			}
		}
		for _, s := range subs {
			s.Close()
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBufferBoundAndDrops(t *testing.T) {
	for _, c := range candidates {
		bus := c.new()
		s, err := bus.Subscribe(Filter{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			bus.Publish(Event{Kind: KindTaskTransition, Attempt: i})
		}
		if len(s.C()) != 2 || s.Dropped() != 3 {
			t.Errorf("%s: %d buffered, %d dropped; want 2 and 3", c.name, len(s.C()), s.Dropped())
		}
		if e := <-s.C(); e.Attempt != 0 {
			t.Errorf("%s: first event %d, want the oldest kept (0)", c.name, e.Attempt)
		}
		s.Close()
	}
}

func TestSubscribeRejectsABufferBelowOne(t *testing.T) {
	b := NewBus()
	for _, size := range []int{0, -1} {
		_, err := b.Subscribe(Filter{}, size)
		if !errors.Is(err, ErrBufferSize) || !strings.Contains(err.Error(), "got") {
			t.Errorf("size %d: %v", size, err)
		}
	}
	if b.Subscribers() != 0 {
		t.Fatal("a refused subscription was registered")
	}
	for _, c := range candidates {
		if _, err := c.new().Subscribe(Filter{}, 0); !errors.Is(err, ErrBufferSize) {
			t.Errorf("%s: size 0: %v", c.name, err)
		}
	}
}

func TestCloseStopsDeliveryAndReportsOnce(t *testing.T) {
	for _, c := range candidates {
		bus := c.new()
		a, _ := bus.Subscribe(Filter{}, 4)
		b, _ := bus.Subscribe(Filter{TaskID: uuid.New()}, 4)
		if n := bus.Subscribers(); n != 2 {
			t.Fatalf("%s: %d subscribers", c.name, n)
		}
		if !a.Close() || a.Close() {
			t.Errorf("%s: Close should return true, then false", c.name)
		}
		bus.Publish(Event{Kind: KindTaskTransition})
		if len(a.C()) != 0 || a.Dropped() != 0 {
			t.Errorf("%s: a closed subscription received an event", c.name)
		}
		if !b.Close() || b.Close() || bus.Subscribers() != 0 {
			t.Errorf("%s: closing the per-task subscription", c.name)
		}
	}
}
