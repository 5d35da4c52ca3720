package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/tune"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/template"
)

// backend holds the flags that choose the database.
type backend struct {
	database
	autoMigrate bool
	claim       time.Duration
	maxQueued   int
	aging       time.Duration
	replace     bool          // --replace-templates
	messaging   string        // --messaging: postgres or rabbitmq
	amqpURL     string        // --amqp-url
	amqpPrefix  string        // --amqp-prefix
	clockOffset time.Duration // for tests: skews the engine's clock
}

// offsetClock is the wall clock moved by a fixed offset: the fault tests
// run processes whose clocks disagree (--clock-offset).
type offsetClock struct{ d time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.d) }

func backendFlags(cmd *cobra.Command, b *backend) {
	databaseFlags(cmd, &b.database)
	cmd.Flags().BoolVar(&b.autoMigrate, "migrate", false, "apply the PostgreSQL schema migrations first")
	messagingFlags(cmd, &b.messaging, &b.amqpURL)
	cmd.Flags().StringVar(&b.amqpPrefix, "amqp-prefix", os.Getenv("TASKER_AMQP_PREFIX"),
		"with --messaging rabbitmq: put this before every name declared on the broker, so that several installations share a virtual host (env TASKER_AMQP_PREFIX)")
	cmd.Flags().DurationVar(&b.claim, "claim-timeout", 0, "how long a claimed message stays hidden: a dead process's work comes back after it; workers renew the claims of running steps every third of it (default 30s)")
	cmd.Flags().BoolVar(&b.replace, "replace-templates", false, "a template whose definition differs from the one stored under its version replaces it (logged; tasks created before keep their steps; other processes see it after their template cache's TTL, 1m) instead of being refused")
	cmd.Flags().DurationVar(&b.aging, "priority-aging", 0, "the waiting one point of task priority is worth when workers claim steps (default 10s; 1ms to 1h; the same for every process of a database)")
	cmd.Flags().IntVar(&b.maxQueued, "max-queued-steps", 0, "refuse new tasks while their namespace's queue holds this many steps waiting for a worker (default 10000; negative: no bound)")
	// For the fault tests only: a process whose clock is wrong.
	cmd.Flags().DurationVar(&b.clockOffset, "clock-offset", 0, "for tests: add this to the engine's clock")
	_ = cmd.Flags().MarkHidden("clock-offset")
}

func (b *backend) config(g *globals) tasker.Config {
	cfg := tasker.Config{DatabasePath: b.db, DatabaseURL: b.url, AutoMigrate: b.autoMigrate, ClaimTimeout: b.claim,
		MaxQueuedSteps: b.maxQueued, PriorityAging: b.aging, ReplaceTemplates: b.replace, Logger: g.logger(),
		Messaging: b.messaging, AMQPURL: b.amqpURL, AMQPPrefix: b.amqpPrefix}
	if b.clockOffset != 0 {
		cfg.Clock = offsetClock{b.clockOffset}
	}
	return cfg
}

// messagingFlags registers --messaging and --amqp-url.
func messagingFlags(cmd *cobra.Command, messaging, amqpURL *string) {
	cmd.Flags().StringVar(messaging, "messaging", cmp.Or(os.Getenv("TASKER_MESSAGING"), tasker.MessagingPostgres),
		"where the queues live with --database-url: postgres (the database's own) or rabbitmq (the broker at --amqp-url; env TASKER_MESSAGING)")
	cmd.Flags().StringVar(amqpURL, "amqp-url", os.Getenv("TASKER_AMQP_URL"),
		"the RabbitMQ broker of --messaging rabbitmq, e.g. amqp://guest:guest@127.0.0.1:5672/ (env TASKER_AMQP_URL)")
}

func newMigrateCmd(g *globals) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the PostgreSQL schema migrations (safe from several processes at once)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				return usageError{fmt.Errorf("no database: pass --database-url or set TASKER_DATABASE_URL")}
			}
			if err := storepg.Migrate(cmd.Context(), storepg.Config{URL: url, Logger: g.logger()}); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "schema up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "database-url", os.Getenv("TASKER_DATABASE_URL"), "PostgreSQL URL (env TASKER_DATABASE_URL)")
	return cmd
}

