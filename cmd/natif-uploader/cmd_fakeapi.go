package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/logging"
)

func (a *cli) fakeAPICommand() *cobra.Command {
	var (
		addr string
		opts fakeapi.Options
	)
	cmd := &cobra.Command{
		Use:   "fake-api",
		Short: "Run a local natif API simulator for demos, tests and dry runs",
		Long: `Serve a faithful local natif API: /token with the password and refresh-token grants,
Keycloak-shaped errors, single-use refresh tokens whose reuse kills the session, ApiKey auth,
POST /documents/, GET /documents/{uuid}, POST /processing/{workflow} with 201 or 202 and
GET /processing/results/{id}, page rate limits answering 429, and fault injection.
Counters at GET /_sim/stats; faults can be changed at run time with POST /_sim/faults.

Out of the box it accepts user demo with password demo, and API key demo-key.`,
		Example: `  natif-uploader fake-api --addr 127.0.0.1:8089
  natif-uploader fake-api --access-ttl 3s --refresh-ttl 15s --server-error-rate 0.1
  natif-uploader fake-api --pages-per-second 10 --pages-per-minute 100 --pages-per-hour 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.setupLoggerOnly(cmd); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return fmt.Errorf("%w: %w", config.ErrInvalid, err)
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("%w: --addr=%q: must be HOST:PORT", config.ErrInvalid, addr)
			}
			opts.Logger = a.log // the simulator adds its component itself
			return serveFakeAPI(cmd.Context(), cmd.OutOrStdout(), logging.Component(a.log, "fake-api"), addr, opts)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8089", "listen address")
	gofs := flag.NewFlagSet("fake-api", flag.ContinueOnError)
	fakeapi.BindFlags(gofs, &opts)
	cmd.Flags().AddGoFlagSet(gofs)
	return cmd
}

// serveFakeAPI serves until ctx ends, then shuts down within five seconds.
func serveFakeAPI(ctx context.Context, out io.Writer, log zerolog.Logger, addr string, opts fakeapi.Options) error {
	sim := fakeapi.New(opts)
	defer sim.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fake-api: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	eff := sim.Options()
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "natif simulator listening on %s (realm %s, user %s; access %s, refresh %s)\n",
		url, eff.Realm, eff.Username, eff.AccessTTL, eff.RefreshTTL)
	log.Info().Str("addr", ln.Addr().String()).Msg("natif simulator listening")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("fake-api: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fake-api shutdown: %w", err)
	}
	log.Info().Msg("natif simulator stopped")
	return nil
}
