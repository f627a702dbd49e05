// Command natif-uploader uploads invoice files from hot folders to natif.ai.
// main only wires signals and the process's standard streams to the command
// tree and turns its error into an exit code.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		stopping := false
		for s := range sigs {
			switch {
			case s == syscall.SIGHUP:
				select {
				case reload <- struct{}{}:
				default:
				}
			case !stopping:
				// First signal: stop gracefully (watcher, then workers with
				// their grace period; unfinished uploads go back to the queue).
				stopping = true
				cancel()
			default:
				fmt.Fprintln(os.Stderr, "natif-uploader: second signal, exiting now; unfinished uploads go back to the queue when their lease ends")
				os.Exit(130)
			}
		}
	}()
	code := Main(ctx, os.Args[1:], Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		LookupEnv: os.LookupEnv, StderrIsTerminal: isTerminal(os.Stderr), Reload: reload,
	})
	cancel()
	os.Exit(code)
}
