// Command tasker runs workflows on the embedded backend, validates
// templates and measures the engine. Run 'tasker --help'.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tasker-go/tasker/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
