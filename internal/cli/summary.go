package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
)

// summaryJSON is the --output json form of a finished task.
type summaryJSON struct {
	ID        uuid.UUID         `json:"id"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	State     tasker.TaskState  `json:"state"`
	Duration  string            `json:"duration"`
	Steps     []stepSummaryJSON `json:"steps"`
	// Request: the task request's fields (docs/identity.md).
	Request *requestJSON `json:"request,omitempty"`
}

type stepSummaryJSON struct {
	Name     string              `json:"name"`
	State    tasker.StepState    `json:"state"`
	Attempts int                 `json:"attempts"`
	Duration string              `json:"duration"`
	Result   json.RawMessage     `json:"result,omitempty"`
	Failure  *tasker.StepFailure `json:"failure,omitempty"`
}

// summarize prints each task's final state and steps, and sets the exit
// code: 0 when every task completed.
func (g *globals) summarize(ctx context.Context, eng *tasker.Engine, ids []uuid.UUID, output string) error {
	*g.code = ExitOK
	for _, id := range ids {
		info, err := eng.Task(ctx, id)
		if err != nil {
			return err
		}
		if info.Task.State != tasker.TaskState("complete") {
			*g.code = ExitFailed
		}
		if output == "json" {
			if err := json.NewEncoder(g.stdout).Encode(toSummaryJSON(info)); err != nil {
				return err
			}
			continue
		}
		printSummary(g, info)
	}
	return nil
}

func toSummaryJSON(info *tasker.TaskInfo) summaryJSON {
	t := info.Task
	s := summaryJSON{ID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, State: t.State, Duration: span(t.CreatedAt, t.FinishedAt).String(),
		Request: toRequestJSON(&t.Request)}
	for _, st := range info.Steps {
		s.Steps = append(s.Steps, stepSummaryJSON{
			Name: st.Name, State: st.State, Attempts: st.Attempts, Duration: span(st.StartedAt, st.FinishedAt).String(),
			Result: st.Result, Failure: st.Failure,
		})
	}
	return s
}

func printSummary(g *globals, info *tasker.TaskInfo) {
	t := info.Task
	fmt.Fprintf(g.stdout, "task %s %s/%s@%s: %s in %s\n", t.ID, t.Namespace, t.Name, t.Version, t.State, round(span(t.CreatedAt, t.FinishedAt)))
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tATTEMPTS\tDURATION\tRESULT")
	for _, s := range info.Steps {
		out := string(s.Result)
		if s.Failure != nil && s.State != "complete" {
			out = fmt.Sprintf("%s failure: %s", s.Failure.Kind, firstLine(s.Failure.Message))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, s.Attempts, round(span(s.StartedAt, s.FinishedAt)), clip(out, 80))
	}
	tw.Flush()
}

func span(from, to time.Time) time.Duration {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from)
}

func round(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}
