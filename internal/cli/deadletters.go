package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
)

func newDeadLettersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dead-letters", Short: "Inspect the orchestration messages set aside because processing them kept failing"}
	var db, url, queueName string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters, newest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageError{fmt.Errorf("--limit %d: give a positive number of dead letters to list", limit)}
			}
			ctx := cmd.Context()
			eng, err := tasker.Open(ctx, tasker.Config{DatabasePath: db, DatabaseURL: url, Logger: g.logger()})
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			ds, err := eng.DeadLetters(ctx, tasker.DeadLetterListParams{Queue: queueName, Limit: limit})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tQUEUE\tMESSAGE\tDELIVERIES\tSET ASIDE\tREASON\tBODY")
			for _, d := range ds {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\n", d.ID, d.Queue, d.MessageID, d.ReadCount,
					d.DeadAt.Local().Format("2006-01-02 15:04:05"), oneLine(d.Reason, 120), oneLine(string(d.Body), 80))
			}
			return tw.Flush()
		},
	}
	dbFlag(list, &db)
	list.Flags().StringVar(&url, "database-url", os.Getenv("TASKER_DATABASE_URL"),
		"PostgreSQL URL (env TASKER_DATABASE_URL); when set, --db is ignored")
	list.Flags().StringVar(&queueName, "queue", "", "list only the dead letters of this queue (e.g. orchestration_results)")
	list.Flags().IntVarP(&limit, "limit", "n", 20, "how many dead letters to list")
	cmd.AddCommand(list)
	return cmd
}

// oneLine puts s on one line of at most n characters, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
