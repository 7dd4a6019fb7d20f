// Command strata is Strata's single binary: the coordinator, the agent,
// the development mode that runs both, and the CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-run/strata/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
