package client_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/client"
)

func TestEventReader(t *testing.T) {
	stream := ": heartbeat\n\nid: 1\nevent: snapshot\ndata: {\"task_uuid\":\"x\",\"status\":\"pending\"}\n\n" +
		"id: 2\nevent: transition\ndata: {\"kind\":\"task.transition\",\"to_state\":\"complete\",\"from_state\":\"steps_in_process\"}\n\n" +
		"event: end\ndata: {\"status\":\"complete\"}\n\n"
	r := client.NewEventReader(strings.NewReader(stream))
	var got []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case "snapshot":
			got = append(got, "snapshot:"+e.Task.Status)
		case "transition":
			got = append(got, "transition:"+e.Transition.ToState)
		default:
			got = append(got, e.Type+":"+e.Status)
		}
	}
	if strings.Join(got, ",") != "snapshot:pending,transition:complete,end:complete" {
		t.Errorf("events %v", got)
	}
	_, err := client.NewEventReader(strings.NewReader("event: snapshot\ndata: {nope\n\n")).Next()
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("a bad snapshot: %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// FuzzEventReader feeds arbitrary streams to the event reader: it returns
// events or an error, never panics, and never an event larger than
// MaxEventBytes.
func FuzzEventReader(f *testing.F) {
	f.Add("id: 1\nevent: snapshot\ndata: {\"task_uuid\":\"x\"}\n\n")
	f.Add("event: transition\ndata: {\"at\":\"2026-01-01T00:00:00Z\"}\ndata: more\n\n: c\n\n")
	f.Add("event: end\ndata: null\n\nevent: dropped\ndata: {\"message\":1}\n\n")
	f.Add("data\n\n:\n\nevent:\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := client.NewEventReader(strings.NewReader(s))
		for range 1000 {
			e, err := r.Next()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			if len(e.Data) > client.MaxEventBytes {
				t.Fatalf("an event of %d bytes", len(e.Data))
			}
		}
	})
}
