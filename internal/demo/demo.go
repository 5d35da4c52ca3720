// Package demo holds the built-in handlers that the example templates and
// the benchmarks use: arithmetic on a number carried from step to step, and a
// few handlers that sleep or fail on purpose to show retries and timeouts.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// Handlers returns the demo handlers by name.
func Handlers() map[string]taskertype.Handler {
	return map[string]taskertype.Handler{
		"demo.square":   taskertype.HandlerFunc(square),
		"demo.add":      taskertype.HandlerFunc(add),
		"demo.multiply": taskertype.HandlerFunc(multiply),
		"demo.sum":      taskertype.HandlerFunc(sum),
		"demo.noop":     taskertype.HandlerFunc(noop),
		"demo.sleep":    taskertype.HandlerFunc(sleep),
		"demo.flaky":    taskertype.HandlerFunc(flaky),
		"demo.fail":     taskertype.HandlerFunc(fail),
		"demo.route":    taskertype.HandlerFunc(route),
		"demo.charge":   taskertype.HandlerFunc(charge),
	}
}

// Value is the result of the arithmetic handlers.
type Value struct {
	Value int64 `json:"value"`
}

type demoContext struct {
	Value     *int64 `json:"value"`
	Addend    *int64 `json:"addend"`
	SleepMS   int64  `json:"sleep_ms"`
	FailTimes *int   `json:"fail_times"`
}

func decodeContext(in *taskertype.StepInput) (demoContext, error) {
	var c demoContext
	err := in.DecodeContext(&c)
	return c, err
}

// inputs returns the values of the step's dependencies in name order, or the
// context's value when the step has none.
func inputs(in *taskertype.StepInput) ([]int64, error) {
	if len(in.Results) == 0 {
		c, err := decodeContext(in)
		if err != nil {
			return nil, err
		}
		if c.Value == nil {
			return nil, taskertype.Permanent(errors.New(`the task context has no "value": pass --context '{"value": 3}'`))
		}
		return []int64{*c.Value}, nil
	}
	names := make([]string, 0, len(in.Results))
	for n := range in.Results {
		names = append(names, n)
	}
	sort.Strings(names)
	vals := make([]int64, len(names))
	for i, n := range names {
		var v Value
		if err := in.DecodeResult(n, &v); err != nil {
			return nil, err
		}
		vals[i] = v.Value
	}
	return vals, nil
}

var errOverflow = taskertype.Permanent(errors.New("the result overflows a 64-bit integer: use a smaller value"))

func addAll(vals []int64) (int64, error) {
	var s int64
	for _, v := range vals {
		r := s + v
		if (v > 0 && r < s) || (v < 0 && r > s) {
			return 0, errOverflow
		}
		s = r
	}
	return s, nil
}

func mul(a, b int64) (int64, error) {
	if a == 0 || b == 0 {
		return 0, nil
	}
	hi, lo := bits.Mul64(uint64(abs(a)), uint64(abs(b)))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, errOverflow
	}
	r := int64(lo)
	if (a < 0) != (b < 0) {
		r = -r
	}
	return r, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func square(_ context.Context, in *taskertype.StepInput) (any, error) {
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	s, err := addAll(vals)
	if err != nil {
		return nil, err
	}
	r, err := mul(s, s)
	return Value{r}, err
}

func add(_ context.Context, in *taskertype.StepInput) (any, error) {
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	c, err := decodeContext(in)
	if err != nil {
		return nil, err
	}
	addend := int64(1)
	if c.Addend != nil {
		addend = *c.Addend
	}
	r, err := addAll(append(vals, addend))
	return Value{r}, err
}

func multiply(_ context.Context, in *taskertype.StepInput) (any, error) {
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	r := int64(1)
	for _, v := range vals {
		if r, err = mul(r, v); err != nil {
			return nil, err
		}
	}
	return Value{r}, nil
}

func sum(_ context.Context, in *taskertype.StepInput) (any, error) {
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	r, err := addAll(vals)
	return Value{r}, err
}

func noop(context.Context, *taskertype.StepInput) (any, error) {
	return map[string]bool{"ok": true}, nil
}

// sleep waits for the context's sleep_ms (default 100) or until cancelled.
func sleep(ctx context.Context, in *taskertype.StepInput) (any, error) {
	c, err := decodeContext(in)
	if err != nil {
		return nil, err
	}
	if c.SleepMS == 0 {
		c.SleepMS = 100
	}
	t := time.NewTimer(time.Duration(c.SleepMS) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return map[string]int64{"slept_ms": c.SleepMS}, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// flaky fails retryably on its first fail_times attempts (default 1).
func flaky(_ context.Context, in *taskertype.StepInput) (any, error) {
	c, err := decodeContext(in)
	if err != nil {
		return nil, err
	}
	n := 1
	if c.FailTimes != nil {
		n = *c.FailTimes
	}
	if in.Attempt <= n {
		return nil, fmt.Errorf("flaky: failing attempt %d of the first %d on purpose", in.Attempt, n)
	}
	return map[string]int{"attempts": in.Attempt}, nil
}

func fail(context.Context, *taskertype.StepInput) (any, error) {
	return nil, taskertype.Permanent(errors.New("demo.fail always fails"))
}
