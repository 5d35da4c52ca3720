package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tasker-go/tasker/template"
)

func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Work with task templates"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate PATH...",
		Short: "Check template files, or every *.yaml/*.yml in directories",
		Long: `Check template files, or every *.yaml and *.yml file directly inside the given
directories. Every problem is listed with its file, line, step and a hint.

Exit code 0: all valid; 2: a problem was found.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := template.LoadPaths(args...)
			if err != nil {
				return err
			}
			for _, t := range ts {
				fmt.Fprintf(g.stdout, "ok  %s  %s (%d steps)\n", t.Source, t.Key(), len(t.Steps))
			}
			return nil
		},
	})
	return cmd
}
