package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/redact"
	"github.com/natif-uploader/natif-uploader/watcher"
	"github.com/natif-uploader/natif-uploader/worker"
)

// Roles says what a daemon process does.
type Roles struct {
	Watch bool // find files and queue them (watch, run)
	Work  bool // upload queued files (work, run)
}

// Options are what main hands the daemon besides the configuration.
type Options struct {
	Logger   zerolog.Logger
	Redactor *redact.Writer
	// Ready, when set, receives the metrics address once it listens (tests).
	Ready func(metricsAddr string)
	// Reload delivers SIGHUP: the credentials are read again.
	Reload <-chan struct{}
	// Reconfigure returns the configuration as it is now (for Reload).
	Reconfigure func() (config.Config, error)
}

// Daemon is a running run, watch or work process.
type Daemon struct {
	cfg   config.Config
	roles Roles
	o     Options
	log   zerolog.Logger

	q       *Queue
	source  auth.Source
	pause   *worker.Pause
	reg     *prometheus.Registry
	server  *asynq.Server
	watcher *watcher.Watcher
}

// Run starts the daemon and runs it until ctx ends, then shuts it down in
// order: the watcher first (no new tasks), then the workers (in-flight
// uploads get NATIF_SHUTDOWN_TIMEOUT; the rest goes back to the queue without
// spending a retry), then the metrics endpoint, then the queue.
func Run(ctx context.Context, cfg config.Config, roles Roles, o Options) error {
	d := &Daemon{cfg: cfg, roles: roles, o: o, log: o.Logger, reg: prometheus.NewRegistry()}
	log := logging.Component(o.Logger, "daemon")

	q, err := OpenQueue(ctx, &d.cfg, true)
	if err != nil {
		return err
	}
	defer q.Close()
	d.q = q
	log.Info().Str("queue", cfg.Queue).Msg("queue: " + q.Describe)
	if q.Embedded != nil && !(roles.Watch && roles.Work) {
		log.Warn().Msg("the embedded queue serves this process only: with watch or work alone, set REDIS_URL so that other processes share it")
	}

	d.reg.MustRegister(newQueueCollector(q.Inspector, cfg.Queue))
	metrics := worker.NewMetrics(d.reg)

	var wg sync.WaitGroup
	if roles.Work {
		if err := d.startWorkers(metrics); err != nil {
			return err
		}
	}
	if d.cfg.MetricsAddr != "" {
		srv, addr, err := d.serveHTTP()
		if err != nil {
			if d.server != nil {
				d.server.Shutdown()
			}
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info().Str("addr", addr).Msg("serving /metrics, /healthz and /readyz")
		if o.Ready != nil {
			o.Ready(addr)
		}
	} else if o.Ready != nil {
		o.Ready("")
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if roles.Watch {
		d.watcher = watcher.New(watcher.Options{
			Inboxes: cfg.Inboxes, AllowedRoots: cfg.AllowedRoots, DoneDir: cfg.DoneDir, FailedDir: cfg.FailedDir,
			Settle: cfg.Settle, MaxFileSize: cfg.MaxFileSize, Mode: cfg.WatchMode, PollInterval: cfg.PollInterval,
			RescanInterval: cfg.RescanInterval, IncompleteTimeout: cfg.IncompleteTimeout,
			Filter:   watcher.Filter{Include: cfg.Include, Exclude: cfg.Exclude},
			Enqueuer: q.Enqueuer(&d.cfg), Ledger: q.Ledger, Failures: worker.NewFailureLog(q.Redis, cfg.Queue),
			Logger: logging.Component(o.Logger, "watcher"),
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.watcher.Run(watchCtx); err != nil {
				log.Error().Err(err).Msg("watcher stopped")
			}
		}()
	}
	if d.pause != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.pause.Run(watchCtx)
		}()
	}

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-o.Reload:
			d.reload(log)
		}
	}
	log.Info().Msg("stopping: the watcher first, then the workers")
	stopWatching()
	wg.Wait()
	if d.server != nil {
		d.server.Shutdown() // waits up to NATIF_SHUTDOWN_TIMEOUT; the rest is requeued
	}
	log.Info().Msg("stopped")
	return nil
}

