package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker/internal/bench"
	"github.com/tasker-go/tasker/internal/tune"
)

func newBenchCmd(g *globals) *cobra.Command {
	var o bench.Options
	var shapes string
	var burn bench.BurnDownOptions
	var asJSON bool
	var messaging string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end latency and throughput",
		Long: `Run the shapes (single: one step; the examples linear, diamond, dag, tree)
with a trivial handler on a fresh embedded database: first one task at a time (latency p50/p95/p99 from
creation to completion), then with many tasks in flight (tasks/s and steps/s).

With --database-url, run on PostgreSQL instead, in a schema created for the
run and dropped after it (with --messaging rabbitmq --amqp-url URL, the queues
on that RabbitMQ broker, under a prefix of the run's own), and count the round trips to the database: per step
one task at a time (RT/STEP) and at saturation (RT/STEP SAT), the bench's own
task creations and waits included, and per second while the engine is idle
(IDLE RT/S, over --idle after each shape).

With --load F (between 0 and 1), each shape also runs at F times the rate
its saturation run reached (LOAD ASKED/S), for --duration: tasks created at
evenly spaced times whatever the engine does (an open loop), each one's
latency counted from when it was due to its completion (LOAD P50/P95/P99);
LOAD DONE/S is the tasks completed per second, below the rate asked when the
engine fell behind. A load run of fewer than 100 tasks is skipped, saying
why.

With --burn-down N, measure a backlog's drain instead: an engine without
workers creates N tasks of one shape (--shapes, default single), then a fresh
engine (workers and orchestration on) drains them. It reports tasks/s, counting
only completions committed, and over the drain: CPU per task of this process
(GO CPU) and, on PostgreSQL, of the server's processes on this machine (the
drain's backends, PG CPU, and the background ones such as the WAL writer, PG
BG CPU); heap objects this process allocated per task (GO ALLOCS); round
trips, statements and rows inserted, updated and deleted per task. --json
prints the figures as JSON.

The garbage collector's target is that of tasker serve and tasker worker,
whose engine this measures: GOGC=400 unless GOGC is set.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tune.ServerGC() // as tasker serve and tasker worker run
			if burn.CPUProfile != "" && !cmd.Flags().Changed("burn-down") {
				return usageError{fmt.Errorf("--cpuprofile profiles a burn-down: give --burn-down N too")}
			}
			if o.ReportGroups < 0 || o.ReportGroups > 256 {
				return usageError{fmt.Errorf("--report-groups %d: give between 1 and 256, or 0 for the default (one per CPU, up to 8)", o.ReportGroups)}
			}
			if o.ReportGroups > 0 && o.DatabaseURL == "" {
				return usageError{fmt.Errorf("--report-groups applies to PostgreSQL, whose report transactions run side by side: give --database-url too (SQLite stores one group at a time)")}
			}
			switch messaging {
			case "", "postgres":
				o.AMQPURL = ""
			case "rabbitmq":
				if o.DatabaseURL == "" || o.AMQPURL == "" {
					return usageError{fmt.Errorf("--messaging rabbitmq needs --database-url (the store and its outbox) and --amqp-url (or TASKER_AMQP_URL)")}
				}
				if cmd.Flags().Changed("burn-down") {
					return usageError{fmt.Errorf("--burn-down runs on the database's own queues: drop --messaging rabbitmq")}
				}
			default:
				return usageError{fmt.Errorf("--messaging %q: use postgres or rabbitmq", messaging)}
			}
			if cmd.Flags().Changed("burn-down") {
				if cmd.Flags().Changed("load") {
					return usageError{fmt.Errorf("--load runs after each shape's saturation run, which a burn-down does not have: drop --load or --burn-down")}
				}
				burn.Backend = o.Backend
				burn.Logger = g.logger()
				return runBurnDown(cmd, g, burn, shapes, asJSON)
			}
			if shapes != "" {
				for _, s := range strings.Split(shapes, ",") {
					o.Shapes = append(o.Shapes, strings.TrimSpace(s)+"_workflow")
				}
			}
			if o.Sequential < 1 || o.InFlight < 1 || o.Saturation <= 0 || o.Idle < 0 {
				return usageError{fmt.Errorf("--tasks, --in-flight and --duration must be positive, --idle not negative")}
			}
			if !(o.Load >= 0 && o.Load < 1) {
				return usageError{fmt.Errorf("--load %g: give a fraction of the saturation rate, at least 0 and below 1, such as 0.5 (0, the default: no load run)", o.Load)}
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
			if o.Load > 0 {
				fmt.Fprint(tw, "\tLOAD ASKED/S\tLOAD DONE/S\tLOAD P50\tLOAD P95\tLOAD P99")
			}
			if pg {
				fmt.Fprint(tw, "\tRT/STEP\tRT/STEP SAT\tIDLE RT/S")
			}
			fmt.Fprintln(tw)
			for _, r := range reports {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f", strings.TrimSuffix(r.Shape, "_workflow"), r.Steps,
					ms(r.P50), ms(r.P95), ms(r.P99), r.InFlight, r.TasksPerSec, r.StepsPerSec)
				if o.Load > 0 && r.LoadSkipped != "" {
					fmt.Fprint(tw, "\t-\t-\t-\t-\t-")
				} else if o.Load > 0 {
					fmt.Fprintf(tw, "\t%.0f\t%.0f\t%s\t%s\t%s", r.LoadRate, r.LoadRateReached, ms(r.LoadP50), ms(r.LoadP95), ms(r.LoadP99))
				}
				if pg {
					fmt.Fprintf(tw, "\t%.2f\t%.2f\t%.2f", r.TripsPerStep, r.TripsPerStepSaturated, r.IdleTripsPerSec)
				}
				fmt.Fprintln(tw)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range reports {
				if r.LoadSkipped != "" {
					fmt.Fprintf(g.stdout, "%s: no load run: %s\n", strings.TrimSuffix(r.Shape, "_workflow"), r.LoadSkipped)
				}
				if r.LoadLimited {
					fmt.Fprintf(g.stdout, "%s: the load run reached the bound of %d tasks in flight: the engine fell behind the rate asked, so the run was not an open loop throughout\n",
						strings.TrimSuffix(r.Shape, "_workflow"), bench.MaxLoadInFlight)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&shapes, "shapes", "", "comma-separated shapes to run: single, linear, diamond, dag, tree (default all; with --burn-down one, default single)")
	cmd.Flags().IntVar(&o.Sequential, "tasks", 200, "tasks per shape run one at a time for latency")
	cmd.Flags().IntVar(&o.InFlight, "in-flight", 64, "tasks kept in flight for throughput")
	cmd.Flags().DurationVar(&o.Saturation, "duration", 3*time.Second, "how long each shape runs at saturation")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the temporary database (default: the system's)")
	cmd.Flags().StringVar(&o.DatabaseURL, "database-url", "", "run on this PostgreSQL database, in a temporary schema")
	messagingFlags(cmd, &messaging, &o.AMQPURL)
	cmd.Flags().IntVar(&burn.Tasks, "burn-down", 0, "measure the drain of a backlog of this many tasks instead")
	cmd.Flags().IntVar(&o.ReportGroups, "report-groups", 0, "transactions storing outcomes at once on PostgreSQL (default: one per CPU, up to 8)")
	cmd.Flags().IntVar(&burn.WorkerConcurrency, "worker-concurrency", 0, "with --burn-down: the draining engine's worker concurrency (default: the engine's)")
	cmd.Flags().StringVar(&burn.CPUProfile, "cpuprofile", "", "with --burn-down: write a CPU profile of the drain to this file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --burn-down: print the figures as JSON")
	cmd.Flags().Float64Var(&o.Load, "load", 0, "also run each shape at this fraction of its saturation rate, e.g. 0.5, and report the latency there")
	cmd.Flags().DurationVar(&o.Idle, "idle", 10*time.Second, "with --database-url: how long to count the idle engine's round trips after each shape")
	cmd.AddCommand(newBenchAPICmd(g))
	return cmd
}

func runBurnDown(cmd *cobra.Command, g *globals, o bench.BurnDownOptions, shapes string, asJSON bool) error {
	if o.Tasks < 1 || o.WorkerConcurrency < 0 {
		return usageError{fmt.Errorf("--burn-down must be positive and --worker-concurrency not negative")}
	}
	if strings.Contains(shapes, ",") {
		return usageError{fmt.Errorf("--burn-down runs one shape: give one to --shapes, such as single")}
	}
	if shapes != "" {
		o.Shape = strings.TrimSpace(shapes) + "_workflow"
	}
	dir, err := os.MkdirTemp(o.Dir, "tasker-bench-")
	if err != nil {
		return fmt.Errorf("bench: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	r, err := bench.BurnDown(cmd.Context(), o)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "SHAPE\tTASKS\tCREATE\tDRAIN\tTASKS/S\tSTEPS/S\tGO CPU/TASK\tGO ALLOCS/TASK")
	pg := r.Backend == "postgres"
	if pg {
		fmt.Fprint(tw, "\tPG CPU/TASK\tPG BG CPU/TASK\tRT/TASK\tSTMTS/TASK\tROWS INS/UPD/DEL PER TASK")
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "%s\t%d\t%.2fs\t%.2fs\t%.0f\t%.0f\t%.0fµs\t%.0f", strings.TrimSuffix(r.Shape, "_workflow"), r.Tasks,
		r.CreateSeconds, r.DrainSeconds, r.TasksPerSec, r.StepsPerSec, r.GoCPUPerTaskMicros, r.GoAllocsPerTask)
	if pg {
		cpu, bg := "n/a", "n/a"
		if r.PGCPUMeasured {
			cpu, bg = fmt.Sprintf("%.0fµs", r.PGBackendCPUPerTaskMicros), fmt.Sprintf("%.0fµs", r.PGBackgroundCPUPerTaskMicros)
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%.2f\t%.2f\t%.2f / %.2f / %.2f", cpu, bg, r.TripsPerTask, r.StatementsPerTask,
			r.RowsInsertedPerTask, r.RowsUpdatedPerTask, r.RowsDeletedPerTask)
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func newBenchAPICmd(g *globals) *cobra.Command {
	var o bench.APIOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Measure the REST API: POST /v1/tasks and GET /v1/tasks/{uuid} against the in-process CreateTask",
		Long: `Serve the API of an engine on a fresh database (embedded, or PostgreSQL with
--database-url, in a temporary schema) on a loopback port, and measure with 1
and 32 concurrent clients (--clients): the in-process Engine.CreateTask (the
floor), POST /v1/tasks and GET /v1/tasks/{uuid}, taking turns for --rounds
rounds of --duration in all per mode. Reports p50, p95 and calls per second,
and the ratio of the HTTP create's p50 to the in-process one's. The created
single-step tasks run (a noop step) in the same process, as in a server.

Per call it also reports this process's CPU (GO CPU: server, clients and the
steps' runs together) and heap allocations (ALLOCS, KB), and on PostgreSQL the CPU of the run's server backends
(PG CPU, when the server is local), the round trips (RT) and the statements
(STMTS): figures the machine's other load does not move as it moves wall-clock
ones. --cpuprofile writes a CPU profile of the measurement. The garbage
collector's target is tasker serve's: GOGC=400 unless GOGC is set.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Duration <= 0 || o.Rounds < 1 {
				return usageError{fmt.Errorf("--duration must be positive and --rounds at least 1")}
			}
			for _, n := range o.Clients {
				if n < 1 || n > 1024 {
					return usageError{fmt.Errorf("--clients %d: give 1 to 1024", n)}
				}
			}
			tune.ServerGC() // as tasker serve runs
			dir, err := os.MkdirTemp(o.Dir, "tasker-bench-api-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			o.Dir = dir
			o.Logger = g.logger()
			rs, err := bench.RunAPI(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return g.printJSON(rs)
			}
			backend := "sqlite"
			if o.DatabaseURL != "" {
				backend = "postgres"
			}
			tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
			pg := o.DatabaseURL != ""
			fmt.Fprint(tw, "BACKEND\tCLIENTS\tMODE\tCALLS\tCALLS/S\tP50\tP95\tP50 / IN-PROCESS\tGO CPU\tALLOCS\tKB\t")
			if pg {
				fmt.Fprint(tw, "PG CPU\tRT\tSTMTS\t")
			}
			fmt.Fprintln(tw)
			floor := map[int]time.Duration{}
			for _, r := range rs {
				if r.Mode == bench.ModeInProcess {
					floor[r.Clients] = r.P50
				}
			}
			for _, r := range rs {
				ratio := "-"
				if r.Mode == bench.ModeHTTPCreate && floor[r.Clients] > 0 {
					ratio = fmt.Sprintf("%.2fx", float64(r.P50)/float64(floor[r.Clients]))
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.0f\t%s\t%s\t%s\t%.0fµs\t", backend, r.Clients, r.Mode, r.Ops, r.PerSec,
					r.P50.Round(time.Microsecond), r.P95.Round(time.Microsecond), ratio, r.GoCPUPerCallMicros)
				fmt.Fprintf(tw, "%.0f\t%.1f\t", r.AllocsPerCall, r.BytesPerCall/1024)
				if pg {
					pgCPU := "-"
					if r.PGCPUMeasured {
						pgCPU = fmt.Sprintf("%.0fµs", r.PGCPUPerCallMicros)
					}
					fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t", pgCPU, r.TripsPerCall, r.StatementsPerCall)
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntSliceVar(&o.Clients, "clients", []int{1, 32}, "concurrent clients to measure with")
	cmd.Flags().DurationVar(&o.Duration, "duration", 3*time.Second, "time per mode and concurrency, over all rounds")
	cmd.Flags().IntVar(&o.Rounds, "rounds", 3, "times the modes take turns")
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory for the temporary database (default: the system's)")
	cmd.Flags().StringVar(&o.DatabaseURL, "database-url", "", "run on this PostgreSQL database, in a temporary schema")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	cmd.Flags().StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measurement to this file")
	return cmd
}
