package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
)

// showProgress renders a task's events on stderr until the returned stop
// function is called: a live table on a terminal, one line per change
// otherwise. stop drains what already arrived before returning.
func (g *globals) showProgress(sub *tasker.Subscription, task *tasker.Task, steps []string, quiet bool) (stop func()) {
	if quiet {
		return func() {}
	}
	p := &progress{w: g.stderr, tty: isTTY(g.stderr), task: task.ID, order: steps, start: task.CreatedAt,
		state: map[string]string{}, attempts: map[string]int{}}
	for _, s := range steps {
		p.state[s] = "pending"
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case e := <-sub.C():
				p.event(e)
			case <-tick.C:
				p.redraw()
			case <-done:
				for {
					select {
					case e := <-sub.C():
						p.event(e)
					default:
						p.redraw()
						return
					}
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

type progress struct {
	w        io.Writer
	tty      bool
	task     uuid.UUID
	order    []string
	start    time.Time
	state    map[string]string
	attempts map[string]int
	taskSt   string
	drawn    int // lines of the live table on screen
	dirty    bool
}

func (p *progress) event(e tasker.Event) {
	if e.TaskID != p.task {
		return
	}
	if e.Kind == tasker.EventTaskTransition {
		p.taskSt = e.To
	} else {
		p.state[e.StepName], p.attempts[e.StepName] = e.To, e.Attempt
	}
	p.dirty = true
	if p.tty {
		return
	}
	elapsed := e.At.Sub(p.start).Round(10 * time.Microsecond)
	if e.Kind == tasker.EventTaskTransition {
		fmt.Fprintf(p.w, "%+10v  task  %s -> %s (%s)\n", elapsed, e.From, e.To, e.Event)
		return
	}
	line := fmt.Sprintf("%+10v  step  %s: %s -> %s", elapsed, e.StepName, e.From, e.To)
	if e.Attempt > 0 {
		line += fmt.Sprintf(" (attempt %d)", e.Attempt)
	}
	if e.Failure != nil {
		line += ": " + firstLine(e.Failure.Message)
	}
	fmt.Fprintln(p.w, line)
}

var symbols = map[string]string{
	"pending": "·", "enqueued": "○", "in_progress": "◐", "enqueued_for_orchestration": "◕",
	"enqueued_as_error_for_orchestration": "✗", "waiting_for_retry": "↻", "error": "✗",
	"complete": "●", "cancelled": "⊘", "resolved_manually": "✓",
}

func (p *progress) redraw() {
	if !p.tty || !p.dirty {
		return
	}
	p.dirty = false
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	fmt.Fprintf(&b, "\x1b[2Ktask %s  %s  %s\n", p.task, p.taskSt, time.Since(p.start).Round(time.Millisecond))
	width := 0
	for _, s := range p.order {
		width = max(width, len(s))
	}
	for _, s := range p.order {
		st := p.state[s]
		line := fmt.Sprintf("  %s %-*s  %s", symbols[st], width, s, st)
		if n := p.attempts[s]; n > 1 {
			line += fmt.Sprintf(" (attempt %d)", n)
		}
		fmt.Fprintf(&b, "\x1b[2K%s\n", line)
	}
	p.drawn = len(p.order) + 1
	io.WriteString(p.w, b.String())
}
