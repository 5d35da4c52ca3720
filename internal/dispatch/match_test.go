package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

func handlerIs(name string) func(*Event) bool {
	return func(ev *Event) bool { return ev.Handler == name }
}

// A filtered poll takes the oldest event its filter accepts and leaves the
// others queued, in order, for the pollers whose filter they match.
func TestPollMatchTakesOnlyWhatTheFilterAccepts(t *testing.T) {
	c := newChannel(t, Config{})
	ctx := t.Context()
	a1 := dispatch(ctx, c.HandlerFor("a"), stepInput("a1"))
	waitQueued(t, c, 1)
	b1 := dispatch(ctx, c.HandlerFor("b"), stepInput("b1"))
	waitQueued(t, c, 2)
	a2 := dispatch(ctx, c.HandlerFor("a"), stepInput("a2"))
	waitQueued(t, c, 3)

	ev, ok := c.PollMatch(handlerIs("b"))
	if !ok || ev.StepName != "b1" {
		t.Fatalf("poll b: %v %v", ev, ok)
	}
	if _, ok := c.PollMatch(handlerIs("b")); ok {
		t.Fatal("a second b event out of nothing")
	}
	first, _ := c.PollMatch(handlerIs("a"))
	second, _ := c.PollMatch(handlerIs("a"))
	if first == nil || second == nil || first.StepName != "a1" || second.StepName != "a2" {
		t.Fatalf("a events out of order: %v %v", first, second)
	}
	for _, e := range []*Event{ev, first, second} {
		if !c.Complete(e.ID, Result{Output: json.RawMessage(`1`)}) {
			t.Fatalf("complete %s", e.StepName)
		}
	}
	for _, h := range []<-chan handled{a1, b1, a2} {
		if r := wait(t, h); r.err != nil {
			t.Fatal(r.err)
		}
	}
}

// Every queued event wakes every filtered waiter, so a waiter whose filter
// rejects it never swallows the wake-up of the one it is for.
func TestPollWaitMatchWakesTheRightWaiter(t *testing.T) {
	c := newChannel(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	gotA := make(chan *Event, 1)
	go func() {
		ev, _ := c.PollWaitMatch(ctx, handlerIs("a"))
		gotA <- ev
	}()
	gotB := make(chan *Event, 1)
	go func() {
		ev, _ := c.PollWaitMatch(ctx, handlerIs("b"))
		gotB <- ev
	}()
	time.Sleep(20 * time.Millisecond) // both waiting
	h := dispatch(t.Context(), c.HandlerFor("b"), stepInput("b1"))
	select {
	case ev := <-gotB:
		if ev == nil || ev.StepName != "b1" {
			t.Fatalf("b waiter got %v", ev)
		}
		c.Complete(ev.ID, Result{})
	case <-time.After(5 * time.Second):
		t.Fatal("the b waiter was not woken")
	}
	wait(t, h)
	cancel()
	if ev := <-gotA; ev != nil {
		t.Fatalf("the a waiter took %v", ev)
	}
	if _, err := c.PollWaitMatch(ctx, handlerIs("a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended ctx: %v", err)
	}
}

// Extend restarts an event's complete timeout: a heartbeating worker keeps
// its event past CompleteTimeout; without it the event times out.
func TestExtendRestartsTheCompleteTimeout(t *testing.T) {
	clk := testclock.New(t0)
	c := newChannel(t, Config{Clock: clk, CompleteTimeout: time.Minute})
	h := dispatch(t.Context(), c.HandlerFor("a"), stepInput("a"))
	waitQueued(t, c, 1)
	ev, _ := c.PollMatch(handlerIs("a"))
	clk.Advance(50 * time.Second)
	if !c.Extend(ev.ID) || !c.IsPending(ev.ID) {
		t.Fatal("extend of a pending event")
	}
	clk.Advance(50 * time.Second) // 100s since the poll, 50s since the extension
	if n := c.CleanupTimeouts(); n != 0 {
		t.Fatalf("%d timed out after an extension", n)
	}
	clk.Advance(11 * time.Second)
	if n := c.CleanupTimeouts(); n != 1 {
		t.Fatalf("%d timed out, want 1", n)
	}
	r := wait(t, h)
	if !errors.Is(r.err, ErrCompleteTimeout) {
		t.Fatalf("Handle: %v", r.err)
	}
	if c.Extend(ev.ID) || c.IsPending(ev.ID) {
		t.Fatal("a timed-out event extended")
	}
	var he *taskertype.HandlerError
	if !errors.As(r.err, &he) || he.Permanent {
		t.Fatalf("the timeout is not a retryable failure: %v", r.err)
	}
}

func waitQueued(t *testing.T, c *Channel, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Metrics().Queued < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", c.Metrics().Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}
