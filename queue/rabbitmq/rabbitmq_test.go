package rabbitmq_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/queuetest"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	"github.com/tasker-go/tasker/queue/rabbitmq/amqptest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	amqptest.URL(t)
	queuetest.Run(t, queuetest.Harness{
		Name: "rabbitmq",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			return amqptest.Open(t, rabbitmq.Config{Clock: clock, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
		},
	})
}
