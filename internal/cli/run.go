package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/cli/contextflag"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/template"
)

type runOptions struct {
	db                    string
	context               string
	output                string
	quiet                 bool
	maxContext, maxResult int
	environment           string
	request               requestFlags
}

func newRunCmd(g *globals) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run TEMPLATE_FILE",
		Short: "Run one task of a template to completion on the embedded backend",
		Long: `Run one task of a template to completion on the embedded SQLite backend, showing
each step's state while it runs and a summary at the end. The built-in demo
handlers (demo.square, demo.add, demo.multiply, demo.sum, demo.noop, demo.sleep,
demo.flaky, demo.fail, demo.route) are registered.

Exit code 0: the task completed; 1: it ended otherwise; 2: bad input.`,
		Example: `  tasker run examples/linear.yaml --context '{"value": 3}'`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd.Context(), &o, args[0])
		},
	}
	dbFlag(cmd, &o.db)
	cmd.Flags().StringVarP(&o.context, "context", "c", "{}", "the task's context, a JSON object")
	outputFlag(cmd, &o.output)
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "do not show progress, only the summary")
	maxContextFlag(cmd, &o.maxContext)
	maxResultFlag(cmd, &o.maxResult)
	environmentFlag(cmd, &o.environment)
	o.request.register(cmd)
	return cmd
}

// environmentFlag registers --environment: the environment whose overrides
// a tasker-core template's environments section applies.
func environmentFlag(cmd *cobra.Command, env *string) {
	cmd.Flags().StringVar(env, "environment", os.Getenv("TASKER_ENV"),
		"the environment whose overrides tasker-core templates apply (env TASKER_ENV; default "+template.DefaultEnvironment+")")
}

// printWarnings writes the loader's warnings to stderr.
func (g *globals) printWarnings(ws []template.Problem) {
	for _, w := range ws {
		fmt.Fprintln(g.stderr, "warning: "+w.String())
	}
}

func outputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", "text", "summary format: text or json")
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return usageError{fmt.Errorf("--output %q: choose text or json", output)}
	}
	return nil
}

func parseContext(s string) (json.RawMessage, error) {
	raw, err := contextflag.Parse(s)
	if err != nil {
		return nil, usageError{err}
	}
	return raw, nil
}

// openEngine opens an engine with the demo handlers registered.
func (g *globals) openEngine(ctx context.Context, cfg tasker.Config) (*tasker.Engine, error) {
	cfg.Logger = g.logger()
	eng, err := tasker.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for name, h := range demo.Handlers() {
		if err := eng.RegisterHandler(name, h); err != nil {
			_ = eng.Stop(ctx)
			return nil, err
		}
	}
	return eng, nil
}

