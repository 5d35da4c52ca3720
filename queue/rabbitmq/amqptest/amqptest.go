// Package amqptest opens RabbitMQ queues for tests, each under a prefix of
// its own on the broker named by TASKER_TEST_AMQP_URL, deleted after the
// test.
package amqptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/tasker-go/tasker/queue/rabbitmq"
)

// EnvURL names the variable that gives the broker's URL.
const EnvURL = "TASKER_TEST_AMQP_URL"

// URL returns the broker's URL, or skips the test when EnvURL is not set.
// CI (.ci/run) sets it, so the tests always run there.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip("needs RabbitMQ: set " + EnvURL + "=amqp://guest:guest@127.0.0.1:5672/")
	}
	return u
}

// Prefix returns a prefix of broker names no other test uses.
func Prefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + "_"
}

// Open opens a queue on the test broker with cfg (URL filled in, and
// Prefix when empty), closed and its broker names deleted at the end of
// the test.
func Open(t testing.TB, cfg rabbitmq.Config) *rabbitmq.Queue {
	t.Helper()
	cfg.URL = URL(t)
	if cfg.Prefix == "" {
		cfg.Prefix = Prefix()
	}
	q, err := rabbitmq.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("rabbitmq.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.DeleteTopology(context.Background()); err != nil {
			t.Errorf("DeleteTopology: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}
