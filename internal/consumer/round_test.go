package consumer

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/tasker-go/tasker/queue"
)

func TestRound(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	boom := errors.New("boom")
	type res struct {
		n   int
		err error
	}
	cases := []struct {
		name      string
		shared    bool
		inTx      res
		wantOne   bool
		wantN     int
		wantError bool
	}{
		{"a shared queue's batch that commits is the round", true, res{3, nil}, false, 3, false},
		{"a batch failed by one message goes one by one", true, res{3, Failed(&queue.Message{ID: 7}, boom)}, true, 2, false},
		{"a batch whose commit failed goes one by one", true, res{3, boom}, true, 2, false},
		{"a batch that claimed nothing returns its error", true, res{0, boom}, false, 0, true},
		{"a queue apart from the store goes one by one", false, res{}, true, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			one := false
			n, err := Round(ctx, log, "q", c.shared,
				func() (int, error) { return c.inTx.n, c.inTx.err },
				func() (int, error) { one = true; return 2, nil })
			if one != c.wantOne || n != c.wantN || (err != nil) != c.wantError {
				t.Fatalf("one by one %v, n %d, err %v; want %v, %d, error %v", one, n, err, c.wantOne, c.wantN, c.wantError)
			}
		})
	}
	if err := Failed(&queue.Message{ID: 7}, ErrPoison); !errors.Is(err, ErrPoison) || err.Error() != "message 7: unprocessable message" {
		t.Fatalf("Failed: %v", err)
	}
}
