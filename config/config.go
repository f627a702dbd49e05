// Package config holds natif-uploader's one typed configuration: its defaults,
// the three sources it is read from (a YAML file, then the environment, then
// command-line flags, each later source winning), and the validation that stops
// the program before any work starts.
//
// Secrets (the API key and the password) come only from the environment or from
// a file named by a *_FILE variable. A YAML file that holds one is rejected, so
// that no secret sits in a file that is easy to commit or to print.
package config

import (
	"github.com/natif-uploader/natif-uploader/redact"
	"time"
)

// Config is the effective configuration of one process. The zero value is not
// useful: start from Default.
type Config struct {
	// BaseURL is the natif API base URL (NATIF_BASE_URL). Default https://api.natif.ai.
	BaseURL string
	// APIKey authenticates with "Authorization: ApiKey <secret>"; when set it wins
	// over the password grant (NATIF_API_KEY or NATIF_API_KEY_FILE).
	APIKey redact.Secret
	// Username and Password are used for the password grant at POST /token
	// (NATIF_USERNAME, NATIF_PASSWORD or NATIF_PASSWORD_FILE).
	Username string
	Password redact.Secret
	// Realm is the realm query parameter of /token (NATIF_REALM). Default "public".
	Realm string
	// Scopes are asked for in the password grant (NATIF_SCOPES, space-separated).
	// Default capturing_read capturing_write.
	Scopes []string
	// UploadPath is the upload endpoint (NATIF_UPLOAD_PATH). Default /documents/.
	UploadPath string
	// Workflow, when set, sends uploads to POST /processing/{Workflow} (NATIF_WORKFLOW).
	Workflow string
	// WorkflowInclude are the include query values of a processing upload
	// (NATIF_WORKFLOW_INCLUDE, comma-separated: ocr, extractions, classifications);
	// empty asks for everything.
	WorkflowInclude []string
	// WorkflowWaitFor is the wait_for of a processing upload in seconds
	// (NATIF_WORKFLOW_WAIT_FOR), 0 to 120. Default 120. Longer work answers 202
	// and is polled.
	WorkflowWaitFor int
	// WorkflowParameters is the JSON object sent as the parameters form field
	// (NATIF_WORKFLOW_PARAMETERS); empty sends none.
	WorkflowParameters string
	// FetchResults polls GET /documents/{uuid} after an upload until processing
	// ends and saves the extractions as <file>.extractions.json (NATIF_FETCH_RESULTS).
	FetchResults bool
	// RateLimit caps uploads per second for this process (NATIF_RATE_LIMIT);
	// 0 (the default) means no limit. Keeps a fleet under natif's page limits.
	RateLimit float64
	// MaxRetry is how often a failed upload is retried before its file goes to
	// the failed folder (NATIF_MAX_RETRY), 0 to 100. Default 12: about five
	// hours with the back-off capped at 15 minutes. Rate limits and account
	// pauses do not spend retries.
	MaxRetry int
	// TaskTimeout bounds one upload attempt, polling included (NATIF_TASK_TIMEOUT).
	// Default 30m.
	TaskTimeout time.Duration
	// ShutdownTimeout is the grace period of in-flight uploads on SIGTERM or
	// SIGINT (NATIF_SHUTDOWN_TIMEOUT); what is not done by then goes back to
	// the queue unspent. Default 30s.
	ShutdownTimeout time.Duration

	// RedisURL selects the Redis queue (REDIS_URL); empty means the embedded queue.
	// It may carry a password, so every printed form redacts it.
	RedisURL redact.SecretURL
	// Queue is the asynq queue name (NATIF_QUEUE). Default "natif".
	Queue string

	// Inboxes are the watched folders (NATIF_INBOX, comma-separated), made absolute.
	Inboxes []string
	// DoneDir receives uploaded files (NATIF_DONE_DIR). Default ./done.
	DoneDir string
	// FailedDir receives permanently failed files (NATIF_FAILED_DIR). Default ./failed.
	FailedDir string
	// AllowedRoots are extra folders whose files queued tasks may name
	// (NATIF_ALLOWED_ROOTS, comma-separated), made absolute.
	AllowedRoots []string

	// WatchMode is how the watcher learns about new files (NATIF_WATCH_MODE):
	// "events" (inotify through fsnotify, plus rescans), "poll" (rescans
	// every PollInterval only), or "auto" (the default: polling for inboxes on
	// NFS, SMB/CIFS or FUSE, where events do not arrive, events elsewhere).
	WatchMode string
	// PollInterval is the rescan period of a polled inbox (NATIF_POLL_INTERVAL). Default 5s.
	PollInterval time.Duration
	// RescanInterval is the period of the safety rescan of watched inboxes,
	// which catches what events missed (NATIF_RESCAN_INTERVAL). Default 60s.
	RescanInterval time.Duration
	// IncompleteTimeout is how long a stable file may lack its end marker
	// before it fails as "incomplete file" (NATIF_INCOMPLETE_TIMEOUT). Default 1h.
	IncompleteTimeout time.Duration
	// Include, when set, limits the watcher to files whose name (or path
	// relative to the inbox) matches one of these globs (NATIF_INCLUDE,
	// comma-separated, e.g. *.pdf,scans/*).
	Include []string
	// Exclude skips files whose name or relative path matches one of these
	// globs (NATIF_EXCLUDE), on top of the built-in rules (hidden, temporary).
	Exclude []string

	// Concurrency is the number of parallel uploads per process (NATIF_CONCURRENCY),
	// 1 to 1024. Default 8.
	Concurrency int
	// Settle is the quiet time before a file counts as completely written
	// (NATIF_SETTLE), 0 to 24h. Default 2s.
	Settle time.Duration
	// MaxFileSize is the size above which a file fails without an upload
	// (NATIF_MAX_FILE_SIZE, e.g. 100MB or 50MiB). Default 100 MB (100,000,000 bytes),
	// natif's documented limit.
	MaxFileSize int64

	// MetricsAddr is the listen address of /metrics, /healthz and /readyz
	// (NATIF_METRICS_ADDR); empty disables it. Default 127.0.0.1:9464.
	MetricsAddr string

	// LogLevel is trace, debug, info, warn or error (NATIF_LOG_LEVEL, --log-level). Default info.
	LogLevel string
	// LogFormat is json, console, or empty for "console on a terminal, else json"
	// (NATIF_LOG_FORMAT, --log-format).
	LogFormat string

	// origins records where each setting came from, keyed by YAML name. Load
	// fills it; a Config built by hand has none and reports "default".
	origins map[string]Origin
}

