package main

import (
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/config"
)

func (a *cli) configCommand() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration, secrets redacted",
		Long: `Print every setting, its effective value and where it came from (default, file and
line, environment, or command line). Secrets show as [REDACTED]; a Redis password as xxxxx.
An invalid configuration exits 2 with one line naming the setting. With --check, missing
natif credentials are an error too: the configuration must be ready for run.`,
		Example: `  natif-uploader config
  NATIF_CONCURRENCY=16 natif-uploader config --inbox /srv/scans
  natif-uploader --config /etc/natif-uploader.yaml config --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			if check {
				if err := cfg.RequireCredentials(); err != nil {
					return err
				}
			}
			return cfg.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "also require natif credentials")
	config.BindFlags(cmd.Flags())
	return cmd
}
