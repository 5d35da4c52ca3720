package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// Traced returns handlers that each write one line to w when they return:
// the step's id, the attempt, this process's id, and when the handler
// started and returned (wall-clock Unix nanoseconds, not the engine's
// clock, so that processes with skewed engine clocks compare), and
// whether it succeeded ("ok" or "err"):
//
//	<step id> <attempt> <pid> <start ns> <end ns> <ok|err>
//
// The fault tests read these lines to check that no two runs of a step
// overlap. Writes to w are serialized.
func Traced(handlers map[string]taskertype.Handler, w io.Writer) map[string]taskertype.Handler {
	var mu sync.Mutex
	pid := os.Getpid()
	out := make(map[string]taskertype.Handler, len(handlers))
	for name, h := range handlers {
		out[name] = taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
			start := time.Now()
			v, err := h.Handle(ctx, in)
			end := time.Now()
			res := "ok"
			if err != nil {
				res = "err"
			}
			mu.Lock()
			fmt.Fprintf(w, "%s %d %d %d %d %s\n", in.StepID, in.Attempt, pid, start.UnixNano(), end.UnixNano(), res)
			mu.Unlock()
			return v, err
		})
	}
	return out
}
