package fakeapi

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Documented defaults. They mirror what natif and a stock Keycloak realm do, so a client tuned
// against the simulator is tuned for production: 300 s access tokens and an 1800 s idle timeout
// are Keycloak's realm defaults, 100 MB and 100 pages are natif's published limits.
const (
	defaultRealm               = "public"
	defaultUsername            = "demo"
	defaultPassword            = "demo"
	defaultAPIKey              = "demo-key"
	defaultAccessTTL           = 300 * time.Second
	defaultRefreshTTL          = 1800 * time.Second
	defaultSessionMax          = 10 * time.Hour
	defaultMaxUploadBytes      = 100 * 1000 * 1000
	defaultMaxPagesPerDocument = 100
	defaultLockoutFailures     = 5
	defaultLockoutWindow       = 60 * time.Second
	defaultLockoutDuration     = 60 * time.Second
)

// defaultScopes are the scopes a client may ask for, and what it gets when it asks for none.
var defaultScopes = []string{"capturing_read", "capturing_write", "profile", "email"}

// Options configures a Server. Zero values mean the documented default, so Options{} is the
// out-of-the-box simulator: user demo/demo, API key demo-key, realm public.
type Options struct {
	// Realm is the only realm that exists; any other ?realm= on /token gets 404
	// {"error":"Realm does not exist"}. A /token request without ?realm= uses this one.
	// Default "public".
	Realm string
	// Username and Password are the one account the password grant accepts. Default demo/demo.
	Username string
	Password string
	// APIKeys are accepted in "Authorization: ApiKey <key>". Default ["demo-key"].
	APIKeys []string
	// Scopes a client may ask for in the password grant. Asking for none grants all of them.
	// Default capturing_read, capturing_write, profile, email.
	Scopes []string
	// AccessTTL is the access-token lifetime (expires_in). Default 300 s. Tokens carry whole
	// seconds, as JWTs do, so it is rounded down to a whole second (at least 1 s).
	AccessTTL time.Duration
	// RefreshTTL is the refresh-token lifetime (refresh_expires_in): Keycloak's idle timeout,
	// restarted by each refresh because each refresh issues a fresh refresh token. Default 1800 s.
	RefreshTTL time.Duration
	// SessionMax is the longest a login session lives, refreshes or not; after it every refresh
	// is "Session not active" and every access token of the session is rejected. Default 10 h.
	SessionMax time.Duration
	// MaxUploadBytes is the largest accepted file part; larger uploads get 413.
	// Default 100 MB (100*1000*1000 bytes).
	MaxUploadBytes int64
	// ProcessingDelay is how long a document or processing stays pending after it was created,
	// measured on Clock. Default 0: ready at once.
	ProcessingDelay time.Duration
	// PagesPerSecond, PagesPerMinute and PagesPerHour are per-tenant page rate limits over
	// sliding windows. 0 means unlimited (the default).
	PagesPerSecond, PagesPerMinute, PagesPerHour int
	// MaxPagesPerDocument: a document with more pages gets 429 every time. Default 100.
	MaxPagesPerDocument int
	// LockoutFailures failed password grants, each less than LockoutWindow after the previous
	// failure, lock the account for LockoutDuration. Defaults 5, 60 s and 60 s (Keycloak's
	// brute-force detection with its stock wait). A negative LockoutFailures disables lockout.
	LockoutFailures int
	LockoutWindow   time.Duration
	LockoutDuration time.Duration
	// Faults are the injected failures at start; SetFaults changes them at run time.
	Faults Faults
	// Clock decides every expiry, lock and processing state. Default time.Now. Waiting (latency,
	// wait_for) always uses real time, so a fake clock never makes a request hang.
	Clock func() time.Time
	// Seed seeds the fault randomness (math/rand/v2 PCG), so a run can be replayed.
	// 0 picks a random seed; Options() reports the one in use.
	Seed uint64
	// Logger receives the simulator's log with component "fake-api". The zero value discards.
	// Secrets never reach it: sessions are named by id, tokens by a short sha256 prefix.
	Logger zerolog.Logger
}

