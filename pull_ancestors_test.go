package tasker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	tasker "github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/template"
)

// TestAPullStepCarriesItsAncestorsResults: the transaction that starts a
// pull worker's step gives it the result of every completed ancestor it
// holds, so that the pull route need not read them (PullEvent.Ancestors);
// a Go handler's step is not given them (it does not ask).
func TestAPullStepCarriesItsAncestorsResults(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var mu sync.Mutex
		goSaw := map[string]bool{} // step name: StepInput.Ancestors was set
		goHandler := tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			mu.Lock()
			goSaw[in.StepName] = in.Ancestors != nil
			mu.Unlock()
			return map[string]string{"n": in.StepName}, nil
		})
		tpl, err := template.Parse("chain.yaml", []byte(`name: chain
namespace: test
version: 1.0.0
steps:
  - {name: a, handler: go.step}
  - {name: b, handler: py.step, depends_on: [a]}
  - {name: c, handler: py.step, depends_on: [b]}
  - {name: d, handler: go.step, depends_on: [c]}
`))
		must(t, err)
		cfg := database(t, backend)
		cfg.Templates = []*template.Template{tpl}
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		must(t, eng.RegisterHandler("go.step", goHandler))
		must(t, eng.RegisterPullHandler("py.step"))
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		events := map[string]map[string]json.RawMessage{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				ev, err := h.eng.Pull().PollWait(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				events[ev.StepName] = ev.Ancestors
				mu.Unlock()
				h.eng.Pull().Complete(ev.ID, tasker.PullResult{Output: json.RawMessage(fmt.Sprintf(`{"n": %q}`, ev.StepName))})
			}
		}()
		task, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "chain"})
		must(t, err)
		wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer wcancel()
		if st, err := h.eng.WaitTask(wctx, task.ID); err != nil || st.State != "complete" {
			t.Fatalf("task: %+v, %v", st, err)
		}
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if goSaw["a"] || goSaw["d"] {
			t.Errorf("a Go handler's step was given its ancestors: %v", goSaw)
		}
		c := events["c"]
		if c == nil && backend != "sqlite" {
			// On PostgreSQL a claim that fell back to one message at a
			// time holds only the step: the pull route reads them.
			t.Logf("c's event carries no ancestors on %s (the starting transaction did not hold them)", backend)
			return
		}
		if c == nil {
			t.Fatalf("c's event carries no ancestors: on SQLite the starting transaction holds the task's steps (events %v)", events)
		}
		if len(c) != 2 || string(c["a"]) != `{"n":"a"}` || !jsonSame(c["b"], `{"n": "b"}`) {
			t.Errorf("c's ancestors: a %s, b %s (%d), want a and b", c["a"], c["b"], len(c))
		}
	})
}

func jsonSame(a json.RawMessage, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}
