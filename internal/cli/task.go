package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
)

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Inspect the tasks of a database"}
	var db database
	var output string
	var transitions bool
	show := &cobra.Command{
		Use:   "show TASK_ID",
		Short: "Show a task, its steps and optionally its transition log",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ids, err := parseTaskIDs(args)
			if err != nil {
				return err
			}
			return g.withEngine(cmd.Context(), db, func(eng *tasker.Engine) error {
				if err := g.summarize(cmd.Context(), eng, ids, output); err != nil {
					return err
				}
				*g.code = ExitOK
				if output != "json" {
					if info, err := eng.Task(cmd.Context(), ids[0]); err == nil {
						printRequest(g, info.Task)
					}
				}
				if !transitions {
					return nil
				}
				log, err := eng.Transitions(cmd.Context(), ids[0])
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "\nAT\tSTEP\tFROM\tTO\tEVENT\tPROCESSOR")
				names := map[string]string{}
				if info, err := eng.Task(cmd.Context(), ids[0]); err == nil {
					for _, s := range info.Steps {
						names[s.ID.String()] = s.Name
					}
				}
				for _, t := range log {
					step := "(task)"
					if n, ok := names[t.StepID.String()]; ok {
						step = n
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.At.Format("15:04:05.000000"), step, orDash(t.From), t.To, t.Event, t.Processor)
				}
				return tw.Flush()
			})
		},
	}
	databaseFlags(show, &db)
	outputFlag(show, &output)
	show.Flags().BoolVar(&transitions, "transitions", false, "also print the transition log")

	var listDB database
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the newest tasks",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withEngine(cmd.Context(), listDB, func(eng *tasker.Engine) error {
				ts, err := eng.Tasks(cmd.Context(), limit)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTEMPLATE\tSTATE\tCREATED")
				for _, t := range ts {
					fmt.Fprintf(tw, "%s\t%s/%s@%s\t%s\t%s\n", t.ID, t.Namespace, t.Name, t.Version, t.State, t.CreatedAt.Format("2006-01-02 15:04:05"))
				}
				return tw.Flush()
			})
		},
	}
	databaseFlags(list, &listDB)
	list.Flags().IntVarP(&limit, "limit", "n", 20, "how many tasks to list")
	cmd.AddCommand(show, list, newCreateCmd(g))
	return cmd
}

// withEngine opens an engine that runs nothing, to read the database.
func (g *globals) withEngine(ctx context.Context, db database, fn func(*tasker.Engine) error) error {
	eng, err := g.openEngine(ctx, tasker.Config{DatabasePath: db.db, DatabaseURL: db.url, DisableOrchestration: true, DisableWorkers: true})
	if err != nil {
		return err
	}
	defer g.stopEngine(eng)
	return fn(eng)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
