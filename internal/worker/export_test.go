package worker

import "github.com/tasker-go/tasker/taskertype"

// SetTestHooks sets the worker's test hooks; call it before Start.
func SetTestHooks(w *Worker, beforeClaimCheck, afterAdopt func(*taskertype.Step)) {
	w.beforeClaimCheck, w.afterAdopt = beforeClaimCheck, afterAdopt
}
