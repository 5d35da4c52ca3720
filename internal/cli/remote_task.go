package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/client"
)

// listOpts are task list's flags that go with --server.
type listOpts struct {
	page              int
	namespace, status string
	output            string
}

func (g *globals) remoteList(cmd *cobra.Command, r *remote, lo listOpts, limit int) error {
	if err := checkOutput(lo.output); err != nil {
		return err
	}
	c, err := r.client(cmd)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 100 {
		return usageError{fmt.Errorf("--limit %d: with --server give 1 to 100 tasks a page (--page for more)", limit)}
	}
	p := &client.ListTasksParams{}
	per := int32(limit)
	p.PerPage = &per
	if lo.page != 0 {
		page := int32(lo.page)
		p.Page = &page
	}
	if lo.namespace != "" {
		p.Namespace = &lo.namespace
	}
	if lo.status != "" {
		p.Status = &lo.status
	}
	ctx, cancel := requestCtx(cmd)
	defer cancel()
	l, err := c.ListTasks(ctx, p)
	if err != nil {
		return err
	}
	if lo.output == "json" {
		return g.printJSON(l)
	}
	if err := g.printTasks(l.Tasks); err != nil {
		return err
	}
	pg := l.Pagination
	fmt.Fprintf(g.stderr, "page %d of %d (%d tasks)\n", pg.Page, pg.TotalPages, pg.TotalCount)
	return nil
}

func (g *globals) remoteCreate(cmd *cobra.Command, r *remote, what, environment string, ctxRaw json.RawMessage,
	req *requestFlags, wait bool, output string) error {
	c, err := r.client(cmd)
	if err != nil {
		return err
	}
	var ns, name, version string
	if _, statErr := os.Stat(what); statErr == nil {
		tpl, err := g.loadTemplateFile(what, environment)
		if err != nil {
			return err
		}
		ns, name, version = tpl.Namespace, tpl.Name, tpl.Version
	} else if ns, name, version, err = templateKey(what); err != nil {
		return err
	}
	p := tasker.CreateTaskParams{Namespace: ns, Name: name, Version: version, Context: ctxRaw}
	if err := req.apply(&p); err != nil {
		return err
	}
	tr := client.TaskRequest{Namespace: ns, Name: name, Version: version, Context: ctxRaw, CorrelationId: p.CorrelationID,
		Initiator: p.Initiator, SourceSystem: p.SourceSystem, Reason: p.Reason, Tags: p.Tags}
	if p.ParentCorrelationID != uuid.Nil {
		tr.ParentCorrelationId = &p.ParentCorrelationID
	}
	if p.Priority != 0 {
		prio := int32(p.Priority)
		tr.Priority = &prio
	}
	if p.IdempotencyKey != "" {
		tr.IdempotencyKey = &p.IdempotencyKey
	}
	ctx, cancel := requestCtx(cmd)
	t, err := c.CreateTask(ctx, tr)
	cancel()
	if err != nil {
		return err
	}
	if !wait {
		if output == "json" {
			return g.printJSON(t)
		}
		fmt.Fprintln(g.stdout, t.TaskUuid)
		return nil
	}
	return g.watchTask(cmd.Context(), c, t.TaskUuid, output, false)
}

