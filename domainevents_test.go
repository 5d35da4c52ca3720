package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/template"
)

// eventsTemplate declares events of each condition and mode on a step that
// fails once and then succeeds (flaky) and on one that fails for good
// (doomed).
const eventsTemplate = `name: events
namespace: test
version: 1.0.0
steps:
  - name: flaky
    handler: demo.flaky
    retry: {max_attempts: 3, backoff: none, base: 10ms}
    publishes_events:
      - {name: flaky.retrying, condition: retryable_failure, delivery_mode: fast}
      - {name: flaky.failed, condition: failure, delivery_mode: durable}
      - {name: flaky.done, condition: success, delivery_mode: broadcast, schema: {type: object, required: [attempts]}}
      - {name: flaky.any, condition: always, delivery_mode: fast}
      - {name: flaky.bad, condition: success, delivery_mode: broadcast, schema: {type: object, required: [missing]}}
      - {name: flaky.never, condition: permanent_failure, delivery_mode: broadcast}
  - name: doomed
    handler: demo.fail
    depends_on: [flaky]
    publishes_events:
      - {name: doomed.gone, condition: permanent_failure, delivery_mode: broadcast}
      - {name: doomed.retrying, condition: retryable_failure, delivery_mode: fast}
      - {name: doomed.ok, delivery_mode: durable}
`

// openEvents opens an engine with the demo handlers and the events
// template on cfg's database, without starting it.
func openEvents(t *testing.T, cfg tasker.Config) *tasker.Engine {
	t.Helper()
	tpl, err := template.Parse("events.yaml", []byte(eventsTemplate))
	must(t, err)
	cfg.Templates = []*template.Template{tpl}
	cfg.IdlePoll = 50 * time.Millisecond
	eng, err := tasker.Open(t.Context(), cfg)
	must(t, err)
	for name, h := range demo.Handlers() {
		must(t, eng.RegisterHandler(name, h))
	}
	return eng
}

func drain(s *tasker.DomainEventSubscription) []tasker.DomainEvent {
	var out []tasker.DomainEvent
	for {
		select {
		case e := <-s.C():
			out = append(out, e)
		default:
			return out
		}
	}
}

func names(evs []tasker.DomainEvent) []string {
	var n []string
	for _, e := range evs {
		n = append(n, e.Name)
	}
	return n
}

// consumeN consumes the durable events of namespace test until n arrived
// (or the deadline), handing each to h first.
func consumeN(t *testing.T, eng *tasker.Engine, n int, h func(e *tasker.DomainEvent) error) []tasker.DomainEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []tasker.DomainEvent
	err := eng.ConsumeDomainEvents(ctx, "test", func(_ context.Context, e *tasker.DomainEvent) error {
		if h != nil {
			if err := h(e); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, *e)
		if len(got) == n {
			cancel()
		}
		return nil
	}, &tasker.ConsumeDomainEventsOptions{VisibilityTimeout: 5 * time.Second})
	must(t, err)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("consumed %d durable events %v, want %d", len(got), names(got), n)
	}
	return got
}

