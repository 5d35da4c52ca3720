package tasker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/template"
)

// A program embeds the engine on a SQLite file: it registers a handler and a
// template, starts the engine, runs a task to completion and stops.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "tasker-example")
	defer os.RemoveAll(dir)

	tpl, err := template.Parse("greeting.yaml", []byte(`
name: greeting
namespace: example
version: 1.0.0
steps:
  - name: hello
    handler: greet
  - name: shout
    handler: shout
    depends_on: [hello]
`))
	if err != nil {
		log.Fatal(err)
	}
	eng, err := tasker.Open(ctx, tasker.Config{DatabasePath: filepath.Join(dir, "tasker.db"), Templates: []*template.Template{tpl}})
	if err != nil {
		log.Fatal(err)
	}
	eng.RegisterHandler("greet", tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
		var c struct{ Name string }
		if err := in.DecodeContext(&c); err != nil {
			return nil, err
		}
		return "hello, " + c.Name, nil
	}))
	eng.RegisterHandler("shout", tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
		var greeting string
		if err := in.DecodeResult("hello", &greeting); err != nil {
			return nil, err
		}
		return greeting + "!", nil
	}))
	if err := eng.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer eng.Stop(ctx)

	task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "example", Name: "greeting", Context: map[string]string{"name": "Ada"}})
	if err != nil {
		log.Fatal(err)
	}
	done, err := eng.WaitTask(ctx, task.ID)
	if err != nil {
		log.Fatal(err)
	}
	info, _ := eng.Task(ctx, done.ID)
	fmt.Println(done.State)
	for _, s := range info.Steps {
		fmt.Println(s.Name, string(s.Result))
	}
	// Output:
	// complete
	// hello "hello, Ada"
	// shout "hello, Ada!"
}