// remoteTaskCmds are the task commands that go through the API only.
func remoteTaskCmds(g *globals) []*cobra.Command {
	type spec struct {
		use, short string
		args       int
		run        func(cmd *cobra.Command, c *client.Client, args []string, output string) error
	}
	var by, reason, result string
	var quiet bool
	specs := []spec{
		{"cancel TASK_ID", "Cancel an unfinished task and its unfinished steps", 1, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			t, err := c.CancelTask(ctx, a[0])
			if err != nil {
				return err
			}
			return g.printTask(t, o)
		}},
		{"steps TASK_ID", "List a task's steps with their states and results", 1, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			steps, err := c.ListSteps(ctx, a[0])
			if err != nil {
				return err
			}
			return g.printSteps(steps, o)
		}},
		{"step TASK_ID STEP_ID", "Show one step of a task with its readiness", 2, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			s, err := c.GetStep(ctx, a[0], a[1])
			if err != nil {
				return err
			}
			return g.printSteps([]client.Step{*s}, o)
		}},
		{"reset-step TASK_ID STEP_ID", "Send a failed step back to pending with its attempts cleared (--by, --reason)", 2, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			s, err := c.ResetStep(ctx, a[0], a[1], by, reason)
			if err != nil {
				return err
			}
			return g.printSteps([]client.Step{*s}, o)
		}},
		{"resolve-step TASK_ID STEP_ID", "Mark a step resolved by hand: its dependents run (--by, --reason)", 2, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			s, err := c.ResolveStep(ctx, a[0], a[1], by, reason)
			if err != nil {
				return err
			}
			return g.printSteps([]client.Step{*s}, o)
		}},
		{"complete-step TASK_ID STEP_ID", "Complete a step by hand with --result JSON, which its dependents read (--by, --reason)", 2, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			var res any
			if err := json.Unmarshal([]byte(result), &res); err != nil {
				return usageError{fmt.Errorf("--result %q is not JSON: %w", result, err)}
			}
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			s, err := c.CompleteStep(ctx, a[0], a[1], by, reason, res)
			if err != nil {
				return err
			}
			return g.printSteps([]client.Step{*s}, o)
		}},
		{"audit TASK_ID STEP_ID", "Show a step's audit history: each attempt's result", 2, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			ctx, cancel := requestCtx(cmd)
			defer cancel()
			au, err := c.StepAudit(ctx, a[0], a[1])
			if err != nil {
				return err
			}
			if o == "json" {
				return g.printJSON(au)
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECORDED\tSTEP\tFROM\tTO\tSUCCESS\tWORKER")
			for _, x := range au {
				from, worker := "-", "-"
				if x.FromState != nil {
					from = *x.FromState
				}
				if x.WorkerUuid != nil {
					worker = *x.WorkerUuid
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", x.RecordedAt, x.StepName, from, x.ToState, x.Success, worker)
			}
			return tw.Flush()
		}},
		{"watch TASK_ID", "Follow a task's transitions live (the server's event stream) until it finishes", 1, func(cmd *cobra.Command, c *client.Client, a []string, o string) error {
			if _, err := uuid.Parse(a[0]); err != nil {
				return usageError{fmt.Errorf("%q is not a task id (a UUID)", a[0])}
			}
			return g.watchTask(cmd.Context(), c, a[0], o, quiet)
		}},
	}
	var cmds []*cobra.Command
	for _, sp := range specs {
		var r remote
		var output string
		cmd := &cobra.Command{Use: sp.use, Short: sp.short + " (through --server)", Args: exactArgs(sp.args),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := checkOutput(output); err != nil {
					return err
				}
				switch cmd.Name() {
				case "reset-step", "resolve-step", "complete-step":
					if reason == "" || by == "" {
						return usageError{errors.New("--reason and --by are required: the API records who acted and why")}
					}
					if cmd.Name() == "complete-step" && result == "" {
						return usageError{errors.New(`--result is required: the step's result as JSON, e.g. --result '{"value": 2}'`)}
					}
				}
				c, err := r.client(cmd)
				if err != nil {
					return err
				}
				*g.code = ExitOK
				return sp.run(cmd, c, args, output)
			}}
		remoteFlags(cmd, &r)
		outputFlag(cmd, &output)
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "reset-step", "resolve-step", "complete-step":
			cmd.Flags().StringVar(&by, "by", os.Getenv("USER"), "who acts (recorded as reset_by/resolved_by/completed_by)")
			cmd.Flags().StringVar(&reason, "reason", "", "why (required by the API)")
			if cmd.Name() == "complete-step" {
				cmd.Flags().StringVar(&result, "result", "", "the step's result, JSON (required)")
			}
		case "watch":
			cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no live progress: only the final task")
		}
	}
	return cmds
}
