package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCommand asks a running daemon's /healthz (or /readyz) and exits
// 0 or 1. It exists for the container's HEALTHCHECK: the image has no shell
// and no curl, only this binary.
func (a *cli) healthcheckCommand() *cobra.Command {
	var addr string
	var ready bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Ask a running daemon's /healthz (or /readyz with --ready); exit 0 when healthy, 1 when not",
		Long: `Ask the /healthz endpoint of a daemon running on this machine (NATIF_METRICS_ADDR, or --addr)
and exit 0 when it answers 200, 1 otherwise. With --ready it asks /readyz instead: queue reachable,
credentials good, uploads not paused. The Docker image's HEALTHCHECK runs this command.`,
		Example: `  natif-uploader healthcheck
  natif-uploader healthcheck --addr 127.0.0.1:9464 --ready`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				cfg, err := a.loadConfig(cmd)
				if err != nil {
					return err
				}
				addr = cfg.MetricsAddr
			}
			if addr == "" {
				return usageError{fmt.Errorf("healthcheck: NATIF_METRICS_ADDR is empty (the endpoint is disabled); set it or pass --addr")}
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return usageError{fmt.Errorf("healthcheck: --addr %q: want HOST:PORT", addr)}
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1" // a wildcard listen address is asked on loopback
			}
			path := "/healthz"
			if ready {
				path = "/readyz"
			}
			url := "http://" + net.JoinHostPort(host, port) + path
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("healthcheck: %s: %w", url, err)}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d %s\n", url, resp.StatusCode, body)
			if resp.StatusCode != http.StatusOK {
				return &ExitError{Code: ExitFailed, Err: fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "HOST:PORT of the daemon's metrics endpoint (default NATIF_METRICS_ADDR)")
	cmd.Flags().BoolVar(&ready, "ready", false, "ask /readyz instead of /healthz")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}
