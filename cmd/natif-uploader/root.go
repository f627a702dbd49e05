package main

import (
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/config"
)

func (a *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "natif-uploader",
		Short: "Upload invoice files from hot folders to natif.ai, safely",
		Long: `natif-uploader picks complete invoice files (PDF, JPEG, PNG, GIF, TIFF) up from hot
folders, queues them in Redis with asynq, and uploads each one to the natif.ai API with one
refresh-safe token manager per process.

Configuration comes from a YAML file (--config, default configs/natif-uploader.yaml when
present), then the environment (NATIF_*, REDIS_URL), then flags; secrets only from the
environment or *_FILE paths. Exit codes: 0 success, 1 some files failed, 2 usage or
configuration error, 3 credentials rejected by natif.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.cfgFile, "config", "", "YAML configuration file (default "+config.DefaultFile+" when present)")
	config.BindGlobalFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		a.runCommand(),
		a.watchCommand(),
		a.workCommand(),
		a.enqueueCommand(),
		a.statusCommand(),
		a.retryCommand(),
		a.demoCommand(),
		a.configCommand(),
		a.fakeAPICommand(),
		a.loginCommand(),
		a.versionCommand(),
		a.healthcheckCommand(),
	)
	return root
}
