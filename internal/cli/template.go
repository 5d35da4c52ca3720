package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker/template"
)

func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Work with task templates"}
	cmd.AddCommand(newTemplateValidateCmd(g), newTemplateShowCmd(g), newTemplateListCmd(g), newTemplateGetCmd(g))
	return cmd
}

func newTemplateValidateCmd(g *globals) *cobra.Command {
	var o template.Loader
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check template files, or every *.yaml/*.yml in directories",
		Long: `Check template files, or every *.yaml and *.yml file directly inside the given
directories, in either dialect: tasker's own or tasker-core's (docs/templates.md).
Every problem is listed with its file, line, step and a hint. Keys a tasker-core
template carries that tasker-core itself ignores are warnings, on stderr;
--strict makes them errors.

Exit code 0: all valid; 2: a problem was found.`,
		Example: `  tasker template validate examples
  tasker template validate --strict --environment test templates/`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := o.LoadPaths(args...)
			var ve *template.ValidationError
			if errors.As(err, &ve) {
				g.printWarnings(ve.Warnings)
			}
			for _, t := range ts {
				g.printWarnings(t.Warnings)
			}
			if err != nil {
				return err
			}
			for _, t := range ts {
				noun := "steps"
				if len(t.Steps) == 1 {
					noun = "step"
				}
				fmt.Fprintf(g.stdout, "ok  %s  %s (%d %s, %s dialect)\n", t.Source, t.Key(), len(t.Steps), noun, t.Dialect)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "make warnings (keys tasker-core ignores, overrides of unknown steps) errors")
	environmentFlag(cmd, &o.Environment)
	return cmd
}

func newTemplateShowCmd(g *globals) *cobra.Command {
	var o template.Loader
	var mermaidOnly bool
	cmd := &cobra.Command{
		Use:   "show TEMPLATE_FILE",
		Short: "Print a template as resolved, and its DAG as Mermaid",
		Long: `Print a template as the engine stores it: resolved for the environment
(--environment, TASKER_ENV, default production: a tasker-core template's
environments overrides applied), every default spelt out, in the tasker
dialect's canonical JSON; then its DAG as a Mermaid flowchart (graph TD), as
tasker-core's visualize draws it.`,
		Example: `  tasker template show examples/diamond.yaml
  tasker template show --mermaid-only approval.yaml > approval.mmd`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.loadTemplateFileWith(args[0], o)
			if err != nil {
				return err
			}
			if mermaidOnly {
				fmt.Fprint(g.stdout, t.Mermaid())
				return nil
			}
			doc, err := template.Marshal(t)
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, doc, "", "  "); err != nil {
				return err
			}
			env := t.Environment
			if env == "" {
				env = "none"
			}
			fmt.Fprintf(g.stdout, "# %s: %s, %s dialect, environment overrides applied: %s\n", t.Source, t.Key(), t.Dialect, env)
			fmt.Fprintf(g.stdout, "%s\n\n", pretty.Bytes())
			fmt.Fprint(g.stdout, t.Mermaid())
			return nil
		},
	}
	cmd.Flags().BoolVar(&mermaidOnly, "mermaid-only", false, "print only the Mermaid flowchart")
	cmd.Flags().BoolVar(&o.Strict, "strict", false, "make warnings errors")
	environmentFlag(cmd, &o.Environment)
	return cmd
}
