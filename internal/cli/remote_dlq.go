package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker/client"
	"github.com/tasker-go/tasker/client/oapi"
)

// pascal turns the CLI's snake_case DLQ names into the API's PascalCase
// (manually_resolved -> ManuallyResolved).
func pascal(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func (g *globals) remoteDLQList(cmd *cobra.Command, r *remote, status, reason, task string, limit, offset int) error {
	if reason != "" {
		return usageError{fmt.Errorf("--reason reads the database: the API lists by --status only")}
	}
	c, err := r.client(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := requestCtx(cmd)
	defer cancel()
	var es []client.DLQEntry
	if task != "" {
		e, err := c.TaskDLQ(ctx, task)
		if err != nil {
			return err
		}
		es = append(es, *e)
	} else {
		lim, off := int64(limit), int64(offset)
		p := &client.ListDLQParams{Limit: &lim, Offset: &off}
		if status != "" {
			st := oapi.DlqResolutionStatus(pascal(status))
			p.ResolutionStatus = &st
		}
		if es, err = c.ListDLQ(ctx, p); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTRY\tTASK\tREASON\tSTATUS\tORIGINAL STATE\tAT\tRESOLVED BY")
	for _, e := range es {
		by := ""
		if e.ResolvedBy != nil {
			by = *e.ResolvedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.DlqEntryUuid, e.TaskUuid, e.DlqReason, e.ResolutionStatus, e.OriginalState,
			e.DlqTimestamp.Local().Format("2006-01-02 15:04:05"), by)
	}
	return tw.Flush()
}

func newDLQQueueCmd(g *globals) *cobra.Command {
	var r remote
	var limit int64
	var output string
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "The pending investigations by priority (through --server)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return remoteRead(g, cmd, &r, output, func(ctx context.Context, c *client.Client) ([]client.DLQInvestigation, error) {
				return c.DLQInvestigationQueue(ctx, limit)
			}, func(tw *tabwriter.Writer, q []client.DLQInvestigation) {
				fmt.Fprintln(tw, "ENTRY\tTASK\tREASON\tPRIORITY\tMINUTES IN DLQ")
				for _, e := range q {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\n", e.DlqEntryUuid, e.TaskUuid, e.DlqReason, e.PriorityScore, e.MinutesInDlq)
				}
			})
		},
	}
	remoteFlags(cmd, &r)
	outputFlag(cmd, &output)
	cmd.Flags().Int64VarP(&limit, "limit", "n", 0, "at most this many (0: the server's default)")
	return cmd
}

func newDLQStalenessCmd(g *globals) *cobra.Command {
	var r remote
	var limit int64
	var output string
	cmd := &cobra.Command{
		Use:   "staleness",
		Short: "Unfinished tasks by how long they have sat in their state (through --server)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return remoteRead(g, cmd, &r, output, func(ctx context.Context, c *client.Client) ([]client.StalenessMonitoring, error) {
				return c.DLQStaleness(ctx, limit)
			}, func(tw *tabwriter.Writer, s []client.StalenessMonitoring) {
				fmt.Fprintln(tw, "TASK\tSTATE\tHEALTH\tMINUTES IN STATE\tTHRESHOLD")
				for _, e := range s {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", e.TaskUuid, e.CurrentState, e.HealthStatus, e.TimeInStateMinutes, e.StalenessThresholdMinutes)
				}
			})
		},
	}
	remoteFlags(cmd, &r)
	outputFlag(cmd, &output)
	cmd.Flags().Int64VarP(&limit, "limit", "n", 0, "at most this many (0: the server's default)")
	return cmd
}

// newTemplateListCmd and newTemplateGetCmd read a server's templates.
func newTemplateListCmd(g *globals) *cobra.Command {
	var r remote
	var ns, output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the templates a server has registered (through --server)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return remoteRead(g, cmd, &r, output, func(ctx context.Context, c *client.Client) (*client.TemplateList, error) {
				return c.ListTemplates(ctx, ns)
			}, func(tw *tabwriter.Writer, l *client.TemplateList) {
				fmt.Fprintln(tw, "TEMPLATE\tSTEPS\tDESCRIPTION")
				for _, t := range l.Templates {
					d := ""
					if t.Description != nil {
						d = truncate(*t.Description, 60)
					}
					fmt.Fprintf(tw, "%s/%s@%s\t%d\t%s\n", t.Namespace, t.Name, t.Version, t.StepCount, d)
				}
			})
		},
	}
	remoteFlags(cmd, &r)
	outputFlag(cmd, &output)
	cmd.Flags().StringVar(&ns, "namespace", "", "only this namespace's templates")
	return cmd
}

func newTemplateGetCmd(g *globals) *cobra.Command {
	var r remote
	var output string
	cmd := &cobra.Command{
		Use:   "get NAMESPACE/NAME@VERSION",
		Short: "Show a template a server has registered (through --server)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ns, name, version, err := templateKey(args[0])
			if err != nil {
				return err
			}
			if version == "" {
				return usageError{fmt.Errorf("template %q: give the version too, NAMESPACE/NAME@VERSION", args[0])}
			}
			return remoteRead(g, cmd, &r, output, func(ctx context.Context, c *client.Client) (*client.TemplateDetail, error) {
				return c.GetTemplate(ctx, ns, name, version)
			}, func(tw *tabwriter.Writer, t *client.TemplateDetail) {
				fmt.Fprintf(tw, "%s/%s@%s\n", t.Namespace, t.Name, t.Version)
				fmt.Fprintln(tw, "STEP\tRETRYABLE\tMAX ATTEMPTS\tDESCRIPTION")
				for _, s := range t.Steps {
					d := ""
					if s.Description != nil {
						d = *s.Description
					}
					fmt.Fprintf(tw, "%s\t%v\t%d\t%s\n", s.Name, s.DefaultRetryable, s.DefaultMaxAttempts, d)
				}
			})
		},
	}
	remoteFlags(cmd, &r)
	outputFlag(cmd, &output)
	return cmd
}