// Faults are injected failures; settable at start (Options.Faults) and at run time (SetFaults,
// POST /_sim/faults). Rates are probabilities between 0 and 1, drawn per request.
type Faults struct {
	// Latency is added before answering every /token and API request (not /_sim).
	Latency time.Duration
	// ServerErrorRate is the share of API and /token requests answered 503. On a refresh the
	// 503 comes after the refresh token was consumed (keycloak#49213), on a password grant
	// before any session exists.
	ServerErrorRate float64
	// RateLimitRate is the share of API requests answered 429 with Retry-After: 1.
	RateLimitRate float64
	// DropRate is the share of upload requests whose connection is closed with no answer,
	// after part of the body was read and before the document is stored.
	DropRate float64
	// LoseUploadRate is the share of uploads that are stored (a document exists, the
	// content counts as uploaded) and then answered by closing the connection: the
	// client cannot know natif has it, so its retry uploads the same content again.
	LoseUploadRate float64
	// LoseRefreshRate is the share of refresh grants that are committed (old refresh token
	// consumed, new pair created) and then answered by closing the connection: the lost response.
	LoseRefreshRate float64
	// KillSessionsEvery kills every live session every period (0 = never), like an admin
	// logging everybody out.
	KillSessionsEvery time.Duration
	// QuotaExhausted makes uploads answer 402, as when the plan's processing limit is reached.
	QuotaExhausted bool
}

