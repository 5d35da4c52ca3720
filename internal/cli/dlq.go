package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/client"
	"github.com/tasker-go/tasker/client/oapi"
	"github.com/tasker-go/tasker/taskertype"
)

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dlq", Short: "Inspect and record the investigations of stuck or failed tasks (the DLQ of tasks, not dead-letters)",
		Long: `The DLQ of tasks holds investigations: tasks the staleness detector found
stuck, tasks that ran out of retries, tasks sent there by an operator. It
never requeues anything: fix a task with 'tasker task reset|resolve-step|...'
and record what was done with 'tasker dlq update'. Messages the orchestration
queues set aside are another thing: 'tasker dead-letters'.`}
	cmd.AddCommand(newDLQListCmd(g), newDLQShowCmd(g), newDLQUpdateCmd(g), newDLQStatsCmd(g), newDLQQueueCmd(g), newDLQStalenessCmd(g))
	return cmd
}

func (g *globals) openForDLQ(cmd *cobra.Command, db, url string) (*tasker.Engine, error) {
	return tasker.Open(cmd.Context(), tasker.Config{DatabasePath: db, DatabaseURL: url, Logger: g.logger(),
		DisableOrchestration: true, DisableWorkers: true})
}

func newDLQListCmd(g *globals) *cobra.Command {
	var db, url, status, reason, task string
	var limit, offset int
	var r remote
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List DLQ entries, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.on() {
				return g.remoteDLQList(cmd, &r, status, reason, task, limit, offset)
			}
			p := tasker.DLQListParams{Status: taskertype.DLQResolutionStatus(status), Reason: taskertype.DLQReason(reason),
				Limit: limit, Offset: offset}
			if p.Status != "" && !p.Status.Valid() {
				return usageError{fmt.Errorf("--status %q: give one of %v", status, taskertype.DLQResolutionStatuses)}
			}
			if p.Reason != "" && !p.Reason.Valid() {
				return usageError{fmt.Errorf("--reason %q: give one of %v", reason, taskertype.DLQReasons)}
			}
			if limit < 1 || limit > 1000 || offset < 0 {
				return usageError{fmt.Errorf("--limit %d / --offset %d: give 1..1000 entries from offset 0 or more", limit, offset)}
			}
			if task != "" {
				id, err := uuid.Parse(task)
				if err != nil {
					return usageError{fmt.Errorf("--task %q is not a task ID: give the UUID tasker task list shows", task)}
				}
				p.TaskID = id
			}
			eng, err := g.openForDLQ(cmd, db, url)
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			es, err := eng.ListDLQ(cmd.Context(), p)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENTRY\tTASK\tREASON\tSTATUS\tORIGINAL STATE\tAT\tRESOLVED BY")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.TaskID, e.Reason, e.ResolutionStatus, e.OriginalState,
					e.At.Local().Format("2006-01-02 15:04:05"), e.ResolvedBy)
			}
			return tw.Flush()
		},
	}
	backendFlagsDL(cmd, &db, &url)
	cmd.Flags().StringVar(&status, "status", "", "only entries in this status (pending, manually_resolved, permanently_failed, cancelled)")
	cmd.Flags().StringVar(&reason, "reason", "", "only entries of this reason (staleness_timeout, max_retries_exceeded, ...)")
	cmd.Flags().StringVar(&task, "task", "", "only the entries of this task")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "how many entries to list (1..1000)")
	cmd.Flags().IntVar(&offset, "offset", 0, "skip this many entries first")
	remoteFlags(cmd, &r)
	return cmd
}

func newDLQShowCmd(g *globals) *cobra.Command {
	var db, url, task string
	var r remote
	cmd := &cobra.Command{
		Use:   "show [ENTRY-ID]",
		Short: "Show a DLQ entry with its task snapshot as JSON (--task: the latest entry of a task)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (task != "") {
				return usageError{fmt.Errorf("give one entry ID (tasker dlq list shows them) or --task TASK-ID, not both")}
			}
			raw, what := task, "--task"
			if len(args) == 1 {
				raw, what = args[0], "entry ID"
			}
			id, err := uuid.Parse(raw)
			if err != nil {
				return usageError{fmt.Errorf("%s %q is not a UUID", what, raw)}
			}
			if r.on() {
				if task == "" {
					return usageError{fmt.Errorf("with --server give --task TASK-ID: the API answers a task's entry, not one by entry ID")}
				}
				c, err := r.client(cmd)
				if err != nil {
					return err
				}
				ctx, cancel := requestCtx(cmd)
				defer cancel()
				e, err := c.TaskDLQ(ctx, id.String())
				if err != nil {
					return err
				}
				return g.printJSON(e)
			}
			eng, err := g.openForDLQ(cmd, db, url)
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			var e *tasker.DLQEntry
			if task != "" {
				e, err = eng.TaskDLQEntry(cmd.Context(), id)
			} else {
				e, err = eng.GetDLQEntry(cmd.Context(), id)
			}
			if err != nil {
				return err
			}
			return writeEntry(g, e)
		},
	}
	backendFlagsDL(cmd, &db, &url)
	cmd.Flags().StringVar(&task, "task", "", "show the latest entry of this task")
	remoteFlags(cmd, &r)
	return cmd
}

