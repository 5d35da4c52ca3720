package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Event is one event of a task's stream (GET /v1/tasks/{uuid}/events).
type Event struct {
	// Type is "snapshot" (Task is set: the task when the stream began),
	// "transition" (Transition is set), "end" (the task reached Status, a
	// terminal state; the stream ends) or "dropped" (the client fell
	// behind; the stream ends: watch again for a new snapshot).
	Type       string
	ID         string
	Task       *Task
	Transition *TaskTransitionEvent
	Status     string
	Message    string
	// Data is the event's data as received.
	Data []byte
}

// ErrDropped is WatchTask's error when the server cut the stream off
// because the client read too slowly.
var ErrDropped = errors.New("the server dropped the event stream: the client fell behind")

// MaxEventBytes bounds one event of a stream.
const MaxEventBytes = 4 << 20

// WatchTask follows a task's events until it reaches a terminal state (nil
// after fn saw the "end" event), fn returns an error (that error), ctx ends,
// or the stream breaks. A stream the server dropped is ErrDropped.
func (c *Client) WatchTask(ctx context.Context, task string, fn func(Event) error) error {
	u := c.base + "/v1/tasks/" + url.PathEscape(task) + "/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	c.auth(req)
	resp, err := c.stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	r := NewEventReader(resp.Body)
	for {
		e, err := r.Next()
		if err == io.EOF {
			return fmt.Errorf("GET %s: the stream ended before the task finished: %w", u, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		if err := fn(e); err != nil {
			return err
		}
		switch e.Type {
		case "end":
			return nil
		case "dropped":
			return fmt.Errorf("%w: %s", ErrDropped, e.Message)
		}
	}
}

// EventReader reads a text/event-stream of a task's events.
type EventReader struct {
	sc *bufio.Scanner
}

// NewEventReader reads events from r.
func NewEventReader(r io.Reader) *EventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxEventBytes)
	return &EventReader{sc: sc}
}

// Next returns the next event, skipping comments; io.EOF at the end.
// Events of a type it does not know are returned with only Type, ID and
// Data set.
func (er *EventReader) Next() (Event, error) {
	var e Event
	var data strings.Builder
	seen := false
	for er.sc.Scan() {
		line := er.sc.Text()
		if line == "" {
			if !seen {
				continue
			}
			return e, e.decode([]byte(data.String()))
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		seen = true
		switch field {
		case "event":
			e.Type = value
		case "id":
			e.ID = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			if data.Len()+len(value) > MaxEventBytes {
				return Event{}, fmt.Errorf("an event of more than %d bytes", MaxEventBytes)
			}
			data.WriteString(value)
		}
	}
	if err := er.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

func (e *Event) decode(data []byte) error {
	e.Data = data
	if e.Type == "" {
		e.Type = "message"
	}
	var err error
	switch e.Type {
	case "snapshot":
		e.Task = new(Task)
		err = json.Unmarshal(data, e.Task)
	case "transition":
		e.Transition = new(TaskTransitionEvent)
		err = json.Unmarshal(data, e.Transition)
	case "end", "dropped":
		var v struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		err = json.Unmarshal(data, &v)
		e.Status, e.Message = v.Status, v.Message
	}
	if err != nil {
		return fmt.Errorf("event %q: %w", e.Type, err)
	}
	return nil
}
