// Package logging builds the one zerolog logger that main creates and injects
// into every package. Children carry a "component" field, and the field names
// below are stable so that log queries keep working across releases.
//
// Every logger built here writes through a redact.Writer: whatever the typed
// secrets miss (a token passed on as a plain string) is scrubbed before it
// reaches the output.
package logging

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/redact"
)

// Stable field names, shared by every component.
const (
	FieldComponent = "component"
	FieldFile      = "file"
	FieldSHA256    = "sha256"
	FieldTaskID    = "task_id"
	FieldAttempt   = "attempt"
	FieldStatus    = "status"
	FieldDuration  = "duration_ms"
)

// Options selects level and format.
type Options struct {
	// Level is trace, debug, info, warn or error; empty means info.
	Level string
	// Format is json or console; empty means console when Terminal, else json.
	Format string
	// Terminal says whether the output is a terminal (see IsTerminal).
	Terminal bool
}

var timeFormatOnce sync.Once

// New returns the process logger, writing to out through a redact.Writer that
// it also returns: the caller registers secrets with it (the password, the API
// key, every token the process receives).
func New(out io.Writer, opts Options) (zerolog.Logger, *redact.Writer, error) {
	timeFormatOnce.Do(func() {
		// Milliseconds: upload events a few ms apart must keep their order.
		zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	})
	level := zerolog.InfoLevel
	if opts.Level != "" {
		l, err := zerolog.ParseLevel(opts.Level)
		if err != nil {
			return zerolog.Nop(), nil, fmt.Errorf("log level %q: must be trace, debug, info, warn or error", opts.Level)
		}
		level = l
	}
	redactor := redact.NewWriter(out)
	var w io.Writer = redactor
	switch opts.Format {
	case "console":
		w = console(redactor, opts.Terminal)
	case "":
		if opts.Terminal {
			w = console(redactor, true)
		}
	case "json":
	default:
		return zerolog.Nop(), nil, fmt.Errorf("log format %q: must be json or console", opts.Format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), redactor, nil
}

func console(out io.Writer, color bool) io.Writer {
	return zerolog.ConsoleWriter{Out: out, NoColor: !color, TimeFormat: time.TimeOnly}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// Component returns a child logger that names its component.
func Component(l zerolog.Logger, name string) zerolog.Logger {
	return l.With().Str(FieldComponent, name).Logger()
}
