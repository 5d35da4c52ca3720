package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

func TestTracedWritesOneLinePerRun(t *testing.T) {
	var buf bytes.Buffer
	hs := Traced(Handlers(), &buf)
	in := &taskertype.StepInput{StepID: uuid.New(), Attempt: 2, Context: []byte(`{"sleep_ms": 1}`)}
	if _, err := hs["demo.sleep"].Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if _, err := hs["demo.fail"].Handle(context.Background(), in); err == nil {
		t.Fatal("demo.fail succeeded")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"ok", "err"} {
		var step string
		var attempt, pid int
		var start, end int64
		var res string
		if _, err := fmt.Sscan(lines[i], &step, &attempt, &pid, &start, &end, &res); err != nil {
			t.Fatalf("line %q: %v", lines[i], err)
		}
		if step != in.StepID.String() || attempt != 2 || pid != os.Getpid() || end < start || res != want {
			t.Errorf("line %q: want step %s, attempt 2, pid %d, start <= end, %s", lines[i], in.StepID, os.Getpid(), want)
		}
	}
}
