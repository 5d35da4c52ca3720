package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/taskertype"
)

// Event stream defaults (Config fields override them).
const (
	// DefaultMaxEventStreams bounds the open GET /v1/tasks/{uuid}/events
	// streams; one more is answered 503.
	DefaultMaxEventStreams = 1000
	// DefaultEventBuffer is each stream's bus subscription buffer. A client
	// that falls this many transitions behind is sent a "dropped" event and
	// cut off: the bus never waits for it.
	DefaultEventBuffer = 256
	// DefaultHeartbeat is how often an idle stream sends a comment line.
	DefaultHeartbeat = 15 * time.Second
	// DefaultEventPoll is how often a stream reads the task from the store:
	// the bus carries only this process's commits, so on PostgreSQL the
	// transitions other processes commit are seen this way.
	DefaultEventPoll = time.Second
	// DefaultEventSettle is how long a stream goes on reading the log below
	// the newest transition it has seen. On PostgreSQL a transition's id is
	// taken when its transaction writes it, and transactions commit in any
	// order: one that took an id before a transition the stream has read
	// may commit after it. The engine's transactions are a few statements,
	// pipelined with their commit; 5s is an assumption about how long such
	// a commit can take (an fsync stall, a synchronous standby), not a limit
	// PostgreSQL enforces: best effort, a commit slower than that is missed
	// (the step's next transition and the task's end are not).
	DefaultEventSettle = 5 * time.Second
	// maxRecent bounds the ids a stream remembers from earlier polls above
	// its cursor: past it the cursor moves up to keep the newest maxRecent,
	// so a busy task costs each poll at most that many rows read again
	// (and a commit slower than maxRecent of the task's transitions is
	// missed).
	maxRecent = 4096
	// eventWriteTimeout bounds one write to a stream's client.
	eventWriteTimeout = 10 * time.Second
)

// known is what a stream has told its client about one task or step.
type known struct {
	state string
	at    time.Time
}

// streamTaskEvents serves GET /v1/tasks/{uuid}/events: a snapshot, then
// every transition of the task as it commits, until it reaches a terminal
// state. It subscribes to the bus before it reads the snapshot, so nothing
// committed in between is missed; a transition the poll saw first is not
// sent twice (its time is before what the client was told, or the same with
// the same state).
func (s *Server) streamTaskEvents(w http.ResponseWriter, r *http.Request) {
	id, err := parseUUID("task uuid", r.PathValue("uuid"))
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", "5")
		writeBackpressure(w, fmt.Sprintf("%d event streams are open, the most this server keeps: retry later", cap(s.streams)), 5)
		return
	}
	sub, err := s.eng.Subscribe(tasker.EventFilter{TaskID: id}, s.eventBuffer)
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	defer sub.Close()
	// The log's cursor is taken before the snapshot is read, so nothing
	// committed in between is missed by the poll (what the snapshot shows
	// already is not sent twice). This is the one full read of the log;
	// each poll reads what came after the cursor.
	log, err := s.eng.TransitionsAfter(r.Context(), id, 0)
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	info, err := s.eng.Task(r.Context(), id)
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	st := &stream{w: w, rc: rc, steps: map[uuid.UUID]known{}, names: map[uuid.UUID]string{}, recent: map[int64]time.Time{}}
	st.start(log, s.clock.Now())
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()

	if err := st.send("snapshot", s.task(r.Context(), info.Task, info.Steps)); err != nil {
		return
	}
	st.learn(info)
	if info.Task.State.Terminal() {
		_ = st.send("end", map[string]string{"task_uuid": id.String(), "status": string(info.Task.State)})
		return
	}
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(s.eventPoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-sub.C():
			if err := st.busEvent(e); err != nil {
				return
			}
			if sub.Dropped() > 0 {
				_ = st.send("dropped", map[string]any{"task_uuid": id.String(),
					"message": fmt.Sprintf("the client fell more than %d transitions behind: reconnect for a new snapshot", s.eventBuffer)})
				return
			}
		case <-poll.C:
			// Take what the bus already holds first, so that the poll's
			// differences are only what the bus did not carry.
			if err := st.drain(sub); err != nil {
				return
			}
			if err := s.pollLog(ctx, st, id); err != nil {
				if !errors.Is(err, context.Canceled) {
					s.log.WarnContext(ctx, "event stream: read the task's transitions", "task", id, "error", err)
				}
				return
			}
		case <-heartbeat.C:
			if err := st.comment("heartbeat"); err != nil {
				return
			}
			continue
		}
		if st.task.state != "" && taskertype.TaskState(st.task.state).Terminal() {
			_ = st.send("end", map[string]string{"task_uuid": id.String(), "status": st.task.state})
			return
		}
	}
}

// pollLog reads the transitions committed since the stream's cursor (one
// query: those of the settle window, at most maxRecent of them, and the
// new ones, whatever the task's size) and sends what the client was not
// told. A step created since the snapshot (a decision's or a batch's)
// has its name read once, with the task's steps.
func (s *Server) pollLog(ctx context.Context, st *stream, id uuid.UUID) error {
	trs, err := s.eng.TransitionsAfter(ctx, id, st.cursor)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	fresh := trs[:0]
	for _, tr := range trs {
		if _, ok := st.recent[tr.ID]; !ok {
			st.recent[tr.ID] = now
			fresh = append(fresh, tr)
		}
	}
	for _, tr := range fresh {
		if _, ok := st.names[tr.StepID]; tr.StepID != uuid.Nil && !ok {
			steps, err := s.eng.Steps(ctx, id)
			if err != nil {
				return err
			}
			for _, s := range steps {
				st.names[s.ID] = s.Name
			}
			break
		}
	}
	if err := st.observe(id, fresh); err != nil {
		return err
	}
	st.settle(now, now.Add(-s.eventSettle))
	return nil
}

