package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/client"
)

// ExitConn is the exit code of a command that could not reach the server
// or was refused by it for its credentials (401, 403).
const ExitConn = 3

// remote holds the flags of a command that can go over the REST API:
// --server (TASKER_SERVER) and --token (TASKER_TOKEN).
type remote struct {
	server, token string
}

// remoteFlags registers --server and --token. With a server the command
// goes over HTTP; without, it opens the database (if it can).
func remoteFlags(cmd *cobra.Command, r *remote) {
	cmd.Flags().StringVar(&r.server, "server", os.Getenv("TASKER_SERVER"),
		"a 'tasker serve' API to go through, e.g. http://127.0.0.1:8080 (env TASKER_SERVER); without it the command opens the database")
	cmd.Flags().StringVar(&r.token, "token", os.Getenv("TASKER_TOKEN"), "bearer token for the server (env TASKER_TOKEN)")
}

func (r *remote) on() bool { return r.server != "" }

// client returns the API client; without --server a usage error saying
// the command needs one.
func (r *remote) client(cmd *cobra.Command) (*client.Client, error) {
	if r.server == "" {
		return nil, usageError{fmt.Errorf("%s goes through the REST API: give --server URL (or TASKER_SERVER), e.g. --server http://127.0.0.1:8080", cmd.CommandPath())}
	}
	var opts []client.Option
	if r.token != "" {
		opts = append(opts, client.WithToken(r.token))
	}
	c, err := client.New(r.server, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server: %w", err)}
	}
	return c, nil
}

// connProblem says whether err is a connection or auth problem (exit 3),
// and the hint for it.
func connProblem(err error) (bool, string) {
	var ae *client.Error
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case 401:
			return true, "the server wants credentials: pass --token (or TASKER_TOKEN) with a valid bearer token"
		case 403:
			return true, "the token lacks the permission this command needs: ask for one that has it ('tasker auth show-permissions')"
		}
		return false, ""
	}
	// A request that got no answer: net/http's *url.Error (a database's
	// connection errors are not this, and keep their exit code).
	var ue *url.Error
	if errors.As(err, &ue) {
		return true, "is 'tasker serve' running there? check --server (or TASKER_SERVER) and that the address is reachable"
	}
	return false, ""
}

// apiExitCode maps an *client.Error to an exit code (0 when err is not
// one).
func apiExitCode(err error) int {
	var ae *client.Error
	if !errors.As(err, &ae) {
		return 0
	}
	switch ae.StatusCode {
	case 400, 404, 409, 413, 422:
		return ExitBadInput
	}
	return ExitFailed
}

// printJSON writes v indented.
func (g *globals) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "%s\n", b)
	return err
}

func (g *globals) printTasks(tasks []client.Task) error {
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTEMPLATE\tSTATE\tSTEPS\tCREATED")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s/%s@%s\t%s\t%d/%d\t%s\n", t.TaskUuid, t.Namespace, t.Name, t.Version, t.Status,
			t.CompletedSteps, t.TotalSteps, t.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func (g *globals) printTask(t *client.Task, output string) error {
	if output == "json" {
		return g.printJSON(t)
	}
	fmt.Fprintf(g.stdout, "task %s  %s/%s@%s  %s  (%d of %d steps complete; %s)\n", t.TaskUuid, t.Namespace, t.Name, t.Version,
		t.Status, t.CompletedSteps, t.TotalSteps, t.ExecutionStatus)
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tID\tSTATE\tATTEMPTS\tREADY")
	for _, s := range t.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%v\n", s.Name, s.WorkflowStepUuid, s.CurrentState, s.Attempts, s.MaxAttempts, s.ReadyForExecution)
	}
	return tw.Flush()
}

func (g *globals) printSteps(steps []client.Step, output string) error {
	if output == "json" {
		return g.printJSON(steps)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tID\tSTATE\tATTEMPTS\tUPDATED\tRESULT")
	for _, s := range steps {
		res := "-"
		if s.Results != nil {
			b, _ := json.Marshal(s.Results)
			res = truncate(string(b), 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.StepUuid, s.CurrentState, s.Attempts, s.MaxAttempts, s.UpdatedAt, res)
	}
	return tw.Flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// taskExit sets the exit code from a task's state: 0 complete (or resolved
// by hand), 1 another terminal state, 0 while it runs.
func (g *globals) taskExit(status string) {
	switch status {
	case "error", "cancelled", "blocked_by_failures":
		*g.code = ExitFailed
	default:
		*g.code = ExitOK
	}
}

// watchTask follows a task's event stream with live progress on stderr, as
// 'tasker run' shows it, then prints the task.
func (g *globals) watchTask(ctx context.Context, c *client.Client, id, output string, quiet bool) error {
	var p *progress
	var final string
	err := c.WatchTask(ctx, id, func(e client.Event) error {
		switch e.Type {
		case "snapshot":
			t := e.Task
			tid, _ := uuid.Parse(t.TaskUuid)
			p = &progress{w: g.stderr, tty: isTTY(g.stderr), task: tid, start: t.CreatedAt, taskSt: t.Status,
				state: map[string]string{}, attempts: map[string]int{}, dirty: true}
			for _, s := range t.Steps {
				p.order = append(p.order, s.Name)
				p.state[s.Name], p.attempts[s.Name] = s.CurrentState, int(s.Attempts)
			}
			if !p.tty && !quiet {
				fmt.Fprintf(g.stderr, "task %s  %s (snapshot)\n", t.TaskUuid, t.Status)
			}
		case "transition":
			if p == nil || quiet {
				return nil
			}
			tr := e.Transition
			ev := tasker.Event{Kind: tr.Kind, TaskID: tr.TaskUuid, From: tr.FromState, To: tr.ToState, Event: tr.Event, At: tr.At}
			if tr.StepName != nil {
				ev.StepName = *tr.StepName
			}
			if tr.Attempt != nil {
				ev.Attempt = int(*tr.Attempt)
			}
			p.event(ev)
			p.redraw()
		case "end":
			final = e.Status
		}
		return nil
	})
	if p != nil && !quiet {
		p.dirty = true
		p.redraw()
	}
	if err != nil {
		return err
	}
	t, err := c.GetTask(ctx, id)
	if err != nil {
		return err
	}
	g.taskExit(final)
	return g.printTask(t, output)
}

// templateKey reads "namespace/name[@version]".
func templateKey(s string) (ns, name, version string, err error) {
	key, version, _ := strings.Cut(s, "@")
	ns, name, ok := strings.Cut(key, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", "", usageError{fmt.Errorf("template %q: give NAMESPACE/NAME[@VERSION] (tasker template list --server shows them) or a template file", s)}
	}
	return ns, name, version, nil
}

// timeout bounds a one-shot request.
func requestCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), time.Minute)
}

// remoteRead is a read through --server: it checks -o, calls fetch with the
// client and a request's context, then prints the answer as JSON or as the
// table that table writes.
func remoteRead[T any](g *globals, cmd *cobra.Command, r *remote, output string,
	fetch func(context.Context, *client.Client) (T, error), table func(*tabwriter.Writer, T)) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	c, err := r.client(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := requestCtx(cmd)
	defer cancel()
	v, err := fetch(ctx, c)
	if err != nil {
		return err
	}
	if output == "json" {
		return g.printJSON(v)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	table(tw, v)
	return tw.Flush()
}
