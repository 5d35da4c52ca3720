package demo

import (
	"context"
	"fmt"

	"github.com/tasker-go/tasker/taskertype"
)

// Payment is demo.charge's result: the payload of the payment events of
// examples/domain_events.yaml.
type Payment struct {
	TransactionID string `json:"transaction_id"`
	Amount        int64  `json:"amount"`
	PaymentMethod string `json:"payment_method"`
}

// charge "charges" the sum of its dependencies' values (the context value
// for a root step). Like demo.flaky, it fails retryably on its first
// fail_times attempts (default 0), so that its failure events fire.
func charge(_ context.Context, in *taskertype.StepInput) (any, error) {
	c, err := decodeContext(in)
	if err != nil {
		return nil, err
	}
	if c.FailTimes != nil && in.Attempt <= *c.FailTimes {
		return nil, fmt.Errorf("charge: the card was declined on attempt %d of the first %d, on purpose", in.Attempt, *c.FailTimes)
	}
	vals, err := inputs(in)
	if err != nil {
		return nil, err
	}
	amount, err := addAll(vals)
	if err != nil {
		return nil, err
	}
	return Payment{TransactionID: fmt.Sprintf("txn-%d", amount), Amount: amount, PaymentMethod: "card"}, nil
}
