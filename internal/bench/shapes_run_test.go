package bench

import (
	"context"
	"testing"
	"time"
)

// The shapes replace every handler by the noop after parsing: the engine
// must run the shapes as changed, not as their files say (the template is
// stored and read back through the store).
func TestEveryShapeRunsWithTheNoopHandler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shapes, err := Shapes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, Backend{Dir: t.TempDir()}, nil, shapes...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range shapes {
		if err := RunTask(ctx, b.Engine, s); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
}