func newServeCmd(g *globals) *cobra.Command {
	var b backend
	var shutdown time.Duration
	var namespaces []string
	var maxResult int
	var web httpServe
	var templatesDir string
	var workers bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run orchestration until interrupted (any number of processes may serve one database)",
		Long: `Run orchestration: take new tasks and step results from the database's queues,
move the tasks on, retry, finalize. On PostgreSQL (--database-url), workers
run in other processes ('tasker worker'). Stops gracefully on SIGINT or
SIGTERM.

On the embedded backend (--db) this process locks the database file, so no
other tasker process can open it: serve runs the workers itself, with the
built-in demo handlers, for the namespaces of the database's unfinished
tasks and those named with --namespace.

The garbage collector's target is GOGC=400 unless the GOGC environment
variable is set (docs/benchmarks.md); GOMEMLIMIT bounds the heap.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			gc := tune.ServerGC()
			g.logger().Debug("garbage collector target", "gogc", gc)
			if web.maxBody <= 0 {
				return usageError{fmt.Errorf("--max-body-bytes %d: give a positive number of bytes", web.maxBody)}
			}
			if err := web.load(); err != nil {
				return err
			}
			cfg := b.config(g)
			if web.addr != "" {
				// Pull workers over HTTP (docs/workers.md): a step whose
				// handler is not built in goes to the registered workers
				// that serve it.
				cfg.PullUnregistered = true
				cfg.Pull = tasker.PullConfig{Capacity: web.pullCapacity, CompleteTimeout: web.pullComplete}
			}
			if templatesDir != "" {
				tpls, err := template.Loader{}.LoadPaths(templatesDir)
				if err != nil {
					return usageError{fmt.Errorf("--templates %s: %w", templatesDir, err)}
				}
				cfg.Templates = tpls
			}
			ctx := withHTTP(cmd.Context(), &web)
			if b.url != "" {
				if len(namespaces) > 0 && !workers {
					return usageError{fmt.Errorf("--namespace applies to the embedded backend, or with --workers: on PostgreSQL, run workers with 'tasker worker --namespace NS' or pass --workers")}
				}
				if !workers {
					cfg.DisableWorkers = true
					web.mode = "api_orchestration"
					return g.serveUntilDone(ctx, cfg, nil, shutdown, "orchestration")
				}
				cfg.WorkerNamespaces = templateNamespaces(cfg.Templates, namespaces)
				cfg.MaxResultBytes = maxResult
				web.mode = "all_in_one"
				return g.serveUntilDone(ctx, cfg, demo.Handlers(), shutdown, "orchestration and workers")
			}
			web.mode = "all_in_one"
			cfg.MaxResultBytes = maxResult
			return g.serveEmbedded(ctx, cfg, templateNamespaces(cfg.Templates, namespaces), shutdown)
		},
	}
	backendFlags(cmd, &b)
	cmd.Flags().DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long a stop waits for work in hand")
	cmd.Flags().StringSliceVarP(&namespaces, "namespace", "n", nil, "embedded backend only: a namespace whose steps to run besides those of the unfinished tasks (repeatable)")
	cmd.Flags().StringVar(&web.addr, "http", "127.0.0.1:8080", "serve the REST API (tasker-core's, docs/api.md) on this address; '' turns it off")
	cmd.Flags().Int64Var(&web.maxBody, "max-body-bytes", api.DefaultMaxBodyBytes, "largest request body the API accepts; a larger one is answered 413")
	cmd.Flags().StringVar(&web.authConfig, "auth-config", "", "turn API auth on with this YAML (or JSON) file: API keys and JWT verification, docs/api.md (default: no auth)")
	cmd.Flags().StringVar(&web.env, "environment", os.Getenv("TASKER_ENV"), "the deployment's name, reported by GET /config and the health routes (env TASKER_ENV)")
	cmd.Flags().DurationVar(&web.pullComplete, "pull-complete-timeout", 0, "how long a pull worker (docs/workers.md) may hold a step without completing it or sending a heartbeat; then the step fails as retryable (default 5m)")
	cmd.Flags().IntVar(&web.pullCapacity, "pull-capacity", 0, "most steps handed to pull workers at once, queued or held (default: the worker concurrency)")
	cmd.Flags().StringVar(&templatesDir, "templates", "", "register every template (*.yaml, *.yml) in this directory; with --workers their namespaces are served")
	cmd.Flags().BoolVar(&workers, "workers", false, "on PostgreSQL, also run the built-in demo Go workers in this process, for the namespaces of --templates and --namespace (the embedded backend always runs them)")
	maxResultFlag(cmd, &maxResult)
	cmd.Flags().Lookup("max-result-bytes").Usage = "embedded backend only (its workers run here): " + cmd.Flags().Lookup("max-result-bytes").Usage
	return cmd
}

// serveEmbedded serves an embedded database with its workers in this
// process: the database's lock keeps every other process out.
func (g *globals) serveEmbedded(ctx context.Context, cfg tasker.Config, namespaces []string, shutdown time.Duration) error {
	unfinished, err := g.unfinished(ctx, cfg)
	if err != nil {
		return err
	}
	for _, t := range unfinished {
		if !slices.Contains(namespaces, t.Namespace) {
			namespaces = append(namespaces, t.Namespace)
		}
	}
	which := "no namespace (the database has no unfinished task: name namespaces with --namespace)"
	if len(namespaces) > 0 {
		which = "the namespaces " + strings.Join(namespaces, ", ")
	}
	fmt.Fprintf(g.stderr, "tasker: note: this process locks the embedded database %s, so no other tasker process (worker, task create) can open it: "+
		"it runs the workers itself, with the built-in demo handlers, for %s; for workers in other processes use PostgreSQL (--database-url)\n",
		cfg.DatabasePath, which)
	cfg.WorkerNamespaces = namespaces
	return g.serveUntilDone(ctx, cfg, demo.Handlers(), shutdown, "orchestration and workers")
}

func newWorkerCmd(g *globals) *cobra.Command {
	var b backend
	var namespaces []string
	var shutdown time.Duration
	var concurrency, maxResult int
	var trace string
	cmd := &cobra.Command{
		Use:   "worker --namespace NS",
		Short: "Run Go workers (the built-in demo handlers) for namespaces until interrupted",
		Long: `Run workers that claim the steps of the given namespaces and run them with the
built-in demo handlers (a program of your own embeds the engine with its
handlers instead). Results go back to the orchestration processes
('tasker serve'). Stops gracefully on SIGINT or SIGTERM: running steps finish
or are released.

The garbage collector's target is GOGC=400 unless the GOGC environment
variable is set, as for serve; GOMEMLIMIT bounds the heap.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			gc := tune.ServerGC()
			g.logger().Debug("garbage collector target", "gogc", gc)
			if len(namespaces) == 0 {
				return usageError{fmt.Errorf("no namespace: pass --namespace NS (repeatable)")}
			}
			if concurrency < 0 {
				return usageError{fmt.Errorf("--concurrency %d: give a positive number, or 0 for the default", concurrency)}
			}
			cfg := b.config(g)
			cfg.DisableOrchestration = true
			cfg.WorkerNamespaces = namespaces
			cfg.WorkerConcurrency = concurrency
			cfg.MaxResultBytes = maxResult
			handlers := demo.Handlers()
			if trace != "" {
				f, err := os.OpenFile(trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				if err != nil {
					return fmt.Errorf("--demo-trace: %w", err)
				}
				defer f.Close()
				handlers = demo.Traced(handlers, f)
			}
			return g.serveUntilDone(cmd.Context(), cfg, handlers, shutdown, "workers")
		},
	}
	backendFlags(cmd, &b)
	cmd.Flags().StringSliceVarP(&namespaces, "namespace", "n", nil, "namespace whose steps to run (repeatable)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 0, "steps run at once (default 8 × CPUs, at least 100)")
	cmd.Flags().DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long a stop waits for running steps before releasing them")
	maxResultFlag(cmd, &maxResult)
	// For the fault tests only: a line per handler run (demo.Traced).
	cmd.Flags().StringVar(&trace, "demo-trace", "", "for tests: append a line per handler run to this file")
	_ = cmd.Flags().MarkHidden("demo-trace")
	return cmd
}

