package demo

import (
	"context"
	"errors"
	"fmt"

	"github.com/tasker-go/tasker/taskertype"
)

// routeConfig is the configuration of demo.route: the first rule whose
// bound the value is below chooses the steps to create; none matching
// chooses Otherwise. An empty list is a decision with no branches.
type routeConfig struct {
	Rules []struct {
		Below  int64    `json:"below"`
		Create []string `json:"create"`
	} `json:"rules"`
	Otherwise []string `json:"otherwise"`
}

// route is a decision handler: it passes its input value on (as the
// arithmetic handlers do) and chooses steps by it, following its step's
// configuration (examples/decision.yaml).
func route(_ context.Context, in *taskertype.StepInput) (any, error) {
	var cfg routeConfig
	if err := in.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	if len(cfg.Rules) == 0 && cfg.Otherwise == nil {
		return nil, taskertype.Permanent(errors.New(`demo.route needs a configuration: config: {rules: [{below: 1000, create: [step]}], otherwise: [step]}`))
	}
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	v, err := addAll(vals)
	if err != nil {
		return nil, err
	}
	create := cfg.Otherwise
	for _, r := range cfg.Rules {
		if v < r.Below {
			create = r.Create
			break
		}
	}
	outcome := taskertype.NoBranches()
	if len(create) > 0 {
		outcome = taskertype.CreateSteps(create...)
	}
	return taskertype.DecisionResult(outcome, map[string]any{
		"value": v, "reason": fmt.Sprintf("value %d chose %v", v, create),
	}), nil
}