// faultsJSON is the wire shape of Faults: snake_case names and Go duration strings ("10s"),
// which read better in curl sessions than nanosecond integers.
type faultsJSON struct {
	Latency           string  `json:"latency"`
	ServerErrorRate   float64 `json:"server_error_rate"`
	RateLimitRate     float64 `json:"rate_limit_rate"`
	DropRate          float64 `json:"drop_rate"`
	LoseUploadRate    float64 `json:"lose_upload_rate"`
	LoseRefreshRate   float64 `json:"lose_refresh_rate"`
	KillSessionsEvery string  `json:"kill_sessions_every"`
	QuotaExhausted    bool    `json:"quota_exhausted"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Latency:           f.Latency.String(),
		ServerErrorRate:   f.ServerErrorRate,
		RateLimitRate:     f.RateLimitRate,
		DropRate:          f.DropRate,
		LoseUploadRate:    f.LoseUploadRate,
		LoseRefreshRate:   f.LoseRefreshRate,
		KillSessionsEvery: f.KillSessionsEvery.String(),
		QuotaExhausted:    f.QuotaExhausted,
	})
}

// UnmarshalJSON reads the shape MarshalJSON writes. A missing field is zero: a document
// replaces the faults, it does not patch them. Unknown fields are an error, so a typo in a
// test or a curl call does not silently inject nothing.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var out Faults
	var err error
	if out.Latency, err = parseOptionalDuration("latency", j.Latency); err != nil {
		return err
	}
	if out.KillSessionsEvery, err = parseOptionalDuration("kill_sessions_every", j.KillSessionsEvery); err != nil {
		return err
	}
	out.ServerErrorRate = j.ServerErrorRate
	out.RateLimitRate = j.RateLimitRate
	out.DropRate = j.DropRate
	out.LoseUploadRate = j.LoseUploadRate
	out.LoseRefreshRate = j.LoseRefreshRate
	out.QuotaExhausted = j.QuotaExhausted
	*f = out
	return nil
}

func parseOptionalDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

// ErrInvalidOptions is wrapped by every error of Options.Validate and Faults.Validate.
var ErrInvalidOptions = errors.New("fakeapi: invalid options")

// Validate reports the first fault setting out of range: a rate outside [0, 1] or a negative
// duration.
func (f Faults) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"ServerErrorRate", f.ServerErrorRate},
		{"RateLimitRate", f.RateLimitRate},
		{"DropRate", f.DropRate},
		{"LoseUploadRate", f.LoseUploadRate},
		{"LoseRefreshRate", f.LoseRefreshRate},
	}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) { // also catches NaN
			return fmt.Errorf("%w: Faults.%s must be between 0 and 1, got %v", ErrInvalidOptions, r.name, r.v)
		}
	}
	if f.Latency < 0 {
		return fmt.Errorf("%w: Faults.Latency must not be negative, got %v", ErrInvalidOptions, f.Latency)
	}
	if f.KillSessionsEvery < 0 {
		return fmt.Errorf("%w: Faults.KillSessionsEvery must not be negative, got %v", ErrInvalidOptions, f.KillSessionsEvery)
	}
	return nil
}

// Validate reports the first option out of range. New does not call it (New cannot fail and
// treats odd values as best it can); the CLI calls it so that a typo in a flag stops the demo
// with a message naming the option.
func (o Options) Validate() error {
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"AccessTTL", o.AccessTTL}, {"RefreshTTL", o.RefreshTTL}, {"SessionMax", o.SessionMax},
		{"ProcessingDelay", o.ProcessingDelay}, {"LockoutWindow", o.LockoutWindow},
		{"LockoutDuration", o.LockoutDuration},
	}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %v", ErrInvalidOptions, d.name, d.v)
		}
	}
	ints := []struct {
		name string
		v    int64
	}{
		{"MaxUploadBytes", o.MaxUploadBytes}, {"PagesPerSecond", int64(o.PagesPerSecond)},
		{"PagesPerMinute", int64(o.PagesPerMinute)}, {"PagesPerHour", int64(o.PagesPerHour)},
		{"MaxPagesPerDocument", int64(o.MaxPagesPerDocument)},
	}
	for _, n := range ints {
		if n.v < 0 {
			return fmt.Errorf("%w: %s must not be negative, got %d", ErrInvalidOptions, n.name, n.v)
		}
	}
	for _, k := range o.APIKeys {
		if k == "" {
			return fmt.Errorf("%w: APIKeys must not contain an empty key", ErrInvalidOptions)
		}
	}
	return o.Faults.Validate()
}

// withDefaults returns o with every zero field replaced by its documented default.
func (o Options) withDefaults() Options {
	if o.Realm == "" {
		o.Realm = defaultRealm
	}
	if o.Username == "" {
		o.Username = defaultUsername
	}
	if o.Password == "" {
		o.Password = defaultPassword
	}
	if len(o.APIKeys) == 0 {
		o.APIKeys = []string{defaultAPIKey}
	} else {
		o.APIKeys = append([]string(nil), o.APIKeys...)
	}
	if len(o.Scopes) == 0 {
		o.Scopes = append([]string(nil), defaultScopes...)
	} else {
		o.Scopes = append([]string(nil), o.Scopes...)
	}
	o.AccessTTL = wholeSeconds(o.AccessTTL, defaultAccessTTL)
	o.RefreshTTL = wholeSeconds(o.RefreshTTL, defaultRefreshTTL)
	o.SessionMax = wholeSeconds(o.SessionMax, defaultSessionMax)
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = defaultMaxUploadBytes
	}
	if o.ProcessingDelay < 0 {
		o.ProcessingDelay = 0
	}
	o.PagesPerSecond = max(o.PagesPerSecond, 0)
	o.PagesPerMinute = max(o.PagesPerMinute, 0)
	o.PagesPerHour = max(o.PagesPerHour, 0)
	if o.MaxPagesPerDocument <= 0 {
		o.MaxPagesPerDocument = defaultMaxPagesPerDocument
	}
	if o.LockoutFailures == 0 {
		o.LockoutFailures = defaultLockoutFailures
	}
	if o.LockoutWindow <= 0 {
		o.LockoutWindow = defaultLockoutWindow
	}
	if o.LockoutDuration <= 0 {
		o.LockoutDuration = defaultLockoutDuration
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// wholeSeconds applies the default to a zero or negative d and rounds d down to whole seconds,
// at least one: JWT times are whole seconds, and a lifetime the token cannot express would
// make expires_in disagree with exp.
func wholeSeconds(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return max(d.Truncate(time.Second), time.Second)
}

// BindFlags registers a flag for every option and fault on fs, writing into o. The help shows
// the documented defaults (or the values already in o). Flags not registered: Clock and Logger,
// which only code can supply.
func BindFlags(fs *flag.FlagSet, o *Options) {
	d := o.withDefaults()
	// withDefaults fills Clock; keep the caller's choice (nil means time.Now in New anyway).
	d.Clock = o.Clock
	*o = d

	fs.StringVar(&o.Realm, "realm", o.Realm, "the only realm /token knows; others get 404")
	fs.StringVar(&o.Username, "username", o.Username, "username the password grant accepts")
	fs.StringVar(&o.Password, "password", o.Password, "password the password grant accepts")
	fs.Var(&listFlag{dst: &o.APIKeys}, "api-key", "API key accepted as 'Authorization: ApiKey <key>' (repeatable, comma-separated)")
	fs.Var(&listFlag{dst: &o.Scopes}, "scopes", "scopes a client may ask for (repeatable, comma- or space-separated)")
	fs.DurationVar(&o.AccessTTL, "access-ttl", o.AccessTTL, "access-token lifetime (expires_in)")
	fs.DurationVar(&o.RefreshTTL, "refresh-ttl", o.RefreshTTL, "refresh-token lifetime, the session idle timeout (refresh_expires_in)")
	fs.DurationVar(&o.SessionMax, "session-max", o.SessionMax, "longest a login session lives")
	fs.Int64Var(&o.MaxUploadBytes, "max-upload-size", o.MaxUploadBytes, "largest accepted file in bytes; larger uploads get 413")
	fs.DurationVar(&o.ProcessingDelay, "processing-delay", o.ProcessingDelay, "how long a document stays pending")
	fs.IntVar(&o.PagesPerSecond, "pages-per-second", o.PagesPerSecond, "per-tenant page limit per second (0 = unlimited)")
	fs.IntVar(&o.PagesPerMinute, "pages-per-minute", o.PagesPerMinute, "per-tenant page limit per minute (0 = unlimited)")
	fs.IntVar(&o.PagesPerHour, "pages-per-hour", o.PagesPerHour, "per-tenant page limit per hour (0 = unlimited)")
	fs.IntVar(&o.MaxPagesPerDocument, "max-pages-per-document", o.MaxPagesPerDocument, "documents with more pages get 429 every time")
	fs.IntVar(&o.LockoutFailures, "lockout-failures", o.LockoutFailures, "failed password grants in a row that lock the account (negative disables)")
	fs.DurationVar(&o.LockoutWindow, "lockout-window", o.LockoutWindow, "failures further apart than this do not add up")
	fs.DurationVar(&o.LockoutDuration, "lockout-duration", o.LockoutDuration, "how long a locked account stays locked")
	fs.DurationVar(&o.Faults.Latency, "latency", o.Faults.Latency, "fault: delay added before every answer")
	fs.Float64Var(&o.Faults.ServerErrorRate, "server-error-rate", o.Faults.ServerErrorRate, "fault: share of API and token requests answered 503")
	fs.Float64Var(&o.Faults.RateLimitRate, "rate-limit-rate", o.Faults.RateLimitRate, "fault: share of API requests answered 429")
	fs.Float64Var(&o.Faults.DropRate, "drop-rate", o.Faults.DropRate, "fault: share of uploads whose connection is dropped")
	fs.Float64Var(&o.Faults.LoseUploadRate, "lose-upload-rate", o.Faults.LoseUploadRate, "fault: share of uploads stored and then dropped with no answer")
	fs.Float64Var(&o.Faults.LoseRefreshRate, "lose-refresh-rate", o.Faults.LoseRefreshRate, "fault: share of refreshes committed and then dropped")
	fs.DurationVar(&o.Faults.KillSessionsEvery, "kill-sessions-every", o.Faults.KillSessionsEvery, "fault: kill every live session this often (0 = never)")
	fs.BoolVar(&o.Faults.QuotaExhausted, "quota-exhausted", o.Faults.QuotaExhausted, "fault: uploads answer 402")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the fault randomness (0 = random)")
}

// listFlag is a repeatable, comma-separated string list flag. The first Set replaces the
// default instead of adding to it, so "--api-key mine" means only "mine".
type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst = nil
		l.set = true
	}
	*l.dst = append(*l.dst, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
	return nil
}
