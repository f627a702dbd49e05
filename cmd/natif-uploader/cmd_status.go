package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/app"
	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/worker"
)

// statusReport is what `status --json` prints.
type statusReport struct {
	Queue       string            `json:"queue"`
	Backend     string            `json:"backend"`
	Pending     int               `json:"pending"`
	Active      int               `json:"active"`
	Scheduled   int               `json:"scheduled"`
	Retry       int               `json:"retry"`
	Archived    int               `json:"archived"`
	Completed   int               `json:"completed"`
	Processed   int               `json:"processed_today"`
	Failed      int               `json:"failed_today"`
	Paused      bool              `json:"paused"`
	Pause       *worker.PauseInfo `json:"pause,omitempty"`
	Credentials string            `json:"credentials_rejected,omitempty"`
	Workers     int               `json:"workers"`
	Failures    []failure         `json:"recent_failures"`
}

type failure struct {
	TaskID   string    `json:"task_id,omitempty"` // none for a file failed before it was queued
	File     string    `json:"file"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failed_at"`
}

func (a *cli) statusCommand() *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Queue counts and the most recent failures",
		Long: `Show the upload queue: pending, active, scheduled, retry, archived (failed for good) and
completed tasks, today's processed and failed counts, whether uploads are paused and why, the
workers serving the queue, and the most recent failures with file and reason. Works against Redis
while the daemons run elsewhere, or against the embedded queue of the daemon on this machine.`,
		Example: `  natif-uploader status
  natif-uploader status --json | jq .recent_failures`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			q, err := app.OpenQueue(cmd.Context(), &cfg, false)
			if err != nil {
				if app.IsNoQueue(err) {
					return fmt.Errorf("%w: %w", config.ErrInvalid, err)
				}
				return err
			}
			defer q.Close()
			r, err := report(cmd.Context(), q, &cfg, limit)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return printReport(cmd, r)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().IntVar(&limit, "failures", 10, "how many recent failures to show")
	config.BindFlags(cmd.Flags())
	return cmd
}

// queueExists reports whether asynq knows the queue (anything was ever
// queued in it). An error reading the list counts as "exists", so that the
// caller reports the original error.
func queueExists(insp *asynq.Inspector, queue string) bool {
	qs, err := insp.Queues()
	if err != nil {
		return true
	}
	for _, name := range qs {
		if name == queue {
			return true
		}
	}
	return false
}

func report(ctx context.Context, q *app.Queue, cfg *config.Config, limit int) (*statusReport, error) {
	r := &statusReport{Queue: cfg.Queue, Backend: q.Describe, Failures: []failure{}}
	info, err := q.Inspector.GetQueueInfo(cfg.Queue)
	switch {
	case err == nil:
		r.Pending, r.Active, r.Scheduled, r.Retry = info.Pending, info.Active, info.Scheduled, info.Retry
		r.Archived, r.Completed, r.Processed, r.Failed, r.Paused = info.Archived, info.Completed, info.Processed, info.Failed, info.Paused
	case errors.Is(err, asynq.ErrQueueNotFound) || !queueExists(q.Inspector, cfg.Queue):
		// Nothing queued yet: all zero. (asynq v0.25.1's GetQueueInfo
		// returns its internal NOT_FOUND error, not ErrQueueNotFound.)
	default:
		return nil, fmt.Errorf("read the queue: %w", err)
	}
	r.Pause, _ = worker.ReadPause(ctx, q.Redis, cfg.Queue)
	if cfg.AuthMode() == config.AuthPassword {
		if rej, err := auth.NewRedisFlag(q.Redis, app.KeyPrefix).Get(ctx, cfg.Username); err == nil && rej != nil {
			r.Credentials = rej.Reason
		}
	}
	if servers, err := q.Inspector.Servers(); err == nil {
		for _, s := range servers {
			if _, ok := s.Queues[cfg.Queue]; ok {
				r.Workers += s.Concurrency
			}
		}
	}
	if r.Archived > 0 && limit > 0 {
		tasks, err := q.Inspector.ListArchivedTasks(cfg.Queue, asynq.PageSize(500))
		if err == nil {
			for _, t := range tasks {
				p, _ := worker.ParsePayload(t.Payload)
				file := p.Path
				if file == "" {
					file = "(unreadable payload)"
				}
				r.Failures = append(r.Failures, failure{TaskID: t.ID, File: file, Reason: t.LastErr, FailedAt: t.LastFailedAt})
			}
		}
	}
	// Files failed before they were queued (empty, unsupported, too large,
	// incomplete, unreadable) have no task; the watcher and enqueue log them.
	if early, err := worker.NewFailureLog(q.Redis, cfg.Queue).Recent(ctx, limit); err == nil {
		for _, f := range early {
			r.Failures = append(r.Failures, failure{File: f.File, Reason: f.Reason, FailedAt: f.FailedAt})
		}
	}
	// Newest first.
	sortFailures(r.Failures)
	if len(r.Failures) > limit {
		r.Failures = r.Failures[:limit]
	}
	return r, nil
}

