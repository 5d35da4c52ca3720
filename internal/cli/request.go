package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
)

// requestFlags are the task request's fields of 'tasker task create'
// (docs/identity.md).
type requestFlags struct {
	priority                        int
	correlation, parent             string
	initiator, sourceSystem, reason string
	tags                            []string
	idempotencyKey                  string
}

func (r *requestFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&r.priority, "priority", 0, "the task's priority: higher is claimed first; waiting ages a task (Config.PriorityAging, default 10s a point)")
	f.StringVar(&r.correlation, "correlation-id", "", "a UUID tying the task to a request across systems (default: a new one)")
	f.StringVar(&r.parent, "parent-correlation-id", "", "the correlation id of the workflow that started this one")
	f.StringVar(&r.initiator, "initiator", "", "who asked for the task")
	f.StringVar(&r.sourceSystem, "source-system", "", "the system the request came from")
	f.StringVar(&r.reason, "reason", "", "why the task was asked for")
	f.StringArrayVar(&r.tags, "tag", nil, "a tag of the task (repeat for several)")
	f.StringVar(&r.idempotencyKey, "idempotency-key", "", "the task's identity: a second create with the same key fails and names the first task; required by templates with identity_strategy: caller_provided")
}

func (r *requestFlags) apply(p *tasker.CreateTaskParams) error {
	parse := func(flag, v string) (uuid.UUID, error) {
		if v == "" {
			return uuid.Nil, nil
		}
		id, err := uuid.Parse(v)
		if err != nil {
			return uuid.Nil, usageError{fmt.Errorf("--%s %q is not a UUID: give one such as 0193a5b2-0000-7000-8000-000000000000", flag, v)}
		}
		return id, nil
	}
	var err error
	if p.CorrelationID, err = parse("correlation-id", r.correlation); err != nil {
		return err
	}
	if p.ParentCorrelationID, err = parse("parent-correlation-id", r.parent); err != nil {
		return err
	}
	p.Priority, p.Initiator, p.SourceSystem, p.Reason = r.priority, r.initiator, r.sourceSystem, r.reason
	p.Tags, p.IdempotencyKey = r.tags, r.idempotencyKey
	return nil
}

// requestJSON is the --output json form of a task's request.
type requestJSON struct {
	Priority            int       `json:"priority"`
	CorrelationID       uuid.UUID `json:"correlation_id"`
	ParentCorrelationID string    `json:"parent_correlation_id,omitempty"`
	Initiator           string    `json:"initiator,omitempty"`
	SourceSystem        string    `json:"source_system,omitempty"`
	Reason              string    `json:"reason,omitempty"`
	Tags                []string  `json:"tags,omitempty"`
	IdempotencyKey      string    `json:"idempotency_key,omitempty"`
	IdentityHash        string    `json:"identity_hash,omitempty"`
}

func toRequestJSON(r *tasker.TaskRequest) *requestJSON {
	if r.CorrelationID == uuid.Nil && r.IdentityHash == "" {
		return nil // a task created before the request was stored
	}
	j := &requestJSON{Priority: r.Priority, CorrelationID: r.CorrelationID, Initiator: r.Initiator, SourceSystem: r.SourceSystem,
		Reason: r.Reason, Tags: r.Tags, IdempotencyKey: r.IdempotencyKey, IdentityHash: r.IdentityHash}
	if r.ParentCorrelationID != uuid.Nil {
		j.ParentCorrelationID = r.ParentCorrelationID.String()
	}
	return j
}

// printRequest prints the task request's fields, for 'tasker task show'.
func printRequest(g *globals, t *tasker.Task) {
	r := &t.Request
	id := func(u uuid.UUID) string {
		if u == uuid.Nil {
			return "-"
		}
		return u.String()
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nREQUEST")
	fmt.Fprintf(tw, "priority\t%d\n", r.Priority)
	fmt.Fprintf(tw, "correlation_id\t%s\n", id(r.CorrelationID))
	fmt.Fprintf(tw, "parent_correlation_id\t%s\n", id(r.ParentCorrelationID))
	fmt.Fprintf(tw, "initiator\t%s\n", orDash(r.Initiator))
	fmt.Fprintf(tw, "source_system\t%s\n", orDash(r.SourceSystem))
	fmt.Fprintf(tw, "reason\t%s\n", orDash(clip(firstLine(r.Reason), 200)))
	fmt.Fprintf(tw, "tags\t%s\n", orDash(strings.Join(r.Tags, ", ")))
	fmt.Fprintf(tw, "idempotency_key\t%s\n", orDash(r.IdempotencyKey))
	fmt.Fprintf(tw, "identity_hash\t%s\n", orDash(r.IdentityHash))
	tw.Flush()
}