// startWorkers builds the token source, the uploader, the handler and the
// asynq server.
func (d *Daemon) startWorkers(metrics *worker.Metrics) error {
	cfg := &d.cfg
	if err := cfg.RequireCredentials(); err != nil {
		return err
	}
	aopts := auth.Options{Logger: logging.Component(d.o.Logger, "auth"), Secrets: d.o.Redactor,
		Flag: auth.NewRedisFlag(d.q.Redis, KeyPrefix)}
	src, err := auth.New(cfg, aopts)
	if err != nil {
		return err
	}
	d.source = src
	if m, ok := src.(*auth.Manager); ok {
		if err := auth.RegisterMetrics(d.reg, m); err != nil {
			return err
		}
	}
	roots, err := worker.NewRoots(append(append([]string(nil), cfg.Inboxes...), cfg.AllowedRoots...)...)
	if err != nil {
		return err
	}
	up := &worker.Uploader{
		Client:   &http.Client{Transport: &auth.Transport{Source: src, BaseURL: cfg.BaseURL}},
		BaseURL:  cfg.BaseURL,
		Endpoint: cfg.UploadEndpoint(), Processing: cfg.Workflow != "",
		Include: cfg.WorkflowInclude, WaitFor: cfg.WorkflowWaitFor, Parameters: cfg.WorkflowParameters,
	}
	d.pause = &worker.Pause{Queue: cfg.Queue, Control: d.q.Inspector, Source: src, Logger: logging.Component(d.o.Logger, "pause"),
		Metrics: metrics, Redis: d.q.Redis}
	enq := d.q.Enqueuer(cfg)
	h := worker.NewHandler(worker.Options{
		Roots: roots, DoneDir: cfg.DoneDir, FailedDir: cfg.FailedDir, MaxFileSize: cfg.MaxFileSize,
		Uploader: up, Ledger: d.q.Ledger, Requeue: enq.Enqueue, Pauser: d.pause, OnSuccess: d.pause.Succeeded,
		RateLimit: cfg.RateLimit, FetchResults: cfg.FetchResults, Metrics: metrics,
		Logger: logging.Component(d.o.Logger, "worker"),
	})
	d.server = asynq.NewServer(d.q.Opt, worker.ServerConfig(cfg.Queue, cfg.Concurrency, cfg.ShutdownTimeout, logging.Component(d.o.Logger, "asynq")))
	mux := asynq.NewServeMux()
	mux.Handle(worker.TaskType, h)
	if err := d.server.Start(mux); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	dlog := logging.Component(d.o.Logger, "daemon")
	dlog.Info().Int("concurrency", cfg.Concurrency).Str("endpoint", cfg.UploadEndpoint()).
		Str("auth", string(cfg.AuthMode())).Msg("workers started")
	return nil
}

// reload reads the configuration again on SIGHUP: a changed password is
// tried; an unchanged one clears a local rejection so that the shared flag
// is consulted again (an operator's `login` may have cleared it).
func (d *Daemon) reload(log zerolog.Logger) {
	if d.o.Reconfigure == nil || d.source == nil {
		return
	}
	cfg, err := d.o.Reconfigure()
	if err != nil {
		log.Error().Err(err).Msg("reload: configuration invalid; keeping the running one")
		return
	}
	if m, ok := d.source.(*auth.Manager); ok {
		if d.o.Redactor != nil {
			d.o.Redactor.Pin(cfg.Password.Reveal())
		}
		m.SetPassword(cfg.Password)
		if d.cfg.RedisURL.Reveal() == "" {
			m.ResetPastFlag() // the embedded queue's flag: nobody else can clear it
		} else {
			m.Reset()
		}
		log.Info().Msg("reload: credentials read again")
	}
	if d.pause != nil {
		d.pause.ProbeNow() // try the fix now, not at the next probe time
	}
}

// serveHTTP serves /metrics, /healthz and /readyz.
func (d *Daemon) serveHTTP() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", d.cfg.MetricsAddr)
	if err != nil {
		return nil, "", fmt.Errorf("NATIF_METRICS_ADDR=%s: %w", d.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(d.reg))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/readyz", d.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("metrics endpoint stopped")
		}
	}()
	return srv, ln.Addr().String(), nil
}
