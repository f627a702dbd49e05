package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/logging"
	"github.com/natif-uploader/natif-uploader/queue"
)

// credentialsPrefix is where natif-uploader keeps its own keys in Redis.
const credentialsPrefix = "natif-uploader:"

func (a *cli) loginCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check the credentials against natif; print subject, scopes and expiry",
		Long: `Log in once and print who natif says we are, the granted scopes and when the tokens
expire. No token is ever printed. With the password grant this sends one password grant to
POST /token; with an API key it makes one authorised request (a GET of a document that does
not exist: 404 means the key was accepted).

login is also the operator's reset: after natif rejected the credentials, the daemons send
no password again (and, sharing a Redis, neither does any other process) until a login with
fixed credentials succeeds here, which clears the shared flag.

Exit codes: 0 accepted, 3 rejected by natif, 2 configuration error, 1 natif unreachable.`,
		Example: `  NATIF_USERNAME=demo NATIF_PASSWORD_FILE=/run/secrets/natif natif-uploader login
  NATIF_API_KEY_FILE=/run/secrets/natif-key natif-uploader login`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			if err := cfg.RequireCredentials(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return a.login(ctx, cmd.OutOrStdout(), &cfg)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	config.BindFlags(cmd.Flags())
	return cmd
}

func (a *cli) login(ctx context.Context, out io.Writer, cfg *config.Config) error {
	opts := auth.Options{Logger: logging.Component(a.log, "auth"), Secrets: a.redactor}
	if cfg.RedisURL.IsSet() {
		opt, err := queue.Open(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		client, err := queue.Client(opt)
		if err != nil {
			return err
		}
		defer client.Close()
		opts.Flag = auth.NewRedisFlag(client, credentialsPrefix)
	}
	src, err := auth.New(cfg, opts)
	if err != nil {
		return err
	}
	switch s := src.(type) {
	case *auth.Manager:
		if _, err := s.Login(ctx); err != nil {
			return loginError(err)
		}
		st := s.Status()
		now := time.Now()
		fmt.Fprintf(out, "natif accepted the password grant (realm %s, %s)\n", cfg.Realm, cfg.BaseURL)
		fmt.Fprintf(out, "  subject:        %s\n", orDash(st.Subject))
		fmt.Fprintf(out, "  scopes:         %s\n", orDash(st.Scope))
		fmt.Fprintf(out, "  access token:   expires %s (in %s)\n", st.AccessExpiry.UTC().Format(time.RFC3339), st.AccessExpiry.Sub(now).Round(time.Second))
		if !st.RefreshExpiry.IsZero() {
			fmt.Fprintf(out, "  refresh token:  expires %s (in %s)\n", st.RefreshExpiry.UTC().Format(time.RFC3339), st.RefreshExpiry.Sub(now).Round(time.Second))
		}
		return nil
	default:
		return a.checkAPIKey(ctx, out, cfg, src)
	}
}

// checkAPIKey makes one authorised request: a document that cannot exist.
// 404 means natif accepted the key; 401 means it is expired or revoked.
func (a *cli) checkAPIKey(ctx context.Context, out io.Writer, cfg *config.Config, src auth.Source) error {
	client := &http.Client{Transport: &auth.Transport{Source: src, BaseURL: cfg.BaseURL}}
	url := strings.TrimRight(cfg.BaseURL, "/") + "/documents/00000000-0000-0000-0000-000000000000"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return loginError(err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode < 300:
		fmt.Fprintf(out, "natif accepted the API key (%s)\n", cfg.BaseURL)
		fmt.Fprintln(out, "  subject:        the organisation's machine user (API keys carry no token to read)")
		fmt.Fprintln(out, "  expiry:         set when the key was created; see the natif API Hub")
		return nil
	case resp.StatusCode == http.StatusForbidden:
		return &ExitError{Code: ExitCredentials, Err: errors.New("natif accepted the API key but answered 403: it is not authorised for documents")}
	default:
		return fmt.Errorf("natif answered %d to the API-key check", resp.StatusCode)
	}
}

func loginError(err error) error {
	if errors.Is(err, auth.ErrCredentialsRejected) {
		return &ExitError{Code: ExitCredentials, Err: err}
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