// stream writes one client's events and remembers what it told it.
type stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	task  known
	steps map[uuid.UUID]known  // bounded by the task's steps
	names map[uuid.UUID]string // step names, bounded by the task's steps
	// cursor: the poll reads the transitions after it. On PostgreSQL, ids
	// are taken as transactions write and commits land in any order, so
	// the cursor stays below the ids read in the last settle window
	// (DefaultEventSettle): a transition committed after a later one was
	// read is still read, and sent. recent holds the ids above the cursor
	// the stream has read, with when it first read each, so that none is
	// sent twice; at most maxRecent from earlier polls, and those of the
	// current one.
	cursor int64
	recent map[int64]time.Time
	n      int
}

func (st *stream) learn(info *tasker.TaskInfo) {
	st.task = known{string(info.Task.State), info.Task.UpdatedAt}
	for _, s := range info.Steps {
		st.steps[s.ID] = known{string(s.State), s.UpdatedAt}
		st.names[s.ID] = s.Name
	}
}

// start remembers the ids of the initial read of the log, as read now: the
// cursor stays at zero until settle moves it, so the first polls read
// again what a slow transaction may still commit below them, whatever the
// writers' clocks said.
func (st *stream) start(log []*tasker.Transition, now time.Time) {
	for _, tr := range log {
		st.recent[tr.ID] = now
	}
}

// settle moves the cursor up to the newest transition read before old, and
// forgets the ids it passes. Past maxRecent ids it moves up further, to
// keep the newest maxRecent of those read in earlier polls (before now):
// the ids this poll read first keep their window, so a burst of commits
// does not pass over a slow transaction below it at once.
func (st *stream) settle(now, old time.Time) {
	c := st.cursor
	for id, seen := range st.recent {
		if seen.Before(old) && id > c {
			c = id
		}
	}
	if len(st.recent) > maxRecent {
		var earlier []int64
		for id, seen := range st.recent {
			if seen.Before(now) {
				earlier = append(earlier, id)
			}
		}
		if n := len(earlier); n > maxRecent {
			slices.Sort(earlier)
			c = max(c, earlier[n-maxRecent-1])
		}
	}
	if c == st.cursor {
		return
	}
	for id := range st.recent {
		if id <= c {
			delete(st.recent, id)
		}
	}
	st.cursor = c
}

func (st *stream) drain(sub *tasker.Subscription) error {
	for {
		select {
		case e := <-sub.C():
			if err := st.busEvent(e); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// busEvent sends a transition the bus delivered, unless the client was
// already told of it (or of a later state) by a poll.
func (st *stream) busEvent(e tasker.Event) error {
	k := &st.task
	if e.Kind == tasker.EventStepTransition {
		kk := st.steps[e.StepID]
		k = &kk
		defer func() { st.steps[e.StepID] = kk }()
	}
	// Told already: an earlier time, or this state at the same time (a
	// transaction stamps its transitions with one time).
	if e.At.Before(k.at) || (e.At.Equal(k.at) && e.To == k.state) {
		return nil
	}
	*k = known{e.To, e.At}
	ev := gen.TaskTransitionEvent{Kind: e.Kind, TaskUuid: e.TaskID, FromState: e.From, ToState: e.To, Event: e.Event, At: e.At.UTC()}
	if e.Kind == tasker.EventStepTransition {
		sid, name := e.StepID, e.StepName
		ev.StepUuid, ev.StepName = &sid, &name
		if e.Attempt > 0 {
			a := int32(e.Attempt)
			ev.Attempt = &a
		}
	}
	if e.Failure != nil {
		msg := e.Failure.Message
		ev.Error = &msg
	}
	return st.send("transition", ev)
}

// observe sends, as transitions with event "observed", the transitions of
// the log (read after the cursor) that the client was not told of: the
// changes other processes committed.
func (st *stream) observe(taskID uuid.UUID, trs []*tasker.Transition) error {
	for _, tr := range trs {
		k := st.task
		if tr.StepID != uuid.Nil {
			k = st.steps[tr.StepID]
		}
		if k.state == tr.To || tr.At.Before(k.at) {
			continue
		}
		ev := gen.TaskTransitionEvent{Kind: tasker.EventTaskTransition, TaskUuid: taskID, FromState: k.state, ToState: tr.To,
			Event: "observed", At: tr.At.UTC()}
		if tr.StepID != uuid.Nil {
			sid, name := tr.StepID, st.names[tr.StepID]
			ev.Kind, ev.StepUuid, ev.StepName = tasker.EventStepTransition, &sid, &name
			st.steps[tr.StepID] = known{tr.To, tr.At}
		} else {
			st.task = known{tr.To, tr.At}
		}
		if err := st.send("transition", ev); err != nil {
			return err
		}
	}
	return nil
}

func (st *stream) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	st.n++
	return st.write(fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", st.n, event, b))
}

func (st *stream) comment(text string) error { return st.write([]byte(": " + text + "\n\n")) }

// write sends b within eventWriteTimeout: a client that does not read is
// cut off, not waited for.
func (st *stream) write(b []byte) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.rc.Flush()
}
