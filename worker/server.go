package worker

import (
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
)

// TaskCheckInterval is how long asynq's processor sleeps (between half and
// one and a half times this) when it found the queue empty. asynq's default
// of 1 s put a file dropped into an idle daemon on hold for 0.5 to 1.5 s
// after it was queued (bench: queue wait p50 566 ms at 20 files/s); at
// 100 ms an idle process polls Redis about ten times a second, one Lua
// script each.
const TaskCheckInterval = 100 * time.Millisecond

// ServerConfig is the asynq server configuration of the workers: concurrency
// from NATIF_CONCURRENCY, one queue, the handler's failure rule and retry
// delays, and a grace period for in-flight uploads at shutdown.
func ServerConfig(queue string, concurrency int, shutdownTimeout time.Duration, log zerolog.Logger) asynq.Config {
	return asynq.Config{
		Concurrency:       concurrency,
		Queues:            map[string]int{queue: 1},
		IsFailure:         IsFailure,
		RetryDelayFunc:    RetryDelay,
		ShutdownTimeout:   shutdownTimeout,
		Logger:            asynqLogger{log},
		LogLevel:          asynq.WarnLevel,
		TaskCheckInterval: TaskCheckInterval,
	}
}

// asynqLogger sends asynq's own messages to zerolog.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
