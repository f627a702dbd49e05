package auth

import (
	"errors"

	"github.com/natif-uploader/natif-uploader/config"
)

// New returns the Source the configuration selects: the API key when set,
// else the password grant. opts supplies what the configuration does not
// (HTTP client, clock, flag, logger, secrets registry); its credential and
// endpoint fields are overwritten from cfg.
func New(cfg *config.Config, opts Options) (Source, error) {
	switch cfg.AuthMode() {
	case config.AuthAPIKey:
		return NewAPIKey(cfg.APIKey), nil
	case config.AuthPassword:
		opts.BaseURL = cfg.BaseURL
		opts.Realm = cfg.Realm
		opts.Username = cfg.Username
		opts.Password = cfg.Password
		opts.Scopes = cfg.Scopes
		return NewManager(opts)
	default:
		return nil, errors.New("auth: no credentials configured")
	}
}
