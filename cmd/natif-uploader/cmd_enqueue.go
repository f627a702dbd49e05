package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/app"
	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/watcher"
	"github.com/natif-uploader/natif-uploader/worker"
)

func (a *cli) enqueueCommand() *cobra.Command {
	var (
		wait      bool
		filesFrom string
		interval  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "enqueue [--wait] [--files-from FILE|-] PATH...",
		Short: "Queue every eligible file under PATH: backlogs and cron runs",
		Long: `Queue every eligible, complete file under each PATH (files or folders inside an inbox or
NATIF_ALLOWED_ROOTS), by the watcher's rules: filters, settle time, end markers, SHA-256 identity.
Content already queued is not queued again; content already uploaded moves to done as a duplicate.

--wait follows every queued file until it is uploaded or failed, with a progress bar on a terminal
and a log line every --interval otherwise. It warns when no worker serves the queue, exits 3 as soon
as natif is known to have rejected the credentials, 1 when some files failed (listing them), 0 when
all were uploaded. Ctrl-C stops waiting; the queued files stay queued.`,
		Example: `  natif-uploader enqueue /srv/scans/inbox/2025
  find /srv/scans/inbox -name '*.pdf' -mtime +1 | natif-uploader enqueue --files-from - --wait
  # cron: 0 2 * * *  natif-uploader enqueue --wait /srv/scans/backlog >> /var/log/natif-backlog.log 2>&1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			paths := args
			if filesFrom != "" {
				more, err := readList(filesFrom, a.env.Stdin)
				if err != nil {
					return fmt.Errorf("%w: --files-from=%s: %w", config.ErrInvalid, filesFrom, err)
				}
				paths = append(paths, more...)
			}
			if len(paths) == 0 {
				return usageError{errors.New("enqueue needs at least one PATH, or --files-from")}
			}
			return a.enqueue(cmd.Context(), cmd, &cfg, paths, wait, interval)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every queued file is uploaded or failed")
	cmd.Flags().StringVar(&filesFrom, "files-from", "", "read more paths from FILE, one per line (- for standard input)")
	cmd.Flags().DurationVar(&interval, "interval", 10*time.Second, "with --wait and no terminal: time between progress lines")
	config.BindFlags(cmd.Flags())
	return cmd
}

func readList(name string, stdin io.Reader) ([]string, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

func (a *cli) enqueue(ctx context.Context, cmd *cobra.Command, cfg *config.Config, paths []string, wait bool, interval time.Duration) error {
	log := logging.Component(a.log, "enqueue")
	q, err := app.OpenQueue(ctx, cfg, false)
	if err != nil {
		if app.IsNoQueue(err) {
			return fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		return err
	}
	defer q.Close()
	var ids []string
	sum, err := watcher.Scan(ctx, watcher.Options{
		Inboxes: cfg.Inboxes, AllowedRoots: cfg.AllowedRoots, DoneDir: cfg.DoneDir, FailedDir: cfg.FailedDir,
		Settle: cfg.Settle, MaxFileSize: cfg.MaxFileSize, IncompleteTimeout: cfg.IncompleteTimeout,
		Filter:   watcher.Filter{Include: cfg.Include, Exclude: cfg.Exclude},
		Enqueuer: q.Enqueuer(cfg), Ledger: q.Ledger, Failures: worker.NewFailureLog(q.Redis, cfg.Queue),
		Hashers: 8, Logger: logging.Component(a.log, "scan"),
	}, paths, func(p worker.Payload, _ watcher.Outcome) { ids = append(ids, worker.TaskID(p.SHA256)) })
	if err != nil {
		if errors.Is(err, watcher.ErrNotInRoot) || errors.Is(err, watcher.ErrThroughLink) {
			return fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "queued %d, already queued %d, duplicates moved to done %d, failed without upload %d, left for later %d, skipped %d, errors %d\n",
		sum.Queued, sum.AlreadyQueued, sum.Duplicates, sum.Failed, sum.Waiting, sum.Skipped, sum.Errors)
	var scanErr error
	switch {
	case sum.Errors > 0:
		scanErr = &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d files could not be queued", sum.Errors)}
	case sum.Failed > 0:
		scanErr = &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d files failed without an upload (see %s)", sum.Failed, cfg.FailedDir)}
	}
	if !wait || len(ids) == 0 {
		return scanErr
	}
	if err := a.waitFor(ctx, out, q, cfg, ids, interval, log); err != nil {
		return err
	}
	return scanErr
}

// waitFor follows the tasks until each is completed (uploaded) or archived
// (failed).
func (a *cli) waitFor(ctx context.Context, out io.Writer, q *app.Queue, cfg *config.Config, ids []string, interval time.Duration, log zerolog.Logger) error {
	if servers, err := q.Inspector.Servers(); err == nil && !serves(servers, cfg.Queue) {
		log.Warn().Str("queue", cfg.Queue).Msg("no worker serves this queue yet: start natif-uploader run or work, or the wait lasts until one does")
	}
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	var failed, gone []string
	done := 0
	_, shared := q.Ledger.(*worker.RedisLedger)
	var bar *progressbar.ProgressBar
	if a.env.StderrIsTerminal {
		bar = progressbar.NewOptions(len(ids), progressbar.OptionSetWriter(a.env.Stderr), progressbar.OptionSetDescription("uploading"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("files"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	lastLine := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "interrupted: %d files stay queued and will be uploaded by the workers\n", len(pending))
			return &ExitError{Code: 130, Err: errors.New("interrupted while waiting")}
		case <-tick.C:
		}
		if rejected, why := credentialsRejected(ctx, q, cfg); rejected {
			fmt.Fprintf(out, "natif rejected the credentials: %s; %d files stay queued\n", why, len(pending))
			return &ExitError{Code: ExitCredentials, Err: errors.New("natif rejected the credentials: " + why)}
		}
		for id := range pending {
			info, err := q.Inspector.GetTaskInfo(cfg.Queue, id)
			if err != nil {
				if errors.Is(err, asynq.ErrTaskNotFound) {
					delete(pending, id) // retention over: it ended long ago
					done++
				}
				continue
			}
			switch info.State {
			case asynq.TaskStateCompleted:
				delete(pending, id)
				// A completed task without a record in the shared (Redis)
				// ledger uploaded nothing: its file vanished, or changed
				// and was queued again under its new content. (The
				// embedded queue's file ledger is read once at start, so
				// this process cannot see the daemon's new records.)
				if p, err := worker.ParsePayload(info.Payload); err == nil && shared && notUploaded(ctx, q.Ledger, p.SHA256) {
					gone = append(gone, p.Path)
				} else {
					done++
				}
			case asynq.TaskStateArchived:
				delete(pending, id)
				p, _ := worker.ParsePayload(info.Payload)
				failed = append(failed, fmt.Sprintf("%s: %s", p.Path, info.LastErr))
				if bar != nil {
					bar.Describe(fmt.Sprintf("uploading (%d failed)", len(failed)))
				}
			default:
				continue
			}
			if bar != nil {
				bar.Add(1)
			}
		}
		if bar == nil && time.Since(lastLine) >= interval {
			lastLine = time.Now()
			log.Info().Int("uploaded", done).Int("failed", len(failed)).Int("vanished", len(gone)).Int("waiting", len(pending)).Msg("progress")
		}
	}
	if bar != nil {
		bar.Finish()
	}
	fmt.Fprintf(out, "uploaded %d, failed %d\n", done, len(failed))
	if len(gone) > 0 {
		sort.Strings(gone)
		fmt.Fprintf(out, "not uploaded, the file vanished or changed after it was queued (a changed file is queued again under its new content): %d\n", len(gone))
		for _, g := range gone {
			fmt.Fprintln(out, "  not uploaded: "+g)
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		for _, f := range failed {
			fmt.Fprintln(out, "  failed: "+f)
		}
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d files failed", len(failed))}
	}
	return nil
}

// notUploaded reports whether the ledger answers that sha was never
// uploaded (an error is no answer).
func notUploaded(ctx context.Context, l worker.Ledger, sha string) bool {
	rec, err := l.Get(ctx, sha)
	return err == nil && rec == nil
}

func serves(servers []*asynq.ServerInfo, queue string) bool {
	for _, s := range servers {
		if _, ok := s.Queues[queue]; ok && s.Status == "active" {
			return true
		}
	}
	return false
}

// credentialsRejected reports whether natif is known to have rejected the
// credentials of this configuration: the shared flag (password grant), or a
// pause recorded for rejected credentials (API key).
func credentialsRejected(ctx context.Context, q *app.Queue, cfg *config.Config) (bool, string) {
	if cfg.AuthMode() == config.AuthPassword {
		// The flag alone decides: `login` clears it, while a pause record
		// for rejected credentials stays until a worker resumes the queue.
		if rej, err := auth.NewRedisFlag(q.Redis, app.KeyPrefix).Get(ctx, cfg.Username); err == nil && rej != nil && rej.Rejects(cfg.Password) {
			return true, rej.Reason
		}
		return false, ""
	}
	if info, err := worker.ReadPause(ctx, q.Redis, cfg.Queue); err == nil && info != nil && info.Credentials {
		return true, info.Reason
	}
	return false, ""
}
