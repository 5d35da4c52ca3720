package domainevents

import (
	"errors"
	"path"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

func TestGlobSubscriptions(t *testing.T) {
	b := NewBus()
	order, err := b.Subscribe("order.*", 8)
	if err != nil {
		t.Fatal(err)
	}
	all, err := b.Subscribe("*", 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"order.created", "payment.processed", "order.shipped", "orders.x"} {
		b.Publish(&Event{Name: n})
	}
	if got := len(order.C()); got != 2 {
		t.Errorf("order.* received %d events, want 2 (order.created, order.shipped)", got)
	}
	if got := len(all.C()); got != 4 {
		t.Errorf("* received %d events, want 4", got)
	}
	if !order.Close() || order.Close() {
		t.Error("Close: want true once, then false")
	}
	if b.Subscribers() != 1 {
		t.Errorf("subscribers %d after a close, want 1", b.Subscribers())
	}
}

func TestAFullBufferDropsAndCountsAndNeverBlocks(t *testing.T) {
	b := NewBus()
	s, err := b.Subscribe("*", 2)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b.Publish(&Event{Name: "a.b"})
	}
	if s.Dropped() != 3 || b.Dropped() != 3 {
		t.Errorf("dropped %d on the subscription and %d on the bus, want 3", s.Dropped(), b.Dropped())
	}
	s.Close()
	if b.Dropped() != 3 {
		t.Error("a closed subscription's drops were forgotten")
	}
}

func TestBadSubscriptionsAreRefusedWithAHint(t *testing.T) {
	b := NewBus()
	for _, p := range []string{"", "order.[", `order\`} {
		if _, err := b.Subscribe(p, 1); !errors.Is(err, ErrPattern) {
			t.Errorf("pattern %q: err %v, want ErrPattern", p, err)
		}
	}
	if _, err := b.Subscribe("*", 0); !errors.Is(err, ErrBufferSize) {
		t.Errorf("buffer 0: err %v", err)
	}
}

func TestConditionsMatchOutcomes(t *testing.T) {
	want := map[template.EventCondition][]Outcome{
		template.EventOnSuccess:          {OutcomeSuccess},
		"":                               {OutcomeSuccess},
		template.EventOnFailure:          {OutcomeRetryableFailure, OutcomePermanentFailure},
		template.EventOnRetryableFailure: {OutcomeRetryableFailure},
		template.EventOnPermanentFailure: {OutcomePermanentFailure},
		template.EventAlways:             {OutcomeSuccess, OutcomeRetryableFailure, OutcomePermanentFailure},
	}
	for c, outs := range want {
		for _, o := range []Outcome{OutcomeSuccess, OutcomeRetryableFailure, OutcomePermanentFailure} {
			exp := false
			for _, w := range outs {
				exp = exp || w == o
			}
			if o.Matches(c) != exp {
				t.Errorf("condition %q, outcome %s: match %v, want %v", c, o, !exp, exp)
			}
		}
	}
	for s, o := range map[taskertype.StepState]Outcome{
		taskertype.StepComplete: OutcomeSuccess, taskertype.StepWaitingForRetry: OutcomeRetryableFailure, taskertype.StepError: OutcomePermanentFailure,
	} {
		if got, ok := OutcomeOf(s); !ok || got != o {
			t.Errorf("state %s: outcome %s %v, want %s", s, got, ok, o)
		}
	}
	if _, ok := OutcomeOf(taskertype.StepInProgress); ok {
		t.Error("a step in progress has an outcome")
	}
}

// FuzzCheckPattern: a pattern that passes the check never fails to match.
func FuzzCheckPattern(f *testing.F) {
	for _, s := range []string{"*", "order.*", "a.[b-c]", "[", `\`, "?x"} {
		f.Add(s, "order.created")
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if CheckPattern(pattern) != nil {
			return
		}
		b := NewBus()
		s, err := b.Subscribe(pattern, 1)
		if err != nil {
			t.Fatalf("checked pattern %q refused: %v", pattern, err)
		}
		if _, err := path.Match(pattern, name); err != nil {
			t.Fatalf("checked pattern %q fails to match %q: %v", pattern, name, err)
		}
		b.Publish(&Event{Name: name})
		_ = s.Close()
	})
}
