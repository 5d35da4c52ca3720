// Package domainevents publishes the business events a template's steps
// declare (publishes_events) once the step's outcome is recorded: durable
// ones as a message on the namespace's queue {namespace}_domain_events,
// written in the transaction that records the outcome; fast ones on an
// in-process bus after that transaction committed; broadcast ones both.
// docs/events.md describes the format and the guarantees.
package domainevents

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// QueueSuffix ends the name of a namespace's durable domain event queue;
// templates refuse a namespace that ends with it.
const QueueSuffix = template.DomainEventQueueSuffix

// QueueName names the queue that carries a namespace's durable domain
// events: {namespace}_domain_events, as tasker-core names it.
func QueueName(namespace string) string { return namespace + QueueSuffix }

// Outcome is the final outcome of a step's attempt that events are
// published for.
type Outcome string

// Outcomes.
const (
	// OutcomeSuccess: the step completed.
	OutcomeSuccess Outcome = "success"
	// OutcomeRetryableFailure: the attempt failed and a retry is scheduled.
	OutcomeRetryableFailure Outcome = "retryable_failure"
	// OutcomePermanentFailure: the attempt failed and the step failed for good.
	OutcomePermanentFailure Outcome = "permanent_failure"
)

// OutcomeOf returns the outcome a step's state records, and false for a
// state that is no final outcome of an attempt.
func OutcomeOf(s taskertype.StepState) (Outcome, bool) {
	switch s {
	case taskertype.StepComplete:
		return OutcomeSuccess, true
	case taskertype.StepWaitingForRetry:
		return OutcomeRetryableFailure, true
	case taskertype.StepError:
		return OutcomePermanentFailure, true
	}
	return "", false
}

// Matches reports whether an event declared with condition c is published
// for outcome o. An empty condition is "success", the template default.
func (o Outcome) Matches(c template.EventCondition) bool {
	switch c {
	case template.EventAlways:
		return true
	case template.EventOnSuccess, "":
		return o == OutcomeSuccess
	case template.EventOnFailure:
		return o == OutcomeRetryableFailure || o == OutcomePermanentFailure
	case template.EventOnRetryableFailure:
		return o == OutcomeRetryableFailure
	case template.EventOnPermanentFailure:
		return o == OutcomePermanentFailure
	}
	return false
}

// Event is one published domain event. Its JSON form is the body of a
// durable event's queue message.
type Event struct {
	// ID identifies the event: the same for the fast and the durable copy
	// of a broadcast event, and for every delivery of a durable one, so a
	// consumer may use it to drop duplicates.
	ID uuid.UUID `json:"event_id"`
	// Name is the declared name, e.g. "payment.processed".
	Name string `json:"event_name"`
	// Payload is the step's result on success; on failure, the failure
	// (FailurePayload).
	Payload  json.RawMessage `json:"payload"`
	Metadata Metadata        `json:"metadata"`
}

// Metadata says where and when an event was fired.
type Metadata struct {
	TaskID      uuid.UUID `json:"task_uuid"`
	StepID      uuid.UUID `json:"step_uuid"`
	StepName    string    `json:"step_name"`
	Namespace   string    `json:"namespace"`
	TaskName    string    `json:"task_name"`
	TaskVersion string    `json:"task_version"`
	// CorrelationID ties the events of one task together: the task's id.
	CorrelationID uuid.UUID `json:"correlation_id"`
	// FiredAt is when the outcome was recorded.
	FiredAt time.Time `json:"fired_at"`
	// FiredBy is the declaration's publisher, or "generic".
	FiredBy string `json:"fired_by"`
	// Outcome is the step's outcome; Condition the declared condition it
	// matched.
	Outcome      Outcome                 `json:"outcome"`
	Condition    template.EventCondition `json:"condition"`
	DeliveryMode template.DeliveryMode   `json:"delivery_mode"`
	// Attempt is the step's attempt that had this outcome.
	Attempt int `json:"attempt"`
}

// FailurePayload is the payload of an event published for a failed attempt.
type FailurePayload struct {
	ErrorMessage string `json:"error_message"`
	// ErrorCode is the kind of failure: handler, panic, timeout, lost
	// (no_handler in records of earlier versions).
	ErrorCode string `json:"error_code"`
	Retryable bool   `json:"retryable"`
	Attempt   int    `json:"attempt"`
	StepName  string `json:"step_name"`
}

// payloadOf returns the payload of the events of step for outcome o.
func payloadOf(step *taskertype.Step, o Outcome) (json.RawMessage, error) {
	if o == OutcomeSuccess {
		if len(step.Result) == 0 {
			return json.RawMessage(`{}`), nil
		}
		return step.Result, nil
	}
	p := FailurePayload{Attempt: step.Attempts, StepName: step.Name, Retryable: o == OutcomeRetryableFailure}
	if f := step.Failure; f != nil {
		p.ErrorMessage, p.ErrorCode = f.Message, string(f.Kind)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode the failure payload of step %q: %w", step.Name, err)
	}
	return b, nil
}

// eventID derives an event's id from what makes it unique: the step, the
// attempt, the outcome and the event's name.
func eventID(step *taskertype.Step, o Outcome, name string) uuid.UUID {
	return uuid.NewSHA1(step.ID, fmt.Appendf(nil, "%d/%s/%s", step.Attempts, o, name))
}