func (g *globals) run(ctx context.Context, o *runOptions, file string) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	raw, err := parseContext(o.context)
	if err != nil {
		return err
	}
	tpl, err := g.loadTemplateFile(file, o.environment)
	if err != nil {
		return err
	}
	// ReplaceTemplates: the developer's loop edits the file and runs it
	// again on the same database, without a version bump per edit.
	eng, err := g.openEngine(ctx, tasker.Config{DatabasePath: o.db, Templates: []*template.Template{tpl}, ReplaceTemplates: true,
		WorkerNamespaces: []string{tpl.Namespace}, MaxContextBytes: o.maxContext, MaxResultBytes: o.maxResult})
	if err != nil {
		return err
	}
	defer g.stopEngine(eng)
	sub, err := eng.Subscribe(tasker.EventFilter{}, 4096)
	if err != nil {
		return err
	}
	defer sub.Close()
	domain, err := eng.SubscribeDomainEvents("*", 4096)
	if err != nil {
		return err
	}
	defer domain.Close()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	p := tasker.CreateTaskParams{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: raw}
	if err := o.request.apply(&p); err != nil {
		return err
	}
	task, err := eng.CreateTask(ctx, p)
	var dup *tasker.DuplicateTaskError
	if errors.As(err, &dup) {
		// The same task exists (strict identity, or the same key): show it,
		// and say so, rather than run a second one (docs/identity.md).
		info, gerr := eng.Task(ctx, dup.ExistingID)
		if gerr != nil {
			return errors.Join(err, gerr)
		}
		fmt.Fprintf(g.stderr, "tasker: note: %s\ntasker: note: showing task %s; to run it again, pass --idempotency-key with a new key\n",
			strings.TrimPrefix(err.Error(), "tasker: "), dup.ExistingID)
		task, err = info.Task, nil
	}
	if err != nil {
		return err
	}
	names := make([]string, len(tpl.Steps))
	for i, s := range tpl.Steps {
		names[i] = s.Name
	}
	stopProgress := g.showProgress(sub, task, names, o.quiet)
	final, err := eng.WaitTask(ctx, task.ID)
	stopProgress()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(g.stderr, "interrupted: task %s is %s; continue it with: tasker resume --db %s %s\n", task.ID, final.State, o.db, task.ID)
			*g.code = ExitFailed
			return nil
		}
		return err
	}
	if o.output == "text" {
		g.printDomainEvents(domain)
	}
	return g.summarize(ctx, eng, []uuid.UUID{final.ID}, o.output)
}

// printDomainEvents prints the fast and broadcast domain events the task
// published (all were published before WaitTask returned); durable ones
// wait on their queue for Engine.ConsumeDomainEvents.
func (g *globals) printDomainEvents(s *tasker.DomainEventSubscription) {
	for {
		select {
		case e := <-s.C():
			fmt.Fprintf(g.stdout, "domain event %s: step %s, %s, %s: %s\n", e.Name, e.Metadata.StepName, e.Metadata.Outcome, e.Metadata.DeliveryMode, e.Payload)
		default:
			if n := s.Dropped(); n > 0 {
				fmt.Fprintf(g.stdout, "domain events: %d more did not fit in the buffer\n", n)
			}
			return
		}
	}
}

// loadTemplateFile loads the one template file a command takes; a
// directory is bad input, with the command that takes directories.
// Its warnings go to stderr.
func (g *globals) loadTemplateFile(path, environment string) (*template.Template, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, usageError{fmt.Errorf("%s is a directory, not a template file: name one template file in it; to check every template in the directory, run 'tasker template validate %s'",
			path, path)}
	}
	return g.loadTemplateFileWith(path, template.Loader{Environment: environment})
}

// loadTemplateFileWith is loadTemplateFile with any loader.
func (g *globals) loadTemplateFileWith(path string, o template.Loader) (*template.Template, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, usageError{fmt.Errorf("%s is a directory, not a template file: name one template file in it; to check every template in the directory, run 'tasker template validate %s'",
			path, path)}
	}
	tpl, err := o.LoadFile(path)
	var ve *template.ValidationError
	switch {
	case errors.As(err, &ve):
		g.printWarnings(ve.Warnings)
	case err == nil:
		g.printWarnings(tpl.Warnings)
	}
	return tpl, err
}

// stopEngine stops gracefully: steps in flight get a few seconds to finish.
func (g *globals) stopEngine(eng *tasker.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := eng.Stop(ctx); err != nil {
		fmt.Fprintln(g.stderr, errorLine(err))
	}
}

// exactArgs is cobra.ExactArgs with a usage error, so it exits with code 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w; usage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w; usage: %s", err, cmd.UseLine())}
		}
		return nil
	}
}

func parseTaskIDs(args []string) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(args))
	for i, a := range args {
		id, err := uuid.Parse(a)
		if err != nil {
			return nil, usageError{fmt.Errorf("%q is not a task id (a UUID such as 0193a5b2-...): %w", a, err)}
		}
		ids[i] = id
	}
	return ids, nil
}

var errNothing = errors.New("nothing to do")

func isTTY(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