// entryJSON is an entry as the CLI prints it: tasker-core's field names.
type entryJSON struct {
	ID               uuid.UUID       `json:"dlq_entry_uuid"`
	TaskID           uuid.UUID       `json:"task_uuid"`
	OriginalState    string          `json:"original_state"`
	Reason           string          `json:"dlq_reason"`
	At               time.Time       `json:"dlq_timestamp"`
	ResolutionStatus string          `json:"resolution_status"`
	ResolvedAt       *time.Time      `json:"resolution_timestamp"`
	Notes            *string         `json:"resolution_notes"`
	ResolvedBy       *string         `json:"resolved_by"`
	TaskSnapshot     json.RawMessage `json:"task_snapshot"`
	Metadata         json.RawMessage `json:"metadata"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

func writeEntry(g *globals, e *tasker.DLQEntry) error {
	j := entryJSON{ID: e.ID, TaskID: e.TaskID, OriginalState: string(e.OriginalState), Reason: string(e.Reason), At: e.At,
		ResolutionStatus: string(e.ResolutionStatus), TaskSnapshot: e.TaskSnapshot, Metadata: e.Metadata,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if !e.ResolvedAt.IsZero() {
		j.ResolvedAt = &e.ResolvedAt
	}
	if e.ResolutionNotes != "" {
		j.Notes = &e.ResolutionNotes
	}
	if e.ResolvedBy != "" {
		j.ResolvedBy = &e.ResolvedBy
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = g.stdout.Write(out.Bytes())
	return err
}

func newDLQUpdateCmd(g *globals) *cobra.Command {
	var db, url, status, notes, by string
	var r remote
	cmd := &cobra.Command{
		Use:   "update ENTRY-ID",
		Short: "Record what was done about an investigation: --status, --notes, --resolved-by (the task is not changed)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return usageError{fmt.Errorf("entry ID %q is not a UUID (tasker dlq list shows them)", args[0])}
			}
			var p tasker.DLQUpdateParams
			if cmd.Flags().Changed("status") {
				s := taskertype.DLQResolutionStatus(status)
				if !s.Valid() {
					return usageError{fmt.Errorf("--status %q: give one of %v", status, taskertype.DLQResolutionStatuses)}
				}
				p.Status = &s
			}
			if cmd.Flags().Changed("notes") {
				p.Notes = &notes
			}
			if cmd.Flags().Changed("resolved-by") {
				p.ResolvedBy = &by
			}
			if p.Status == nil && p.Notes == nil && p.ResolvedBy == nil {
				return usageError{fmt.Errorf("nothing to change: give --status, --notes or --resolved-by")}
			}
			if r.on() {
				c, err := r.client(cmd)
				if err != nil {
					return err
				}
				u := client.DLQUpdate{ResolutionNotes: p.Notes, ResolvedBy: p.ResolvedBy}
				if p.Status != nil {
					st := oapi.DlqResolutionStatus(pascal(string(*p.Status)))
					u.ResolutionStatus = &st
				}
				ctx, cancel := requestCtx(cmd)
				defer cancel()
				res, err := c.UpdateDLQEntry(ctx, id.String(), u)
				if err != nil {
					return err
				}
				return g.printJSON(res)
			}
			eng, err := g.openForDLQ(cmd, db, url)
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			e, err := eng.UpdateDLQEntry(cmd.Context(), id, p)
			if err != nil {
				return err
			}
			return writeEntry(g, e)
		},
	}
	backendFlagsDL(cmd, &db, &url)
	cmd.Flags().StringVar(&status, "status", "", "manually_resolved, permanently_failed or cancelled (only a pending entry moves)")
	cmd.Flags().StringVar(&notes, "notes", "", "investigation notes")
	cmd.Flags().StringVar(&by, "resolved-by", "", "who acted, e.g. an e-mail address")
	remoteFlags(cmd, &r)
	return cmd
}

func newDLQStatsCmd(g *globals) *cobra.Command {
	var db, url string
	var r remote
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count the DLQ entries by reason and status",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.on() {
				c, err := r.client(cmd)
				if err != nil {
					return err
				}
				ctx, cancel := requestCtx(cmd)
				defer cancel()
				stats, err := c.DLQStats(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REASON\tTOTAL\tPENDING\tMANUALLY RESOLVED\tPERMANENTLY FAILED\tCANCELLED")
				for _, s := range stats {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", s.DlqReason, s.TotalEntries, s.Pending, s.ManuallyResolved, s.PermanentFailures, s.Cancelled)
				}
				return tw.Flush()
			}
			eng, err := g.openForDLQ(cmd, db, url)
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			stats, err := eng.DLQStats(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REASON\tTOTAL\tPENDING\tMANUALLY RESOLVED\tPERMANENTLY FAILED\tCANCELLED\tOLDEST\tNEWEST\tAVG RESOLUTION (MIN)")
			for _, s := range stats {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%.1f\n", s.Reason, s.Total, s.Pending, s.ManuallyResolved,
					s.PermanentlyFailed, s.Cancelled, s.Oldest.Local().Format("2006-01-02 15:04:05"),
					s.Newest.Local().Format("2006-01-02 15:04:05"), s.AvgResolutionMinutes)
			}
			return tw.Flush()
		},
	}
	backendFlagsDL(cmd, &db, &url)
	remoteFlags(cmd, &r)
	return cmd
}
