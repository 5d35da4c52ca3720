// Package amqptest opens RabbitMQ queues for tests, each under a prefix of
// its own on the broker named by TASKER_TEST_AMQP_URL, deleted after the
// test.
package amqptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

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

// DeletePrefix deletes, at the end of the test, every queue and exchange
// of the local broker whose name starts with prefix: those an engine
// opened by the test declared, whatever their names. It lists them with
// rabbitmqctl (the broker's own tool, on the machine where CI runs it) and
// deletes them over AMQP.
func DeletePrefix(t testing.TB, prefix string) {
	t.Helper()
	u := URL(t)
	t.Cleanup(func() {
		list := func(what string) []string {
			out, err := exec.Command("rabbitmqctl", what, "--no-table-headers", "-q", "name").Output()
			if err != nil {
				t.Logf("rabbitmqctl %s: %v: the test's broker names (prefix %s) are left", what, err, prefix)
				return nil
			}
			var names []string
			for _, n := range strings.Fields(string(out)) {
				if strings.HasPrefix(n, prefix) {
					names = append(names, n)
				}
			}
			return names
		}
		queues, exchanges := list("list_queues"), list("list_exchanges")
		if len(queues)+len(exchanges) == 0 {
			return
		}
		conn, err := amqp.Dial(u)
		if err != nil {
			t.Errorf("delete the test's broker names: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Errorf("delete the test's broker names: %v", err)
			return
		}
		for _, n := range queues {
			if _, err := ch.QueueDelete(n, false, false, false); err != nil {
				t.Errorf("delete queue %s: %v", n, err)
				return
			}
		}
		for _, n := range exchanges {
			if err := ch.ExchangeDelete(n, false, false); err != nil {
				t.Errorf("delete exchange %s: %v", n, err)
				return
			}
		}
	})
}
