package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/natif-uploader/natif-uploader/redact"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
)

// ErrInvalid is wrapped by every configuration error, so callers map it to
// exit code 2 with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// ErrNoCredentials is returned by RequireCredentials when neither an API key
// nor a user name and password are configured.
var ErrNoCredentials = errors.New("no natif credentials: set NATIF_API_KEY (or NATIF_API_KEY_FILE), or NATIF_USERNAME with NATIF_PASSWORD (or NATIF_PASSWORD_FILE)")

// FieldError names one setting that is wrong, its value and why. The value of
// a secret is never kept.
type FieldError struct {
	Field string // the name as the user wrote it: variable, --flag or YAML key
	Where string // "file line N" for YAML settings
	Value string // empty or redacted for secrets
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Field)
	if e.Value != "" {
		b.WriteString("=")
		b.WriteString(strconv.Quote(e.Value))
	}
	if e.Where != "" {
		b.WriteString(" (")
		b.WriteString(e.Where)
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// fieldName is the name under which the user set the setting, or its
// environment variable when it is a default.
func (c *Config) fieldName(yamlKey string) string {
	if o, ok := c.origins[yamlKey]; ok && o.Name != "" {
		return o.Name
	}
	if k := keyByYAML(yamlKey); k != nil {
		return k.env
	}
	return yamlKey
}

// Origin says where a setting (by YAML key) came from.
func (c *Config) Origin(yamlKey string) Origin {
	if o, ok := c.origins[yamlKey]; ok {
		return o
	}
	return Origin{Kind: "default"}
}

func (c *Config) fail(yamlKey, value, msg string, args ...any) *FieldError {
	o := c.Origin(yamlKey)
	where := ""
	if o.Kind == "file" {
		where = o.Where
	}
	return &FieldError{Field: c.fieldName(yamlKey), Where: where, Value: value, Msg: fmt.Sprintf(msg, args...)}
}

var (
	realmRe    = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	scopeRe    = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`) // RFC 6749 scope-token
	workflowRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	queueRe    = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
)

// Validate checks every setting and the ones that depend on each other, and
// returns the first problem as a *FieldError (wrapping ErrInvalid) that names
// the setting and its value. It looks at the file system only to refuse folders
// that are files; it creates nothing.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateBaseURL,
		c.validateCredentials,
		func() error {
			if !realmRe.MatchString(c.Realm) {
				return c.fail("realm", c.Realm, "must be a realm name of letters, digits, '.', '_' or '-'")
			}
			return nil
		},
		func() error {
			if len(c.Scopes) == 0 {
				return c.fail("scopes", "", "must name at least one scope")
			}
			for _, s := range c.Scopes {
				if !scopeRe.MatchString(s) {
					return c.fail("scopes", strings.Join(c.Scopes, " "), "scope %q holds a character a scope cannot have", s)
				}
			}
			return nil
		},
		func() error {
			if !strings.HasPrefix(c.UploadPath, "/") || strings.ContainsAny(c.UploadPath, "?# ") {
				return c.fail("upload_path", c.UploadPath, "must be a path starting with / (no query, no spaces)")
			}
			return nil
		},
		func() error {
			if c.Workflow != "" && !workflowRe.MatchString(c.Workflow) {
				return c.fail("workflow", c.Workflow, "must be a workflow identifier such as invoice_extraction or a UUID")
			}
			return nil
		},
		func() error {
			for _, inc := range c.WorkflowInclude {
				switch inc {
				case "ocr", "extractions", "classifications":
				default:
					return c.fail("workflow_include", strings.Join(c.WorkflowInclude, ","), "include %q is not ocr, extractions or classifications", inc)
				}
			}
			return nil
		},
		func() error {
			if c.WorkflowWaitFor < 0 || c.WorkflowWaitFor > 120 {
				return c.fail("workflow_wait_for", strconv.Itoa(c.WorkflowWaitFor), "must be between 0 and 120 seconds")
			}
			return nil
		},
		func() error {
			if c.WorkflowParameters == "" {
				return nil
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(c.WorkflowParameters), &obj); err != nil {
				return c.fail("workflow_parameters", c.WorkflowParameters, "must be a JSON object, like {\"language\":\"de\"}")
			}
			return nil
		},
		func() error {
			if c.RateLimit < 0 || c.RateLimit > 10000 {
				return c.fail("rate_limit", strconv.FormatFloat(c.RateLimit, 'f', -1, 64), "must be between 0 (no limit) and 10000 uploads per second")
			}
			return nil
		},
		func() error {
			if c.MaxRetry < 0 || c.MaxRetry > 100 {
				return c.fail("max_retry", strconv.Itoa(c.MaxRetry), "must be between 0 and 100")
			}
			return nil
		},
		func() error {
			if c.TaskTimeout < 10*time.Second || c.TaskTimeout > 24*time.Hour {
				return c.fail("task_timeout", c.TaskTimeout.String(), "must be between 10s and 24h")
			}
			if c.ShutdownTimeout < 0 || c.ShutdownTimeout > time.Hour {
				return c.fail("shutdown_timeout", c.ShutdownTimeout.String(), "must be between 0s and 1h")
			}
			return nil
		},
		func() error {
			switch c.WatchMode {
			case "auto", "events", "poll":
				return nil
			}
			return c.fail("watch_mode", c.WatchMode, "must be auto, events or poll")
		},
		func() error {
			if c.PollInterval < 100*time.Millisecond || c.PollInterval > time.Hour {
				return c.fail("poll_interval", c.PollInterval.String(), "must be between 100ms and 1h")
			}
			if c.RescanInterval < time.Second || c.RescanInterval > 24*time.Hour {
				return c.fail("rescan_interval", c.RescanInterval.String(), "must be between 1s and 24h")
			}
			if c.IncompleteTimeout < c.Settle || c.IncompleteTimeout > 30*24*time.Hour {
				return c.fail("incomplete_timeout", c.IncompleteTimeout.String(), "must be at least NATIF_SETTLE (%s) and at most 720h", c.Settle)
			}
			return nil
		},
		func() error {
			for _, list := range []struct {
				key   string
				globs []string
			}{{"include", c.Include}, {"exclude", c.Exclude}} {
				for _, g := range list.globs {
					if _, err := filepath.Match(g, ""); err != nil {
						return c.fail(list.key, g, "is not a valid glob (use *, ? and [...])")
					}
				}
			}
			return nil
		},
		c.validateRedis,
		func() error {
			if !queueRe.MatchString(c.Queue) {
				return c.fail("queue", c.Queue, "must be a queue name of letters, digits, '.', '_', ':' or '-'")
			}
			return nil
		},
		c.validateFolders,
		func() error {
			if c.Concurrency < 1 || c.Concurrency > 1024 {
				return c.fail("concurrency", strconv.Itoa(c.Concurrency), "must be between 1 and 1024")
			}
			return nil
		},
		func() error {
			if c.Settle < 0 || c.Settle > 24*time.Hour {
				return c.fail("settle", c.Settle.String(), "must be between 0s and 24h")
			}
			return nil
		},
		func() error {
			if c.MaxFileSize < 1 {
				return c.fail("max_file_size", strconv.FormatInt(c.MaxFileSize, 10), "must be at least 1 byte")
			}
			return nil
		},
		func() error {
			if c.MetricsAddr == "" {
				return nil
			}
			if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
				return c.fail("metrics_addr", c.MetricsAddr, "must be HOST:PORT (for example 127.0.0.1:9464), or empty to disable")
			}
			return nil
		},
		func() error {
			if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
				return c.fail("log_level", c.LogLevel, "must be trace, debug, info, warn or error")
			}
			return nil
		},
		func() error {
			switch c.LogFormat {
			case "", "json", "console":
				return nil
			}
			return c.fail("log_format", c.LogFormat, "must be json or console")
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateBaseURL() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c.fail("base_url", c.BaseURL, "must be an http:// or https:// URL")
	}
	if u.User != nil {
		return c.fail("base_url", redact.URL(c.BaseURL), "must not carry user info; use NATIF_API_KEY or NATIF_USERNAME/NATIF_PASSWORD")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return c.fail("base_url", c.BaseURL, "must not have a query or fragment")
	}
	return nil
}

// validateCredentials refuses half-configured password grants. Having no
// credentials at all is fine here (the simulator, status and retry need none);
// commands that talk to natif call RequireCredentials.
func (c *Config) validateCredentials() error {
	if c.APIKey.IsSet() {
		if strings.ContainsAny(c.APIKey.Reveal(), " \t\r\n") {
			return c.fail("api_key", "", "must not contain spaces or line breaks")
		}
		return nil
	}
	if c.Username != "" && !c.Password.IsSet() {
		return c.fail("password", "", "is required when NATIF_USERNAME is set (or set NATIF_API_KEY)")
	}
	if c.Password.IsSet() && c.Username == "" {
		return c.fail("username", "", "is required when a password is set")
	}
	return nil
}

// RequireCredentials returns ErrNoCredentials (wrapping ErrInvalid) when no
// credentials are configured.
func (c *Config) RequireCredentials() error {
	if c.AuthMode() == AuthNone {
		return fmt.Errorf("%w: %w", ErrInvalid, ErrNoCredentials)
	}
	return nil
}

func (c *Config) validateRedis() error {
	if !c.RedisURL.IsSet() {
		return nil
	}
	// asynq's parser is the one that will open the connection; its error
	// message may quote the URL, so it is not passed on.
	if _, err := asynq.ParseRedisURI(c.RedisURL.Reveal()); err != nil {
		return c.fail("redis_url", c.RedisURL.String(), "must be redis://, rediss://, redis-socket:// or redis-sentinel:// as asynq parses it")
	}
	return nil
}

// validateFolders refuses folders that exist as files, and done or failed
// folders inside an inbox (their files would be picked up again).
func (c *Config) validateFolders() error {
	if len(c.Inboxes) == 0 {
		return c.fail("inbox", "", "must name at least one folder")
	}
	notFile := func(yamlKey, p string) error {
		fi, err := os.Stat(p)
		if err == nil && !fi.IsDir() {
			return c.fail(yamlKey, p, "is a file, not a folder")
		}
		return nil
	}
	for _, in := range c.Inboxes {
		if err := notFile("inbox", in); err != nil {
			return err
		}
	}
	for _, r := range c.AllowedRoots {
		if err := notFile("allowed_roots", r); err != nil {
			return err
		}
	}
	for _, d := range []struct{ key, path string }{{"done_dir", c.DoneDir}, {"failed_dir", c.FailedDir}} {
		if d.path == "" {
			return c.fail(d.key, "", "must name a folder")
		}
		if err := notFile(d.key, d.path); err != nil {
			return err
		}
		for _, in := range c.Inboxes {
			if within(d.path, in) || within(in, d.path) {
				return c.fail(d.key, d.path, "must not be inside an inbox or hold one (inbox %s)", in)
			}
		}
	}
	if c.DoneDir == c.FailedDir {
		return c.fail("failed_dir", c.FailedDir, "must differ from the done folder")
	}
	for i, a := range c.Inboxes {
		for _, b := range c.Inboxes[i+1:] {
			if within(a, b) || within(b, a) {
				return c.fail("inbox", strings.Join(c.Inboxes, ","), "inboxes %s and %s overlap", a, b)
			}
		}
	}
	return nil
}

// within reports whether path p is dir or lies below it (both absolute and clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

func hasURLPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		// An unparsable URL may hide a password anywhere: be safe.
		return strings.Contains(raw, "@")
	}
	if u.User == nil {
		return false
	}
	_, has := u.User.Password()
	return has
}