// serveUntilDone runs an engine until ctx ends (a signal), then stops it.
func (g *globals) serveUntilDone(ctx context.Context, cfg tasker.Config, handlers map[string]tasker.Handler, shutdown time.Duration, what string) error {
	eng, err := tasker.Open(ctx, cfg)
	if err != nil {
		return err
	}
	for name, h := range handlers {
		if err := eng.RegisterHandler(name, h); err != nil {
			_ = eng.Stop(ctx)
			return err
		}
	}
	// No step goes to pull workers before the API's registry of them
	// is up: it replaces this.
	eng.ServePullHandlers(func(string, string) bool { return false })
	// A start that fails stops what did start within --shutdown-timeout,
	// as a signal would.
	stopAfter := func(err error) error {
		sctx, cancel := context.WithTimeout(context.Background(), shutdown)
		defer cancel()
		if serr := eng.Stop(sctx); serr != nil {
			return errors.Join(err, fmt.Errorf("and stopping what had started: %w", serr))
		}
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return stopAfter(err)
	}
	g.logger().Info("running", "what", what, "pid", os.Getpid())
	web, err := g.startHTTP(ctx, eng)
	if err != nil {
		return stopAfter(err)
	}
	fmt.Fprintf(g.stderr, "tasker: %s running (pid %d); stop with Ctrl-C or SIGTERM\n", what, os.Getpid())
	var webErr error
	select {
	case <-ctx.Done():
	case webErr = <-web.failed:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdown)
	defer cancel()
	// The API drains first: requests in hand finish on the running engine.
	if err := web.stop(sctx); err != nil {
		g.logger().Warn("http shutdown", "error", err)
	}
	if webErr != nil {
		_ = eng.Stop(sctx)
		return webErr
	}
	if err := eng.Stop(sctx); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "tasker: %s stopped\n", what)
	return nil
}

