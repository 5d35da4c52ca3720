package worker

import "github.com/tasker-go/tasker/taskertype"

// SetTestHooks sets the worker's test hooks; call it before Start.
func SetTestHooks(w *Worker, beforeClaimCheck, afterAdopt func(*taskertype.Step)) {
	w.beforeClaimCheck, w.afterAdopt = beforeClaimCheck, afterAdopt
}

// SetRoundHook gives f the messages each round of a claim loop claimed;
// call it before Start.
func SetRoundHook(w *Worker, f func(claimed int)) { w.afterRound = f }
