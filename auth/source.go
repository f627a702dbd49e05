package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/natif-uploader/natif-uploader/redact"
)

// Source gives out the Authorization header for natif API requests.
type Source interface {
	// Token returns credentials valid for at least minValidity more (capped
	// by what the server grants), waiting while a login or refresh is under
	// way. It fails at once with an error wrapping ErrCredentialsRejected once
	// natif has rejected the credentials, and with the context's error (and
	// the last token error) when ctx ends first.
	Token(ctx context.Context, minValidity time.Duration) (Token, error)
	// Unauthorized reports that natif answered 401 to a request made with t.
	// The password grant refreshes once if t is still the current token; an
	// API key is then known to be expired or revoked.
	Unauthorized(t Token)
	// Status describes the credentials' state, for readiness and `login`.
	Status() Status
}

// Token is one Authorization header value and the generation it belongs to.
type Token struct {
	header redact.Secret
	// Gen grows with every new access token; 0 for an API key.
	Gen uint64
	// Expiry is when the access token expires; zero for an API key.
	Expiry time.Time
}

// Apply sets the Authorization header on req.
func (t Token) Apply(req *http.Request) { req.Header.Set("Authorization", t.header.Reveal()) }

// IsZero reports whether t holds no credentials.
func (t Token) IsZero() bool { return !t.header.IsSet() }

// ErrCredentialsRejected is wrapped by every error that means natif refused
// the credentials for good: a wrong password, a locked or disabled account, a
// revoked API key, or a token endpoint configuration natif does not accept.
// Nothing is retried until the credentials change or an operator logs in.
var ErrCredentialsRejected = errors.New("natif rejected the credentials")

// RejectedError says why the credentials are rejected and what to fix.
type RejectedError struct {
	Reason string // natif's words (error code and description), or ours
	Hint   string // what the operator should do
	At     time.Time
	Host   string // the process that saw it, when it came from another one

	// salt and verifier identify the rejected password in the shared flag
	// (scrypt, never the password): a process whose password differs is not
	// blocked by it.
	salt, verifier []byte
}

// scrypt parameters of the verifier: about 50 ms and 32 MiB per check, paid
// only when a rejection is shared or a login is about to be sent.
const scryptN, scryptR, scryptP, scryptLen = 1 << 15, 8, 1, 32

func (e *RejectedError) setVerifier(password redact.Secret) error {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	v, err := scrypt.Key([]byte(password.Reveal()), salt, scryptN, scryptR, scryptP, scryptLen)
	if err != nil {
		return err
	}
	e.salt, e.verifier = salt, v
	return nil
}

// Rejects reports whether this rejection is about password. A rejection
// without a verifier (written by another version, or unverifiable) blocks
// every password: the safe side for the account.
func (e *RejectedError) Rejects(password redact.Secret) bool { return e.rejects(password) }

func (e *RejectedError) rejects(password redact.Secret) bool {
	if len(e.salt) == 0 || len(e.verifier) == 0 {
		return true
	}
	v, err := scrypt.Key([]byte(password.Reveal()), e.salt, scryptN, scryptR, scryptP, scryptLen)
	if err != nil {
		return true
	}
	return subtle.ConstantTimeCompare(v, e.verifier) == 1
}

func (e *RejectedError) Error() string {
	s := ErrCredentialsRejected.Error() + ": " + e.Reason
	if e.Host != "" {
		s += " (seen by " + e.Host + " at " + e.At.UTC().Format(time.RFC3339) + ")"
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Unwrap makes errors.Is(err, ErrCredentialsRejected) true.
func (e *RejectedError) Unwrap() error { return ErrCredentialsRejected }

// State is where a Source stands.
type State string

const (
	StateEmpty      State = "empty"      // no token yet
	StateValid      State = "valid"      // a usable token is held
	StateRefreshing State = "refreshing" // a refresh-token grant is in flight
	StateLoggingIn  State = "logging-in" // a password grant is in flight
	StateBackingOff State = "backing-off"
	StateRejected   State = "credentials-rejected"
)

// Status is a snapshot of a Source, with nothing secret in it.
type Status struct {
	State         State
	Mode          string // "api-key" or "password"
	Gen           uint64
	Subject       string // the access token's sub claim, when it has one
	Scope         string
	AccessExpiry  time.Time
	RefreshExpiry time.Time
	BackoffUntil  time.Time
	// LastError is the last token error (nil when the last request succeeded).
	LastError error
}

// APIKey is the API-key Source: no token endpoint, nothing to refresh.
type APIKey struct {
	header   redact.Secret
	once     sync.Once
	rejected chan struct{} // closed on the first 401, after err.At is set
	err      *RejectedError
}

// NewAPIKey returns an API-key Source.
func NewAPIKey(key redact.Secret) *APIKey {
	return &APIKey{header: redact.NewSecret("ApiKey " + key.Reveal()), rejected: make(chan struct{}),
		err: &RejectedError{Reason: "the API key was answered 401", Hint: "the key is expired or revoked: create a new one in the natif API Hub and set NATIF_API_KEY"}}
}

// Token returns the API key, or the rejection once natif answered 401.
func (k *APIKey) Token(ctx context.Context, _ time.Duration) (Token, error) {
	select {
	case <-k.rejected:
		return Token{}, k.err
	default:
	}
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	return Token{header: k.header}, nil
}

// Unauthorized marks the key rejected: natif does not answer 401 to a valid key.
func (k *APIKey) Unauthorized(Token) {
	k.once.Do(func() {
		k.err.At = time.Now()
		close(k.rejected)
	})
}

// Status reports valid or rejected.
func (k *APIKey) Status() Status {
	st := Status{State: StateValid, Mode: "api-key"}
	select {
	case <-k.rejected:
		st.State, st.LastError = StateRejected, k.err
	default:
	}
	return st
}
