// Command natif-uploader uploads invoice files from hot folders to natif.ai.
// main only wires signals and the process's standard streams to the command
// tree and turns its error into an exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		LookupEnv: os.LookupEnv, StderrIsTerminal: isTerminal(os.Stderr),
	})
	stop()
	os.Exit(code)
}
