package tasker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

const sized = `name: sized
namespace: test
version: 1.0.0
steps:
  - {name: produce, handler: test.produce, retry: {max_attempts: 3, backoff: none}}
`

// A context over Config.MaxContextBytes is refused before anything is
// stored, and a result over MaxResultBytes fails its attempt for good
// without being stored; both errors name the limit and how to raise it.
func TestSizeLimits(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		tpl, err := template.Parse("sized.yaml", []byte(sized))
		must(t, err)
		cfg := database(t, backend)
		cfg.Templates, cfg.MaxContextBytes, cfg.MaxResultBytes = []*template.Template{tpl}, 64, 100
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		must(t, eng.RegisterHandler("test.produce", tasker.HandlerFunc(func(_ context.Context, in *tasker.StepInput) (any, error) {
			var c struct{ N int }
			if err := in.DecodeContext(&c); err != nil {
				return nil, err
			}
			return strings.Repeat("x", c.N), nil
		})))
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}

		t.Run("a context over the limit creates nothing", func(t *testing.T) {
			_, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "sized",
				Context: `{"n": 1, "padding": "` + strings.Repeat("p", 64) + `"}`})
			if !errors.Is(err, taskertype.ErrInvalid) {
				t.Fatalf("CreateTask: %v, want ErrInvalid", err)
			}
			for _, w := range []string{"context is 87 bytes", "limit of 64", "MaxContextBytes", "--max-context-bytes"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			tasks, err := eng.Tasks(t.Context(), 100)
			must(t, err)
			if len(tasks) != 0 {
				t.Fatalf("%d tasks stored", len(tasks))
			}
		})

		t.Run("a result within the limit is stored", func(t *testing.T) {
			info := h.run("sized", map[string]int{"n": 98}) // 100 bytes of JSON with the quotes
			if s := h.step(info, "produce"); info.Task.State != "complete" || len(s.Result) != 100 {
				t.Fatalf("task %s, result of %d bytes", info.Task.State, len(s.Result))
			}
		})

		t.Run("a result over the limit fails the step for good and is not stored", func(t *testing.T) {
			info := h.run("sized", map[string]int{"n": 99})
			s := h.step(info, "produce")
			if info.Task.State == "complete" || s.Attempts != 1 || s.Failure == nil || s.Failure.Retryable || len(s.Result) != 0 {
				t.Fatalf("task %s, step %s after %d attempts, failure %+v, result %q; want one permanent failure and no result",
					info.Task.State, s.State, s.Attempts, s.Failure, s.Result)
			}
			for _, w := range []string{"101 bytes", "limit of 100", "MaxResultBytes", "--max-result-bytes"} {
				if !strings.Contains(s.Failure.Message, w) {
					t.Errorf("failure %q does not mention %q", s.Failure.Message, w)
				}
			}
		})

		t.Run("a result completed by hand is bounded too", func(t *testing.T) {
			task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "sized", Context: map[string]int{"n": 99}})
			must(t, err)
			info := h.wait(task)
			err = eng.CompleteStep(t.Context(), info.Task.ID, "produce", []byte(`"`+strings.Repeat("y", 99)+`"`))
			if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "--max-result-bytes") {
				t.Fatalf("CompleteStep with 101 bytes: %v, want ErrInvalid naming --max-result-bytes", err)
			}
		})
	})
}

// Without configuration the limits are 1 MiB of context and 4 MiB of result.
func TestSizeLimitsDefault(t *testing.T) {
	h := newHarness(t, sized, map[string]tasker.Handler{
		"test.produce": tasker.HandlerFunc(func(context.Context, *tasker.StepInput) (any, error) {
			return strings.Repeat("x", tasker.DefaultMaxResultBytes), nil
		}),
	})
	big := `{"padding": "` + strings.Repeat("p", tasker.DefaultMaxContextBytes) + `"}`
	if _, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "sized", Context: big}); !errors.Is(err, taskertype.ErrInvalid) {
		t.Fatalf("a context of %d bytes: %v, want ErrInvalid", len(big), err)
	}
	info := h.run("sized", nil)
	if s := h.step(info, "produce"); s.Failure == nil || !strings.Contains(s.Failure.Message, "limit of 4194304") {
		t.Fatalf("a result of 4 MiB + 2 bytes: step %s, failure %+v", s.State, s.Failure)
	}
}
