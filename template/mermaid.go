package template

import (
	"fmt"
	"strings"
)

// Mermaid draws the template's DAG as a Mermaid flowchart ("graph TD"), as
// tasker-core's visualize does: one node per step, shaped by its type
// (standard [ ], decision { }, deferred_convergence ([ ]), batchable [/ /],
// batch_worker [[ ]]), and an edge from each dependency to its dependent.
// The edges that exist only once a decision chose them, or a batchable step
// created its workers, are dotted.
func (t *Template) Mermaid() string {
	var b strings.Builder
	b.WriteString("graph TD\n")
	types := make(map[string]StepType, len(t.Steps))
	for i := range t.Steps {
		s := &t.Steps[i]
		types[s.Name] = s.TypeOf()
		label := s.Name
		if ty := s.TypeOf(); ty != StepStandard {
			label += "<br/><i>" + string(ty) + "</i>"
		}
		open, closing := "[", "]"
		switch s.TypeOf() {
		case StepDecision:
			open, closing = "{", "}"
		case StepDeferredConvergence:
			open, closing = "([", "])"
		case StepBatchable:
			open, closing = "[/", "/]"
		case StepBatchWorker:
			open, closing = "[[", "]]"
		}
		fmt.Fprintf(&b, "    %s%s\"%s\"%s\n", s.Name, open, mermaidText(label), closing)
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		for _, d := range s.DependsOn {
			arrow := "-->"
			switch {
			case types[d] == StepDecision:
				arrow = "-. may create .->"
			case types[d] == StepBatchable && s.TypeOf() == StepBatchWorker:
				arrow = "-. creates workers .->"
			case types[d] == StepBatchWorker:
				arrow = "-.->"
			}
			fmt.Fprintf(&b, "    %s %s %s\n", d, arrow, s.Name)
		}
	}
	return b.String()
}

// mermaidText escapes a label for a quoted Mermaid node text.
func mermaidText(s string) string {
	return strings.ReplaceAll(s, `"`, "#quot;")
}
