package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
)

func newResumeCmd(g *globals) *cobra.Command {
	var db, output string
	cmd := &cobra.Command{
		Use:   "resume [TASK_ID...]",
		Short: "Continue the unfinished tasks of a database (after a crash or an interrupt)",
		Long: `Start the embedded engine on a database and wait until the given tasks, or
every unfinished task, reach a final state; then print their summaries. Steps
that were running when the previous process died are recorded as lost
attempts and retried under their retry policy.

Exit code 0: every task completed; 1: one ended otherwise; 2: bad input.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ids, err := parseTaskIDs(args)
			if err != nil {
				return err
			}
			return g.resume(cmd.Context(), db, ids, output)
		},
	}
	dbFlag(cmd, &db)
	outputFlag(cmd, &output)
	return cmd
}

const resumeLimit = 100_000

func (g *globals) resume(ctx context.Context, db string, ids []uuid.UUID, output string) error {
	// Open once to find the namespaces that need workers, then start.
	probe, err := g.openEngine(ctx, db, nil)
	if err != nil {
		return err
	}
	unfinished, err := probe.Tasks(ctx, resumeLimit, nonTerminal()...)
	g.stopEngine(probe)
	if err != nil {
		return err
	}
	waitAll := len(ids) == 0
	var namespaces []string
	for _, t := range unfinished {
		if !slices.Contains(namespaces, t.Namespace) {
			namespaces = append(namespaces, t.Namespace)
		}
		if waitAll {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		fmt.Fprintf(g.stdout, "nothing to resume: every task in %s has finished\n", db)
		return nil
	}
	eng, err := g.openEngine(ctx, db, namespaces)
	if err != nil {
		return err
	}
	defer g.stopEngine(eng)
	if err := eng.Start(ctx); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := eng.WaitTask(ctx, id); err != nil {
			return err
		}
	}
	return g.summarize(ctx, eng, ids, output)
}

func nonTerminal() []tasker.TaskState {
	var s []tasker.TaskState
	for _, st := range taskertype.TaskStates {
		if !st.Terminal() {
			s = append(s, st)
		}
	}
	return s
}
