package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
)

func newDeadLettersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dead-letters", Short: "Inspect, send back or purge the orchestration messages set aside because processing them kept failing"}
	var db, url, queueName string
	var bf brokerFlags
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
			eng, err := tasker.Open(ctx, bf.apply(tasker.Config{DatabasePath: db, DatabaseURL: url, Logger: g.logger()}))
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
	bf.register(list)
	list.Flags().StringVar(&queueName, "queue", "", "list only the dead letters of this queue (e.g. orchestration_results)")
	list.Flags().IntVarP(&limit, "limit", "n", 20, "how many dead letters to list")
	cmd.AddCommand(list, newDeadLettersRetryCmd(g), newDeadLettersPurgeCmd(g))
	return cmd
}

// maxRetryAll bounds the dead letters one `retry --all` sends back.
const maxRetryAll = 10_000

func newDeadLettersRetryCmd(g *globals) *cobra.Command {
	var db, url, queueName string
	var bf brokerFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "retry [ID...]",
		Short: "Send dead letters back to their queue, once their cause is fixed (--all: every one, or every one of --queue)",
		Long: `Send dead letters back to their queue as new messages: a running orchestrator
processes them as it would have. A set-aside result or retry wake-up leaves
its task waiting until its message is sent back (or the task is cancelled).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return usageError{fmt.Errorf("give dead letter ids or --all, not both")}
			case !all && len(args) == 0:
				return usageError{fmt.Errorf("no dead letter: give their ids (tasker dead-letters list shows them) or --all")}
			case !all && queueName != "":
				return usageError{fmt.Errorf("--queue goes with --all: the ids name their dead letters already")}
			}
			ids := make([]int64, 0, len(args))
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id < 1 {
					return usageError{fmt.Errorf("dead letter id %q: give a positive number (tasker dead-letters list shows them)", a)}
				}
				ids = append(ids, id)
			}
			ctx := cmd.Context()
			eng, err := tasker.Open(ctx, bf.apply(tasker.Config{DatabasePath: db, DatabaseURL: url, Logger: g.logger()}))
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			more := false
			if all {
				ds, err := eng.DeadLetters(ctx, tasker.DeadLetterListParams{Queue: queueName, Limit: maxRetryAll})
				if err != nil {
					return err
				}
				for _, d := range ds {
					ids = append(ids, d.ID)
				}
				more = len(ds) == maxRetryAll
			}
			for _, id := range ids {
				msg, err := eng.RequeueDeadLetter(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "dead letter %d sent back as message %d\n", id, msg)
			}
			if more {
				fmt.Fprintf(g.stdout, "%d sent back; more remain: run it again\n", len(ids))
			}
			return nil
		},
	}
	backendFlagsDL(cmd, &db, &url)
	bf.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "send back every dead letter (with --queue, every one of that queue)")
	cmd.Flags().StringVar(&queueName, "queue", "", "with --all: only the dead letters of this queue")
	return cmd
}

func newDeadLettersPurgeCmd(g *globals) *cobra.Command {
	var db, url, queueName string
	var bf brokerFlags
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "purge --older-than DURATION",
		Short: "Delete the dead letters set aside more than DURATION ago",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan <= 0 {
				return usageError{fmt.Errorf("--older-than %v: give a positive duration, e.g. --older-than 720h", olderThan)}
			}
			ctx := cmd.Context()
			eng, err := tasker.Open(ctx, bf.apply(tasker.Config{DatabasePath: db, DatabaseURL: url, Logger: g.logger()}))
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			n, err := eng.PurgeDeadLetters(ctx, time.Now().Add(-olderThan), queueName)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d dead letters deleted\n", n)
			return nil
		},
	}
	backendFlagsDL(cmd, &db, &url)
	bf.register(cmd)
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "delete the dead letters set aside longer ago than this (required), e.g. 720h")
	cmd.Flags().StringVar(&queueName, "queue", "", "only the dead letters of this queue")
	return cmd
}

// backendFlagsDL adds --db and --database-url to a dead-letters command.
func backendFlagsDL(cmd *cobra.Command, db, url *string) {
	dbFlag(cmd, db)
	cmd.Flags().StringVar(url, "database-url", os.Getenv("TASKER_DATABASE_URL"),
		"PostgreSQL URL (env TASKER_DATABASE_URL); when set, --db is ignored")
}

// brokerFlags are --messaging, --amqp-url and --amqp-prefix of a command
// that reads the dead letters, which live on the broker with RabbitMQ
// messaging.
type brokerFlags struct{ messaging, url, prefix string }

func (b *brokerFlags) register(cmd *cobra.Command) {
	messagingFlags(cmd, &b.messaging, &b.url)
	cmd.Flags().StringVar(&b.prefix, "amqp-prefix", os.Getenv("TASKER_AMQP_PREFIX"),
		"with --messaging rabbitmq: the prefix of the installation's names on the broker (env TASKER_AMQP_PREFIX)")
}

func (b *brokerFlags) apply(cfg tasker.Config) tasker.Config {
	cfg.Messaging, cfg.AMQPURL, cfg.AMQPPrefix = b.messaging, b.url, b.prefix
	return cfg
}

// oneLine puts s on one line of at most n characters, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
