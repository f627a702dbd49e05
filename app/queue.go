// Package app assembles natif-uploader's parts from one configuration: the
// queue (Redis, or the embedded one), the ledger, the token source, the
// workers, the watcher and the metrics endpoint. The commands in
// cmd/natif-uploader call it; it holds no product rule of its own.
package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/queue"
	"github.com/natif-uploader/natif-uploader/worker"
)

// KeyPrefix is where natif-uploader keeps its own keys beside asynq's.
const KeyPrefix = "natif-uploader:"

// StateDir is where the embedded queue keeps its ledger and its state file:
// a hidden folder in the done folder, so it lives as long as what it records.
func StateDir(cfg *config.Config) string { return filepath.Join(cfg.DoneDir, ".natif-uploader") }

// Queue is this process's connection to the queue.
type Queue struct {
	Opt       asynq.RedisConnOpt
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Redis     redis.UniversalClient
	Ledger    worker.Ledger
	// Embedded is set when this process serves the embedded queue.
	Embedded *queue.Embedded
	// Describe says which queue is in use, for the start-up log; no secret.
	Describe string
	closers  []func()
}

// OpenQueue connects to the queue: Redis when REDIS_URL is set; otherwise the
// embedded queue, which serve starts in this process (run, work, watch) and
// the other commands find through its state file.
func OpenQueue(ctx context.Context, cfg *config.Config, serve bool) (*Queue, error) {
	q := &Queue{}
	switch {
	case cfg.RedisURL.IsSet():
		opt, err := queue.Open(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		q.Opt, q.Describe = opt, "Redis at "+cfg.RedisURL.String()
	case serve:
		e, err := queue.StartEmbedded(StateDir(cfg))
		if err != nil {
			return nil, err
		}
		q.Embedded, q.Opt = e, e.ConnOpt()
		q.closers = append(q.closers, e.Close)
		q.Describe = "the embedded queue (in memory; files still in an inbox are queued again after a restart, the ledger in " + StateDir(cfg) + " keeps uploads from repeating)"
	default:
		opt, err := queue.ConnectEmbedded(StateDir(cfg))
		if err != nil {
			return nil, err
		}
		q.Opt, q.Describe = opt, "the embedded queue of the daemon on this machine"
	}
	if err := queue.Ping(ctx, q.Opt, 5*time.Second); err != nil {
		q.Close()
		return nil, err
	}
	rc, err := queue.Client(q.Opt)
	if err != nil {
		q.Close()
		return nil, err
	}
	q.Redis = rc
	q.Client = asynq.NewClient(q.Opt)
	q.Inspector = asynq.NewInspector(q.Opt)
	q.closers = append([]func(){func() { q.Inspector.Close(); q.Client.Close(); rc.Close() }}, q.closers...)
	if cfg.RedisURL.IsSet() {
		q.Ledger = worker.NewRedisLedger(rc, KeyPrefix)
	} else {
		fl, err := worker.OpenFileLedger(filepath.Join(StateDir(cfg), "ledger.jsonl"))
		if err != nil {
			q.Close()
			return nil, err
		}
		q.Ledger = fl
		q.closers = append([]func(){func() { fl.Close() }}, q.closers...)
	}
	return q, nil
}

// Enqueuer returns the enqueuer of upload tasks with the configured options.
func (q *Queue) Enqueuer(cfg *config.Config) *worker.Enqueuer {
	return &worker.Enqueuer{Client: q.Client, Options: TaskOptions(cfg), Inspector: q.Inspector, Ledger: q.Ledger}
}

// TaskOptions are the task options of the configuration.
func TaskOptions(cfg *config.Config) worker.TaskOptions {
	o := worker.DefaultTaskOptions()
	o.Queue, o.MaxRetry, o.Timeout = cfg.Queue, cfg.MaxRetry, cfg.TaskTimeout
	return o
}

// Close closes the connections, and stops the embedded queue last.
func (q *Queue) Close() {
	for _, c := range q.closers {
		c()
	}
	q.closers = nil
}

// IsNoQueue reports whether err means no queue could be found.
func IsNoQueue(err error) bool { return errors.Is(err, queue.ErrNoEmbedded) }
