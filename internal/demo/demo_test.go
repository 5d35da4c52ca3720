package demo

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func call(t *testing.T, name string, ctxJSON string, results map[string]int64, attempt int) (any, error) {
	t.Helper()
	in := &taskertype.StepInput{StepName: "s", Attempt: attempt, Context: json.RawMessage(ctxJSON), Results: map[string]json.RawMessage{}}
	for k, v := range results {
		in.Results[k], _ = json.Marshal(Value{v})
	}
	if len(results) == 0 {
		in.Results = nil
	}
	return Handlers()[name].Handle(context.Background(), in)
}

func TestArithmeticHandlers(t *testing.T) {
	cases := []struct {
		name    string
		handler string
		ctx     string
		deps    map[string]int64
		want    int64
	}{
		{"square of the context value for a root step", "demo.square", `{"value":3}`, nil, 9},
		{"square of the sum of the dependencies", "demo.square", `{"value":3}`, map[string]int64{"a": 2, "b": 3}, 25},
		{"add uses the addend from the context", "demo.add", `{"value":3,"addend":10}`, map[string]int64{"a": 5}, 15},
		{"add defaults the addend to 1", "demo.add", `{"value":3}`, nil, 4},
		{"multiply takes the product of the dependencies", "demo.multiply", `{}`, map[string]int64{"a": -2, "b": 3, "c": 4}, -24},
		{"sum adds the dependencies", "demo.sum", `{}`, map[string]int64{"a": 1, "b": 2, "c": 3, "d": 4}, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := call(t, c.handler, c.ctx, c.deps, 1)
			if err != nil {
				t.Fatal(err)
			}
			if v.(Value).Value != c.want {
				t.Fatalf("got %d, want %d", v.(Value).Value, c.want)
			}
		})
	}
}

func TestOverflowIsAPermanentError(t *testing.T) {
	_, err := call(t, "demo.square", `{}`, map[string]int64{"a": 1 << 40}, 1)
	var he *taskertype.HandlerError
	if !errors.As(err, &he) || !he.Permanent {
		t.Fatalf("got %v, want a permanent overflow error", err)
	}
}

func TestMissingValueSaysWhatToPass(t *testing.T) {
	_, err := call(t, "demo.square", `{}`, nil, 1)
	if err == nil || !strings.Contains(err.Error(), "--context") {
		t.Fatalf("got %v, want a hint naming --context", err)
	}
}

func TestFlakyFailsTheFirstAttemptsThenSucceeds(t *testing.T) {
	for attempt, wantErr := range map[int]bool{1: true, 2: true, 3: false} {
		_, err := call(t, "demo.flaky", `{"fail_times":2}`, nil, attempt)
		if (err != nil) != wantErr {
			t.Errorf("attempt %d: err %v, want error %v", attempt, err, wantErr)
		}
	}
}
