// Package cli is the tasker command: a thin layer of cobra commands over the
// importable engine.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/taskertype"
)

// Exit codes.
const (
	ExitOK       = 0 // the command did what was asked; a task completed
	ExitFailed   = 1 // a task ended in a state other than complete, or the engine failed
	ExitBadInput = 2 // the input was wrong: arguments, files, JSON, templates
	// ExitConn (3, remote.go): the server could not be reached, or refused
	// the credentials.
)

// usageError is a mistake in the command line itself.
type usageError struct{ error }

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var code int
	root := newRoot(stdout, stderr, &code)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, errorLine(err))
		if hint := hintFor(err); hint != "" {
			fmt.Fprintln(stderr, "hint:", hint)
		}
		return exitCode(err)
	}
	return code
}

// errorLine renders err for stderr with one "tasker: " prefix: the engine's
// own errors already start with it.
func errorLine(err error) string {
	return "tasker: " + strings.TrimPrefix(err.Error(), "tasker: ")
}

func exitCode(err error) int {
	if conn, _ := connProblem(err); conn {
		return ExitConn
	}
	if code := apiExitCode(err); code != 0 {
		return code
	}
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, taskertype.ErrInvalid), errors.Is(err, taskertype.ErrNotFound),
		errors.Is(err, taskertype.ErrDuplicateTask),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return ExitBadInput
	case strings.HasPrefix(err.Error(), "unknown command"): // cobra's, for an unknown subcommand
		return ExitBadInput
	}
	return ExitFailed
}

func hintFor(err error) string {
	if conn, hint := connProblem(err); conn {
		return hint
	}
	switch {
	case strings.HasPrefix(err.Error(), "unknown command"):
		return "run 'tasker --help' for the commands"
	case errors.Is(err, sqlitedb.ErrLocked):
		return "the embedded backend (--db) is used by one process at a time: 'tasker serve' and 'tasker run' on it run the workers themselves; " +
			"for separate serve and worker processes use PostgreSQL (--database-url or TASKER_DATABASE_URL, after 'tasker migrate')"
	}
	return ""
}

type globals struct {
	stdout, stderr io.Writer
	verbose        bool
	code           *int
}

func (g *globals) logger() *slog.Logger {
	if !g.verbose {
		return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newRoot(stdout, stderr io.Writer, code *int) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr, code: code}
	root := &cobra.Command{
		Use:           "tasker",
		Short:         "Tasker runs workflows: DAGs of steps declared in YAML",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what the engine does (to stderr)")
	root.AddCommand(newRunCmd(g), newResumeCmd(g), newTemplateCmd(g), newTaskCmd(g), newBenchCmd(g),
		newMigrateCmd(g), newServeCmd(g), newWorkerCmd(g), newDeadLettersCmd(g), newDLQCmd(g), newAuthCmd(g))
	return root
}

// database holds the flags that choose the database: the embedded SQLite
// file, or PostgreSQL when url is set.
type database struct{ url, db string }

// databaseFlags registers --db and --database-url.
func databaseFlags(cmd *cobra.Command, d *database) {
	dbFlag(cmd, &d.db)
	cmd.Flags().StringVar(&d.url, "database-url", os.Getenv("TASKER_DATABASE_URL"),
		"PostgreSQL URL (env TASKER_DATABASE_URL); when set, --db is ignored")
}

// maxContextFlag registers --max-context-bytes (Config.MaxContextBytes).
func maxContextFlag(cmd *cobra.Command, n *int) {
	cmd.Flags().IntVar(n, "max-context-bytes", tasker.DefaultMaxContextBytes,
		"the largest task context accepted, in bytes of JSON (negative: no bound)")
}

// maxResultFlag registers --max-result-bytes (Config.MaxResultBytes).
func maxResultFlag(cmd *cobra.Command, n *int) {
	cmd.Flags().IntVar(n, "max-result-bytes", tasker.DefaultMaxResultBytes,
		"the largest step result stored, in bytes of JSON; a larger one fails its step for good (negative: no bound)")
}

// dbFlag registers the --db flag, defaulting to $TASKER_DB or ./tasker.db.
func dbFlag(cmd *cobra.Command, path *string) {
	def := os.Getenv("TASKER_DB")
	if def == "" {
		def = "tasker.db"
	}
	cmd.Flags().StringVar(path, "db", def, "SQLite database file of the embedded backend (env TASKER_DB)")
}
