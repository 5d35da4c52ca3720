package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
)

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Create, inspect and repair tasks: in a database, or through a server's API (--server)",
		Long: `Create, inspect and repair tasks. show, list and create open the database
(--db, --database-url) unless --server (or TASKER_SERVER) names a 'tasker
serve' to go through; the other commands go through a server's REST API.
Exit codes: 0 ok, 1 failed (a task not complete, a server error), 2 bad input
(arguments, an unknown task, a refused action), 3 the server could not be
reached or refused the credentials (--token, TASKER_TOKEN).`}
	var db database
	var output string
	var transitions bool
	var showRemote remote
	show := &cobra.Command{
		Use:     "show TASK_ID",
		Aliases: []string{"get"},
		Short:   "Show a task, its steps and optionally its transition log (alias: get)",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ids, err := parseTaskIDs(args)
			if err != nil {
				return err
			}
			if showRemote.on() {
				if transitions {
					return usageError{errors.New("--transitions reads the database: the API has no transition log (use 'tasker task watch' or 'tasker task audit')")}
				}
				c, err := showRemote.client(cmd)
				if err != nil {
					return err
				}
				ctx, cancel := requestCtx(cmd)
				defer cancel()
				t, err := c.GetTask(ctx, ids[0].String())
				if err != nil {
					return err
				}
				g.taskExit(t.Status)
				return g.printTask(t, output)
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
	remoteFlags(show, &showRemote)
	outputFlag(show, &output)
	show.Flags().BoolVar(&transitions, "transitions", false, "also print the transition log")

	var listDB database
	var limit int
	var lr remote
	var lo listOpts
	list := &cobra.Command{
		Use:   "list",
		Short: "List the newest tasks",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lr.on() {
				return g.remoteList(cmd, &lr, lo, limit)
			}
			if lo.page != 0 || lo.namespace != "" || lo.status != "" || lo.output != "text" {
				return usageError{errors.New("--page, --namespace, --status and --output go with --server: without it the newest tasks of the database are listed")}
			}
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
	list.Flags().IntVarP(&limit, "limit", "n", 20, "how many tasks to list (with --server: per page, at most 100)")
	remoteFlags(list, &lr)
	list.Flags().IntVar(&lo.page, "page", 0, "with --server: the page, from 1")
	list.Flags().StringVar(&lo.namespace, "namespace", "", "with --server: only this namespace's tasks")
	list.Flags().StringVar(&lo.status, "status", "", "with --server: only tasks in this state")
	list.Flags().StringVarP(&lo.output, "output", "o", "text", "with --server: text or json")
	cmd.AddCommand(show, list, newCreateCmd(g))
	cmd.AddCommand(remoteTaskCmds(g)...)
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
