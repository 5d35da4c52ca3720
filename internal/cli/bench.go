package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	var o bench.Options
	var shapes string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end latency and throughput",
		Long: `Run the example shapes (linear, diamond, dag, tree) with a trivial handler on a
fresh embedded database: first one task at a time (latency p50/p95/p99 from
creation to completion), then with many tasks in flight (tasks/s and steps/s).

With --database-url, run on PostgreSQL instead, in a schema created for the
run and dropped after it, and count the round trips to the database: per step
one task at a time (RT/STEP) and at saturation (RT/STEP SAT), the bench's own
task creations and waits included, and per second while the engine is idle
(IDLE RT/S, over --idle after each shape).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if shapes != "" {
				for _, s := range strings.Split(shapes, ",") {
					o.Shapes = append(o.Shapes, strings.TrimSpace(s)+"_workflow")
				}
			}
			if o.Sequential < 1 || o.InFlight < 1 || o.Saturation <= 0 || o.Idle < 0 {
				return usageError{fmt.Errorf("--tasks, --in-flight and --duration must be positive, --idle not negative")}
			}
			dir, err := os.MkdirTemp(o.Dir, "tasker-bench-")
			if err != nil {
				return fmt.Errorf("bench: temporary directory: %w", err)
			}
			defer os.RemoveAll(dir)
			o.Dir = dir
			o.Logger = g.logger()
			reports, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			pg := o.DatabaseURL != ""
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprint(tw, "SHAPE\tSTEPS\tP50\tP95\tP99\tIN FLIGHT\tTASKS/S\tSTEPS/S")
			if pg {
				fmt.Fprint(tw, "\tRT/STEP\tRT/STEP SAT\tIDLE RT/S")
			}
			fmt.Fprintln(tw)
			for _, r := range reports {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f", strings.TrimSuffix(r.Shape, "_workflow"), r.Steps,
					ms(r.P50), ms(r.P95), ms(r.P99), r.InFlight, r.TasksPerSec, r.StepsPerSec)
				if pg {
					fmt.Fprintf(tw, "\t%.2f\t%.2f\t%.2f", r.TripsPerStep, r.TripsPerStepSaturated, r.IdleTripsPerSec)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&shapes, "shapes", "", "comma-separated shapes to run: linear, diamond, dag, tree (default all)")
	cmd.Flags().IntVar(&o.Sequential, "tasks", 200, "tasks per shape run one at a time for latency")
	cmd.Flags().IntVar(&o.InFlight, "in-flight", 64, "tasks kept in flight for throughput")
	cmd.Flags().DurationVar(&o.Saturation, "duration", 3*time.Second, "how long each shape runs at saturation")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the temporary database (default: the system's)")
	cmd.Flags().StringVar(&o.DatabaseURL, "database-url", "", "run on this PostgreSQL database, in a temporary schema")
	cmd.Flags().DurationVar(&o.Idle, "idle", 10*time.Second, "with --database-url: how long to count the idle engine's round trips after each shape")
	return cmd
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