func newCreateCmd(g *globals) *cobra.Command {
	var b backend
	var taskCtx, output, environment string
	var wait bool
	var maxContext int
	var req requestFlags
	var r remote
	cmd := &cobra.Command{
		Use:   "create TEMPLATE_FILE | --server URL NAMESPACE/NAME[@VERSION]",
		Short: "Create a task in a database for the serving processes to run, or through a server's API (--server)",
		Long: `Create a task. Without --server, in the database (--db or --database-url) from
the template file given, for the serving processes to run. With --server (or
TASKER_SERVER), through that server's REST API from a template it has
registered: give NAMESPACE/NAME[@VERSION], or a template file to take them from.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			raw, err := parseContext(taskCtx)
			if err != nil {
				return err
			}
			if r.on() {
				return g.remoteCreate(cmd, &r, args[0], environment, raw, &req, wait, output)
			}
			tpl, err := g.loadTemplateFile(args[0], environment)
			if err != nil {
				return err
			}
			cfg := b.config(g)
			cfg.DisableOrchestration, cfg.DisableWorkers = true, true
			cfg.MaxContextBytes = maxContext
			cfg.Templates = []*template.Template{tpl}
			eng, err := tasker.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer g.stopEngine(eng)
			p := tasker.CreateTaskParams{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: raw}
			if err := req.apply(&p); err != nil {
				return err
			}
			task, err := eng.CreateTask(cmd.Context(), p)
			if err != nil {
				return err
			}
			if !wait {
				fmt.Fprintln(g.stdout, task.ID)
				return nil
			}
			if _, err := eng.WaitTask(cmd.Context(), task.ID); err != nil {
				return err
			}
			return g.summarize(cmd.Context(), eng, []uuid.UUID{task.ID}, output)
		},
	}
	backendFlags(cmd, &b)
	remoteFlags(cmd, &r)
	cmd.Flags().StringVarP(&taskCtx, "context", "c", "{}", "the task's context, a JSON object")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the task to finish and print its summary")
	req.register(cmd)
	maxContextFlag(cmd, &maxContext)
	outputFlag(cmd, &output)
	environmentFlag(cmd, &environment)
	return cmd
}