func sortFailures(f []failure) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].FailedAt.After(f[j-1].FailedAt); j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

func printReport(cmd *cobra.Command, r *statusReport) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "queue %q on %s\n\n", r.Queue, r.Backend)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tCOMPLETED\tPROCESSED TODAY\tFAILED TODAY\tWORKERS")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Pending, r.Active, r.Scheduled, r.Retry, r.Archived, r.Completed, r.Processed, r.Failed, r.Workers)
	tw.Flush()
	if r.Paused {
		reason := "paused"
		if r.Pause != nil {
			reason = "paused: " + r.Pause.Reason + "; next probe " + r.Pause.ProbeAt.Local().Format(time.TimeOnly)
		}
		fmt.Fprintln(out, "\nuploads "+reason)
	}
	if r.Credentials != "" {
		fmt.Fprintln(out, "\nnatif rejected the credentials: "+r.Credentials+"\n  fix them, run `natif-uploader login`, then restart or SIGHUP the daemons")
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(out, "\nrecent failures (natif-uploader retry --all puts back those with a task; move the others back into an inbox):")
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, f := range r.Failures {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.FailedAt.Local().Format("2006-01-02 15:04"), f.File, oneLineReason(f.Reason))
		}
		tw.Flush()
	}
	return nil
}

func oneLineReason(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.TrimSuffix(s, ": skip retry for the task")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func (a *cli) retryCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "retry [--all | TASK_ID...]",
		Short: "Put failed uploads back in the queue",
		Long: `Put archived (failed) upload tasks back in the queue. A file that went to the failed folder
is moved back to where it was found, and its .error.json removed, so the next attempt finds it.
Files that failed before they were queued (empty, unsupported, incomplete) have no task: move them
back into an inbox and the watcher takes them again.`,
		Example: `  natif-uploader retry --all
  natif-uploader retry sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			if all == (len(ids) > 0) {
				return usageError{errors.New("retry needs --all or task IDs (see natif-uploader status)")}
			}
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			q, err := app.OpenQueue(cmd.Context(), &cfg, false)
			if err != nil {
				if app.IsNoQueue(err) {
					return fmt.Errorf("%w: %w", config.ErrInvalid, err)
				}
				return err
			}
			defer q.Close()
			if all {
				tasks, err := q.Inspector.ListArchivedTasks(cfg.Queue, asynq.PageSize(100000))
				if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
					return err
				}
				for _, t := range tasks {
					ids = append(ids, t.ID)
				}
			}
			roots, err := worker.NewRoots(append(append([]string(nil), cfg.Inboxes...), cfg.AllowedRoots...)...)
			if err != nil {
				return err
			}
			retried, moved := 0, 0
			for _, id := range ids {
				t, err := q.Inspector.GetTaskInfo(cfg.Queue, id)
				if err != nil {
					return fmt.Errorf("task %s: %w", id, err)
				}
				if t.State != asynq.TaskStateArchived {
					fmt.Fprintf(cmd.OutOrStdout(), "%s is %s, not failed: left as it is\n", id, t.State)
					continue
				}
				if p, err := worker.ParsePayload(t.Payload); err == nil {
					if ok, err := roots.Restore(cfg.FailedDir, p); err != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: cannot move %s back: %v\n", id, p.Path, err)
					} else if ok {
						moved++
					}
				}
				if err := q.Inspector.RunTask(cfg.Queue, id); err != nil {
					return fmt.Errorf("task %s: %w", id, err)
				}
				retried++
			}
			fmt.Fprintf(cmd.OutOrStdout(), "retrying %d uploads (%d files moved back from %s)\n", retried, moved, cfg.FailedDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "retry every failed upload")
	config.BindFlags(cmd.Flags())
	return cmd
}
