package natif

import (
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/redact"
)

// TokenResponse is a successful /token answer. The tokens are redact.Secret,
// so logging or printing a TokenResponse shows no token.
type TokenResponse struct {
	AccessToken      redact.Secret
	RefreshToken     redact.Secret // empty when the answer carried none
	TokenType        string
	Scope            string
	SessionState     string
	ExpiresIn        time.Duration
	RefreshExpiresIn time.Duration
}

// ErrBadTokenResponse is returned for a 2xx /token answer that cannot be used.
var ErrBadTokenResponse = errors.New("token endpoint answered 200 without a usable token")

// ParseTokenResponse decodes a 2xx /token body. The error never quotes the body.
func ParseTokenResponse(body []byte) (TokenResponse, error) {
	var wire struct {
		AccessToken      string `json:"access_token"`
		ExpiresIn        int64  `json:"expires_in"`
		RefreshToken     string `json:"refresh_token"`
		RefreshExpiresIn int64  `json:"refresh_expires_in"`
		TokenType        string `json:"token_type"`
		Scope            string `json:"scope"`
		SessionState     string `json:"session_state"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return TokenResponse{}, ErrBadTokenResponse
	}
	// A lifetime a time.Duration cannot hold (about 292 years; found by
	// fuzzing: expires_in 9700000000 overflowed to a negative lifetime) is
	// no answer a server means.
	const maxLifetime = math.MaxInt64 / int64(time.Second)
	if wire.AccessToken == "" || wire.ExpiresIn <= 0 || wire.ExpiresIn > maxLifetime ||
		wire.RefreshExpiresIn > maxLifetime || wire.RefreshExpiresIn < -maxLifetime {
		return TokenResponse{}, ErrBadTokenResponse
	}
	return TokenResponse{
		AccessToken:      redact.NewSecret(wire.AccessToken),
		RefreshToken:     redact.NewSecret(wire.RefreshToken),
		TokenType:        wire.TokenType,
		Scope:            wire.Scope,
		SessionState:     wire.SessionState,
		ExpiresIn:        time.Duration(wire.ExpiresIn) * time.Second,
		RefreshExpiresIn: time.Duration(wire.RefreshExpiresIn) * time.Second,
	}, nil
}

// MarshalZerologObject logs what is safe to log about a token answer.
func (t TokenResponse) MarshalZerologObject(e *zerolog.Event) {
	e.Str("token_type", t.TokenType).
		Str("scope", t.Scope).
		Dur("expires_in", t.ExpiresIn).
		Dur("refresh_expires_in", t.RefreshExpiresIn).
		Bool("has_refresh_token", t.RefreshToken.IsSet())
}
