package queue

import (
	"fmt"
	"math"
	"regexp"

	"github.com/tasker-go/tasker/taskertype"
)

// The checks below are what every provider does with its params before it
// touches anything: the same rules and the same errors on every backend.

// namePattern: a queue name becomes part of table names on PostgreSQL, and
// the rule is the same on every backend, so that a namespace that works on
// one works on all.
var namePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,127}$`)

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("queue: %s: %s: %w", op, fmt.Sprintf(format, args...), taskertype.ErrInvalid)
}

// CheckName checks a queue name for operation op. Its errors wrap
// taskertype.ErrInvalid.
func CheckName(op, name string) error {
	if name == "" {
		return invalid(op, "the queue name is empty")
	}
	if !namePattern.MatchString(name) {
		return invalid(op, "queue name %q: want lower-case letters, digits and underscores, starting with a letter or an underscore, at most 128", name)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *SendParams) Validate() error {
	if p == nil {
		return invalid("send", "no params")
	}
	if err := CheckName("send", p.Queue); err != nil {
		return err
	}
	if p.Delay < 0 {
		return invalid("send", "queue %q: negative delay %v", p.Queue, p.Delay)
	}
	if p.Priority < math.MinInt32 || p.Priority > math.MaxInt32 {
		return invalid("send", "queue %q: priority %d is out of range %d..%d (a 32-bit integer)", p.Queue, p.Priority, math.MinInt32, math.MaxInt32)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *ClaimParams) Validate() error {
	if p == nil {
		return invalid("claim", "no params")
	}
	if err := CheckName("claim", p.Queue); err != nil {
		return err
	}
	if p.Max < 1 {
		return invalid("claim", "queue %q: max %d: want at least 1", p.Queue, p.Max)
	}
	if p.VisibilityTimeout < 0 {
		return invalid("claim", "queue %q: negative visibility timeout %v", p.Queue, p.VisibilityTimeout)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *AckParams) Validate() error {
	if p == nil {
		return invalid("ack", "no params")
	}
	return CheckName("ack", p.Queue)
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *NackParams) Validate() error {
	if p == nil {
		return invalid("nack", "no params")
	}
	if err := CheckName("nack", p.Queue); err != nil {
		return err
	}
	if p.Delay < 0 {
		return invalid("nack", "queue %q: message %d: negative delay %v", p.Queue, p.Receipt.ID, p.Delay)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *ExtendParams) Validate() error {
	if p == nil {
		return invalid("extend", "no params")
	}
	if err := CheckName("extend", p.Queue); err != nil {
		return err
	}
	if p.VisibilityTimeout < 0 {
		return invalid("extend", "queue %q: message %d: negative visibility timeout %v", p.Queue, p.Receipt.ID, p.VisibilityTimeout)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *ArchiveParams) Validate() error {
	if p == nil {
		return invalid("archive", "no params")
	}
	return CheckName("archive", p.Queue)
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *DeadLetterParams) Validate() error {
	if p == nil {
		return invalid("dead letter", "no params")
	}
	if err := CheckName("dead letter", p.Queue); err != nil {
		return err
	}
	if p.Reason == "" {
		return invalid("dead letter", "queue %q, message %d: the reason is empty: say why the message is set aside", p.Queue, p.Receipt.ID)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *DeadLetterListParams) Validate() error {
	if p == nil {
		return invalid("dead letter list", "no params")
	}
	if p.Queue != "" {
		if err := CheckName("dead letter list", p.Queue); err != nil {
			return err
		}
	}
	if p.Limit < 0 {
		return invalid("dead letter list", "negative limit %d", p.Limit)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *DeadLetterRequeueParams) Validate() error {
	if p == nil {
		return invalid("dead letter requeue", "no params")
	}
	if p.ID <= 0 {
		return invalid("dead letter requeue", "id %d: give the id of a dead letter (tasker dead-letters list)", p.ID)
	}
	return nil
}

// Validate checks p. Its errors wrap taskertype.ErrInvalid.
func (p *DeadLetterPurgeParams) Validate() error {
	if p == nil {
		return invalid("dead letter purge", "no params")
	}
	if p.Before.IsZero() {
		return invalid("dead letter purge", "Before is zero: give the time before which dead letters are deleted")
	}
	if p.Queue != "" {
		if err := CheckName("dead letter purge", p.Queue); err != nil {
			return err
		}
	}
	return nil
}

// DefaultDeadLetterLimit is the most dead letters DeadLetterList returns
// when its Limit is zero.
const DefaultDeadLetterLimit = 100
