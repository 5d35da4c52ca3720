package domainevents

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// maxSchemas bounds the compiled payload schemas kept; beyond it a schema is
// compiled for each use.
const maxSchemas = 1024

// Stats counts the domain events of one process.
type Stats struct {
	// PublishedDurable counts the events committed to a durable queue;
	// PublishedFast those handed to the in-process bus (whether or not a
	// subscriber took them). A broadcast event counts in both.
	PublishedDurable, PublishedFast uint64
	// Invalid counts the events not published because their payload
	// failed the declared schema (each counted once, whatever its mode).
	Invalid uint64
	// Dropped counts the fast events a full subscription buffer refused
	// (once per subscription).
	Dropped uint64
	// Subscribers is the live subscriptions to fast events.
	Subscribers int
	// Consumed counts the durable events a consumer of this process
	// handled and acknowledged; Released those its handler failed and
	// that were released to be delivered again; DeadLettered those set
	// aside (undecodable, or failed too often).
	Consumed, Released, DeadLettered uint64
}

// Publisher publishes the declared events of a step's recorded outcome.
type Publisher struct {
	bus       *Bus
	log       *slog.Logger
	templates func(ctx context.Context, namespace, name, version string) (*template.Template, error)

	schemas  sync.Map // string(schema JSON) → *jsonschema.Schema
	nSchemas atomic.Int64

	durable, fast, invalid           atomic.Uint64
	consumed, released, deadLettered atomic.Uint64
}

// NewPublisher returns a publisher that reads templates through templates
// and hands fast events to bus.
func NewPublisher(bus *Bus, log *slog.Logger, templates func(ctx context.Context, namespace, name, version string) (*template.Template, error)) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{bus: bus, log: log, templates: templates}
}

// Bus returns the publisher's bus.
func (p *Publisher) Bus() *Bus { return p.bus }

// Stats returns the publisher's counts.
func (p *Publisher) Stats() Stats {
	return Stats{
		PublishedDurable: p.durable.Load(), PublishedFast: p.fast.Load(), Invalid: p.invalid.Load(),
		Dropped: p.bus.Dropped(), Subscribers: p.bus.Subscribers(),
		Consumed: p.consumed.Load(), Released: p.released.Load(), DeadLettered: p.deadLettered.Load(),
	}
}

// StepOutcome is called in the transaction that recorded step's outcome,
// after it was recorded: each declared event whose condition matches the
// outcome is published, durable ones by a message sent in tx, fast ones on
// the bus once tx committed (rec.AfterCommit). A step in a state that is no
// final outcome, or of a template without events, publishes nothing. Its
// only errors are the store's, sending a durable event: the transaction
// then fails with the outcome, which is processed again.
func (p *Publisher) StepOutcome(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task, step *taskertype.Step) error {
	outcome, ok := OutcomeOf(step.State)
	if !ok || p.templates == nil {
		return nil
	}
	tpl, err := p.templates(ctx, task.Namespace, task.Name, task.Version)
	if err != nil {
		// Publishing never fails a step: the outcome is recorded without
		// its events, and the reason logged.
		p.log.Warn("domain events: cannot read the template; the step's events are not published",
			"task_id", task.ID, "step", step.Name, "error", err)
		return nil
	}
	i := tpl.StepIndex(step.Name)
	if i < 0 || len(tpl.Steps[i].PublishesEvents) == 0 {
		return nil
	}
	var payload json.RawMessage
	var fast []*Event
	var invalid []string
	var durable uint64
	for j := range tpl.Steps[i].PublishesEvents {
		d := &tpl.Steps[i].PublishesEvents[j]
		if !outcome.Matches(d.Condition) {
			continue
		}
		if payload == nil {
			if payload, err = payloadOf(step, outcome); err != nil {
				return err
			}
		}
		if reason := p.validate(d, payload); reason != "" {
			invalid = append(invalid, fmt.Sprintf("%s: %s", d.Name, reason))
			continue
		}
		e := &Event{ID: eventID(step, outcome, d.Name), Name: d.Name, Payload: payload, Metadata: Metadata{
			TaskID: task.ID, StepID: step.ID, StepName: step.Name, Namespace: task.Namespace,
			TaskName: task.Name, TaskVersion: task.Version, CorrelationID: task.ID, FiredAt: step.UpdatedAt,
			FiredBy: cmp.Or(d.Publisher, "generic"), Outcome: outcome, Condition: cmp.Or(d.Condition, template.EventOnSuccess),
			DeliveryMode: cmp.Or(d.DeliveryMode, template.DeliveryDurable), Attempt: step.Attempts,
		}}
		mode := e.Metadata.DeliveryMode
		if mode == template.DeliveryDurable || mode == template.DeliveryBroadcast {
			body, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode domain event %s of step %q: %w", d.Name, step.Name, err)
			}
			if err := tx.MessageSend(ctx, &queue.SendParams{Queue: QueueName(task.Namespace), Body: body}); err != nil {
				return fmt.Errorf("send domain event %s of step %q to %s: %w", d.Name, step.Name, QueueName(task.Namespace), err)
			}
			durable++
		}
		if mode == template.DeliveryFast || mode == template.DeliveryBroadcast {
			fast = append(fast, e)
		}
	}
	if durable == 0 && len(fast) == 0 && len(invalid) == 0 {
		return nil
	}
	rec.AfterCommit(func() {
		p.durable.Add(durable)
		for _, e := range fast {
			p.bus.Publish(e)
			p.fast.Add(1)
		}
		if len(invalid) > 0 {
			p.invalid.Add(uint64(len(invalid)))
			p.log.Warn("domain events: payload fails the declared schema; the event is not published",
				"task_id", task.ID, "step", step.Name, "outcome", outcome, "events", invalid)
		}
	})
	return nil
}

// validate checks payload against d's schema and returns why it fails, or
// "" when it passes or d declares none.
func (p *Publisher) validate(d *template.EventDeclaration, payload json.RawMessage) string {
	if len(d.Schema) == 0 || string(d.Schema) == "null" {
		return ""
	}
	sch, err := p.schema(d.Schema)
	if err != nil {
		return fmt.Sprintf("the schema does not compile: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Sprintf("the payload is no JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		return err.Error()
	}
	return ""
}

func (p *Publisher) schema(js json.RawMessage) (*jsonschema.Schema, error) {
	if s, ok := p.schemas.Load(string(js)); ok {
		return s.(*jsonschema.Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("event.json", doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile("event.json")
	if err != nil {
		return nil, err
	}
	// Count only real inserts: two goroutines compiling the same schema
	// at once store it once. A slot taken past the bound is given back.
	if p.nSchemas.Add(1) > maxSchemas {
		p.nSchemas.Add(-1)
		return sch, nil
	}
	if prev, loaded := p.schemas.LoadOrStore(string(js), sch); loaded {
		p.nSchemas.Add(-1)
		return prev.(*jsonschema.Schema), nil
	}
	return sch, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
