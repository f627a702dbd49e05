package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/redact"
)

// Exit codes (SPEC section 2).
const (
	ExitOK          = 0
	ExitFailed      = 1 // some files failed, or an unexpected error
	ExitUsage       = 2 // usage or configuration error
	ExitCredentials = 3 // credentials rejected by natif
)

// Env is what the process gives the command tree; tests pass their own.
type Env struct {
	Stdin            io.Reader
	Stdout, Stderr   io.Writer
	LookupEnv        func(string) (string, bool)
	StderrIsTerminal bool
	// Reload delivers SIGHUP to the daemon commands; nil in tests.
	Reload <-chan struct{}
}

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks errors in the command line itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// cli holds what the commands share: the streams, the environment, the
// --config flag, and once set up, the configuration and the logger.
type cli struct {
	env     Env
	cfgFile string
	log     zerolog.Logger
	// redactor is the writer under the logger; secrets are registered with it.
	redactor *redact.Writer
}

// Main runs the command line args and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	a := &cli{env: env, log: zerolog.Nop()}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintf(env.Stderr, "natif-uploader: %s\n", oneLine(err))
	if code == ExitUsage && isUsage(err) {
		fmt.Fprintln(env.Stderr, "Run 'natif-uploader --help' for usage.")
	}
	return code
}

func exitCode(err error) int {
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, config.ErrInvalid), isUsage(err):
		return ExitUsage
	default:
		return ExitFailed
	}
}

func isUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	// cobra reports unknown commands and bad arguments as plain errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// setupLogger builds the process logger from the log settings.
func (a *cli) setupLogger(level, format string) error {
	l, w, err := logging.New(a.env.Stderr, logging.Options{Level: level, Format: format, Terminal: a.env.StderrIsTerminal})
	if err != nil {
		return fmt.Errorf("%w: %w", config.ErrInvalid, err)
	}
	a.log, a.redactor = l, w
	return nil
}

// loadConfig reads and validates the configuration of cmd: --config FILE (or
// configs/natif-uploader.yaml when present), the environment, then cmd's flags.
// It sets the logger up and registers the secrets with the redactor.
func (a *cli) loadConfig(cmd *cobra.Command) (config.Config, error) {
	file := a.cfgFile
	if file == "" {
		if fi, err := os.Stat(config.DefaultFile); err == nil && fi.Mode().IsRegular() {
			file = config.DefaultFile
		}
	}
	cfg, err := config.Load(config.Sources{File: file, Env: a.env.LookupEnv, Flags: cmd.Flags()})
	if err != nil {
		return config.Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, err
	}
	if err := a.setupLogger(cfg.LogLevel, cfg.LogFormat); err != nil {
		return config.Config{}, err
	}
	a.redactor.Pin(cfg.APIKey.Reveal())
	a.redactor.Pin(cfg.Password.Reveal())
	if file != "" {
		a.log.Debug().Str("file", file).Msg("configuration file read")
	}
	return cfg, nil
}

// setupLoggerOnly sets the logger up from the log flags and variables alone,
// for commands that do not use the product configuration (fake-api, version).
func (a *cli) setupLoggerOnly(cmd *cobra.Command) error {
	cfg, err := config.Load(config.Sources{Env: a.env.LookupEnv, Flags: cmd.Flags()})
	if err != nil {
		return err
	}
	return a.setupLogger(cfg.LogLevel, cfg.LogFormat)
}

func isTerminal(f *os.File) bool { return logging.IsTerminal(f) }
