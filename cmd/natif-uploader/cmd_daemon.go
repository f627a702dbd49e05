package main

import (
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/app"
	"github.com/natif-uploader/natif-uploader/config"
)

func (a *cli) daemonCommand(use, short, long, example string, roles app.Roles) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: example,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			if roles.Work {
				if err := cfg.RequireCredentials(); err != nil {
					return err
				}
			}
			return app.Run(cmd.Context(), cfg, roles, app.Options{
				Logger: a.log, Redactor: a.redactor, Reload: a.env.Reload,
				Reconfigure: func() (config.Config, error) { return a.loadConfig(cmd) },
			})
		},
	}
	config.BindFlags(cmd.Flags())
	return cmd
}

func (a *cli) runCommand() *cobra.Command {
	return a.daemonCommand("run", "Watch the inboxes and upload: the hot-folder daemon",
		`Watch every inbox (fsnotify, rescans, polling on network shares), queue each complete file, and
upload the queue to natif with NATIF_CONCURRENCY workers and one shared token manager. Uploaded
files move to NATIF_DONE_DIR with <file>.natif.json, failed ones to NATIF_FAILED_DIR with
<file>.error.json.

Without REDIS_URL the queue is embedded in this process: nothing to set up, and a restart (even
after kill -9) loses no file. With REDIS_URL, several run/watch/work processes share one queue.

SIGTERM or SIGINT stops the watcher, gives in-flight uploads NATIF_SHUTDOWN_TIMEOUT, and puts the
rest back in the queue unspent; a second signal exits at once. SIGHUP reads the credentials again.`,
		`  NATIF_USERNAME=me NATIF_PASSWORD_FILE=/run/secrets/natif natif-uploader run --inbox /srv/scans
  REDIS_URL=redis://127.0.0.1:6379/0 NATIF_API_KEY_FILE=/run/secrets/key natif-uploader run`,
		app.Roles{Watch: true, Work: true})
}

func (a *cli) watchCommand() *cobra.Command {
	return a.daemonCommand("watch", "Watch the inboxes and queue complete files, without uploading",
		`The watcher alone, for the file-server node: complete files are queued in Redis for work
processes elsewhere (which need the same paths, e.g. the same share mounted). Needs REDIS_URL to be
useful: with the embedded queue nothing else can take the tasks.`,
		`  REDIS_URL=redis://queue.internal:6379/0 natif-uploader watch --inbox /srv/scans`,
		app.Roles{Watch: true})
}

func (a *cli) workCommand() *cobra.Command {
	return a.daemonCommand("work", "Upload queued files, without watching: scale-out nodes",
		`Workers alone: take upload tasks from the queue (REDIS_URL) and upload them. Run as many as
natif's page limits allow; they share one Redis and see the same file share at the same paths.`,
		`  REDIS_URL=redis://queue.internal:6379/0 NATIF_API_KEY_FILE=/run/secrets/key natif-uploader work --concurrency 16`,
		app.Roles{Work: true})
}
