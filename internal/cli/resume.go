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
	var maxResult int
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
			return g.resume(cmd.Context(), tasker.Config{DatabasePath: db, MaxResultBytes: maxResult}, ids, output)
		},
	}
	dbFlag(cmd, &db)
	outputFlag(cmd, &output)
	maxResultFlag(cmd, &maxResult)
	return cmd
}

const resumeLimit = 100_000

func (g *globals) resume(ctx context.Context, cfg tasker.Config, ids []uuid.UUID, output string) error {
	unfinished, err := g.unfinished(ctx, cfg)
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
		fmt.Fprintf(g.stdout, "nothing to resume: every task in %s has finished\n", cfg.DatabasePath)
		return nil
	}
	cfg.WorkerNamespaces = namespaces
	eng, err := g.openEngine(ctx, cfg)
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

// unfinished opens the database of cfg without running anything and lists
// its unfinished tasks, to find the namespaces that need workers before
// the engine that runs them opens.
func (g *globals) unfinished(ctx context.Context, cfg tasker.Config) ([]*tasker.Task, error) {
	cfg.DisableOrchestration, cfg.DisableWorkers = true, true
	probe, err := g.openEngine(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer g.stopEngine(probe)
	return probe.Tasks(ctx, resumeLimit, nonTerminal()...)
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