// Default returns the configuration every source starts from, as SPEC section 3
// states it. Relative folders are made absolute by Load.
func Default() Config {
	return Config{
		BaseURL:           "https://api.natif.ai",
		Realm:             "public",
		Scopes:            []string{"capturing_read", "capturing_write"},
		UploadPath:        "/documents/",
		WorkflowWaitFor:   120,
		MaxRetry:          12,
		TaskTimeout:       30 * time.Minute,
		ShutdownTimeout:   30 * time.Second,
		Queue:             "natif",
		Inboxes:           []string{"./inbox"},
		DoneDir:           "./done",
		FailedDir:         "./failed",
		Concurrency:       8,
		Settle:            2 * time.Second,
		WatchMode:         "auto",
		PollInterval:      5 * time.Second,
		RescanInterval:    time.Minute,
		IncompleteTimeout: time.Hour,
		MaxFileSize:       100 * 1000 * 1000,
		MetricsAddr:       "127.0.0.1:9464",
		LogLevel:          "info",
	}
}

// AuthMode names the credentials the configuration selects.
type AuthMode string

const (
	AuthNone     AuthMode = "none"
	AuthAPIKey   AuthMode = "api-key"
	AuthPassword AuthMode = "password"
)

// AuthMode reports which credentials will be used: the API key wins over the
// password grant when both are set.
func (c *Config) AuthMode() AuthMode {
	switch {
	case c.APIKey.IsSet():
		return AuthAPIKey
	case c.Username != "" || c.Password.IsSet():
		return AuthPassword
	default:
		return AuthNone
	}
}

// UploadEndpoint is the path uploads are posted to: /processing/{workflow} when a
// workflow is set, else UploadPath.
func (c *Config) UploadEndpoint() string {
	if c.Workflow != "" {
		return "/processing/" + c.Workflow
	}
	return c.UploadPath
}
