package taskertype

import (
	"fmt"
	"strings"
)

// Mermaid draws the task and step state machines as mermaid state diagrams,
// from the rule tables themselves; docs/state-machines.md holds this text and
// a test keeps the two the same.
func Mermaid() (task, step string) {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n    [*] --> pending\n")
	cancel := map[TaskState]bool{}
	for _, r := range TaskRules {
		if r.Event == TaskEventCancel {
			cancel[r.From] = true
			continue
		}
		fmt.Fprintf(&b, "    %s --> %s: %s\n", r.From, r.To, r.Event)
	}
	b.WriteString("    note right of cancelled: cancel moves every non-terminal state here\n")
	for _, s := range TaskStates {
		if s.Terminal() && s != TaskError {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	task = b.String()

	b.Reset()
	b.WriteString("stateDiagram-v2\n    [*] --> pending\n")
	for _, r := range StepRules {
		switch r.Event {
		case StepEventCancel, StepEventResolveManually, StepEventCompleteManually:
			continue
		}
		fmt.Fprintf(&b, "    %s --> %s: %s\n", r.From, r.To, r.Event)
	}
	b.WriteString("    note right of resolved_manually: operators move any non-terminal step here, to complete (complete_manually) or to cancelled\n")
	for _, s := range StepStates {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	return task, b.String()
}