// TestDomainEvents runs a task whose steps publish events of each condition
// and mode: fast ones reach the glob subscriptions after their outcome
// committed, durable ones survive the engine that published them and are
// consumed by another, a payload failing its schema is counted and not
// published, and a full subscription buffer drops and counts.
func TestDomainEvents(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		cfg := database(t, backend)
		eng := openEvents(t, cfg)
		all, err := eng.SubscribeDomainEvents("*", 64)
		must(t, err)
		flaky, err := eng.SubscribeDomainEvents("flaky.*", 64)
		must(t, err)
		tiny, err := eng.SubscribeDomainEvents("*", 1)
		must(t, err)
		if _, err := eng.SubscribeDomainEvents("order.[", 1); err == nil {
			t.Error("a malformed glob was accepted")
		}
		must(t, eng.Start(t.Context()))
		task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "events", Context: map[string]any{"fail_times": 1}})
		must(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err = eng.WaitTask(ctx, task.ID)
		cancel()
		must(t, err)

		t.Run("fast events reach the subscriptions whose glob matches, in the order of the outcomes", func(t *testing.T) {
			want := []string{"flaky.retrying", "flaky.any", "flaky.done", "flaky.any", "doomed.gone"}
			got := drain(all)
			if !slices.Equal(names(got), want) {
				t.Fatalf("'*' got %v, want %v", names(got), want)
			}
			if g := names(drain(flaky)); !slices.Equal(g, want[:4]) {
				t.Errorf("'flaky.*' got %v, want %v", g, want[:4])
			}
			retrying, done, gone := got[0], got[2], got[4]
			var fp tasker.DomainEventFailure
			must(t, json.Unmarshal(retrying.Payload, &fp))
			if fp.ErrorCode != "handler" || !fp.Retryable || fp.Attempt != 1 || fp.ErrorMessage == "" {
				t.Errorf("retryable failure payload %+v", fp)
			}
			if string(done.Payload) != `{"attempts":2}` {
				t.Errorf("success payload %s, want the step's result", done.Payload)
			}
			m := done.Metadata
			if m.TaskID != task.ID || m.StepName != "flaky" || m.Namespace != "test" || m.Outcome != tasker.DomainEventSuccess ||
				m.Attempt != 2 || m.FiredAt.IsZero() || m.FiredBy != "generic" || m.DeliveryMode != "broadcast" {
				t.Errorf("metadata %+v", m)
			}
			must(t, json.Unmarshal(gone.Payload, &fp))
			if gone.Metadata.Outcome != tasker.DomainEventPermanentFailure || fp.Retryable {
				t.Errorf("permanent failure: outcome %s payload %+v", gone.Metadata.Outcome, fp)
			}
		})
		t.Run("a full buffer drops and counts", func(t *testing.T) {
			if got := len(drain(tiny)); got != 1 {
				t.Errorf("the 1-event buffer held %d", got)
			}
			if tiny.Dropped() != 4 {
				t.Errorf("dropped %d, want 4", tiny.Dropped())
			}
		})
		t.Run("counters", func(t *testing.T) {
			s := eng.Stats().DomainEvents
			if s.PublishedFast != 5 || s.PublishedDurable != 3 || s.Invalid != 1 || s.Dropped != 4 || s.Subscribers != 3 {
				t.Errorf("stats %+v, want 5 fast, 3 durable, 1 invalid, 4 dropped, 3 subscribers", s)
			}
		})
		for _, s := range []*tasker.DomainEventSubscription{all, flaky, tiny} {
			if !s.Close() {
				t.Error("close reported the subscription closed already")
			}
		}
		// The publishing engine stops without consuming: the durable
		// events were committed with the outcomes, and another engine on
		// the database reads them.
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		must(t, eng.Stop(stop))
		cancel()

		t.Run("durable events outlive their engine and reach a consumer of another, at least once", func(t *testing.T) {
			next := openEvents(t, cfg)
			stopAtCleanup(t, next)
			failed := map[string]bool{}
			got := consumeN(t, next, 3, func(e *tasker.DomainEvent) error {
				if e.Name == "flaky.done" && !failed[e.Name] {
					failed[e.Name] = true
					return errors.New("not now")
				}
				return nil
			})
			n := names(got)
			slices.Sort(n)
			if want := []string{"doomed.gone", "flaky.done", "flaky.failed"}; !slices.Equal(n, want) {
				t.Fatalf("consumed %v, want %v", n, want)
			}
			for _, e := range got {
				if e.Name == "flaky.done" && string(e.Payload) != `{"attempts":2}` {
					t.Errorf("durable payload %s", e.Payload)
				}
				if e.Metadata.TaskID != task.ID {
					t.Errorf("durable event of task %s, want %s", e.Metadata.TaskID, task.ID)
				}
			}
			if s := next.Stats().DomainEvents; s.Consumed != 3 || s.Released != 1 {
				t.Errorf("consumer stats %+v, want 3 consumed and 1 released", s)
			}
			// Acknowledged events are gone: a second consumer finds none.
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			must(t, next.ConsumeDomainEvents(ctx, "test", func(_ context.Context, e *tasker.DomainEvent) error {
				t.Errorf("event %s delivered after it was acknowledged", e.Name)
				return nil
			}, nil))
		})
	})
}

func TestConsumeDomainEventsRefusesBadInput(t *testing.T) {
	eng := openEvents(t, database(t, "sqlite"))
	stopAtCleanup(t, eng)
	h := func(context.Context, *tasker.DomainEvent) error { return nil }
	for name, call := range map[string]func() error{
		"empty namespace": func() error { return eng.ConsumeDomainEvents(t.Context(), "", h, nil) },
		"bad namespace":   func() error { return eng.ConsumeDomainEvents(t.Context(), "No-Such", h, nil) },
		"no handler":      func() error { return eng.ConsumeDomainEvents(t.Context(), "test", nil, nil) },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
