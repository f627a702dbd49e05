package config

import (
	"fmt"
	"github.com/natif-uploader/natif-uploader/redact"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// key is one configuration setting and every name it has: its YAML key, its
// environment variable and its flag. One table drives loading, the help text,
// the `config` command and validation messages, so the names cannot drift apart.
type key struct {
	yaml    string
	env     string
	fileEnv string // for secrets: the *_FILE variable naming a file that holds it
	flag    string // "" when there is no flag (secrets never have one)
	secret  bool   // only from the environment or fileEnv, never from YAML or a flag
	list    bool   // a YAML sequence is accepted as well as one string
	listSep string // separator of the string form of a list
	global  bool   // a flag of every command (--log-level, --log-format), registered by BindGlobalFlags
	usage   string
	set     func(c *Config, v string) error
	setList func(c *Config, v []string) error
	show    func(c *Config) string
}

// keys lists every setting in the order `config` prints them.
var keys = []key{
	{yaml: "base_url", env: "NATIF_BASE_URL", flag: "base-url", usage: "natif API base URL",
		set:  func(c *Config, v string) error { c.BaseURL = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.BaseURL }},
	{yaml: "api_key", env: "NATIF_API_KEY", fileEnv: "NATIF_API_KEY_FILE", secret: true,
		usage: "API key (Authorization: ApiKey); wins over the password grant",
		set:   func(c *Config, v string) error { c.APIKey = redact.NewSecret(v); return nil },
		show:  func(c *Config) string { return c.APIKey.String() }},
	{yaml: "username", env: "NATIF_USERNAME", flag: "username", usage: "user name for the password grant",
		set:  func(c *Config, v string) error { c.Username = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.Username }},
	{yaml: "password", env: "NATIF_PASSWORD", fileEnv: "NATIF_PASSWORD_FILE", secret: true,
		usage: "password for the password grant",
		set:   func(c *Config, v string) error { c.Password = redact.NewSecret(v); return nil },
		show:  func(c *Config) string { return c.Password.String() }},
	{yaml: "realm", env: "NATIF_REALM", flag: "realm", usage: "realm query parameter of /token",
		set:  func(c *Config, v string) error { c.Realm = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.Realm }},
	{yaml: "scopes", env: "NATIF_SCOPES", flag: "scopes", list: true, listSep: " ",
		usage:   "space-separated scopes asked for in the password grant",
		setList: func(c *Config, v []string) error { c.Scopes = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.Scopes, " ") }},
	{yaml: "upload_path", env: "NATIF_UPLOAD_PATH", flag: "upload-path", usage: "upload endpoint",
		set:  func(c *Config, v string) error { c.UploadPath = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.UploadPath }},
	{yaml: "workflow", env: "NATIF_WORKFLOW", flag: "workflow", usage: "when set, upload to POST /processing/{workflow}",
		set:  func(c *Config, v string) error { c.Workflow = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.Workflow }},
	{yaml: "workflow_include", env: "NATIF_WORKFLOW_INCLUDE", flag: "workflow-include", list: true, listSep: ",",
		usage:   "comma-separated include values of a processing upload (ocr, extractions, classifications); empty: all",
		setList: func(c *Config, v []string) error { c.WorkflowInclude = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.WorkflowInclude, ",") }},
	{yaml: "workflow_wait_for", env: "NATIF_WORKFLOW_WAIT_FOR", flag: "workflow-wait-for", usage: "seconds natif may hold a processing upload before answering 202",
		set:  func(c *Config, v string) error { return setInt(&c.WorkflowWaitFor, v) },
		show: func(c *Config) string { return strconv.Itoa(c.WorkflowWaitFor) }},
	{yaml: "workflow_parameters", env: "NATIF_WORKFLOW_PARAMETERS", flag: "workflow-parameters", usage: "JSON object sent as the parameters form field of a processing upload",
		set:  func(c *Config, v string) error { c.WorkflowParameters = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.WorkflowParameters }},
	{yaml: "redis_url", env: "REDIS_URL", flag: "redis-url", usage: "Redis URL; empty means the embedded queue",
		set:  func(c *Config, v string) error { c.RedisURL = redact.NewSecretURL(strings.TrimSpace(v)); return nil },
		show: func(c *Config) string { return c.RedisURL.String() }},
	{yaml: "queue", env: "NATIF_QUEUE", flag: "queue", usage: "asynq queue name",
		set:  func(c *Config, v string) error { c.Queue = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.Queue }},
	{yaml: "inbox", env: "NATIF_INBOX", flag: "inbox", list: true, listSep: ",",
		usage:   "comma-separated watched folders",
		setList: func(c *Config, v []string) error { c.Inboxes = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.Inboxes, ",") }},
	{yaml: "done_dir", env: "NATIF_DONE_DIR", flag: "done-dir", usage: "where uploaded files are moved",
		set:  func(c *Config, v string) error { c.DoneDir = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.DoneDir }},
	{yaml: "failed_dir", env: "NATIF_FAILED_DIR", flag: "failed-dir", usage: "where permanently failed files are moved",
		set:  func(c *Config, v string) error { c.FailedDir = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.FailedDir }},
	{yaml: "allowed_roots", env: "NATIF_ALLOWED_ROOTS", flag: "allowed-roots", list: true, listSep: ",",
		usage:   "comma-separated extra folders whose files queued tasks may name",
		setList: func(c *Config, v []string) error { c.AllowedRoots = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.AllowedRoots, ",") }},
	{yaml: "watch_mode", env: "NATIF_WATCH_MODE", flag: "watch-mode", usage: "auto, events or poll",
		set:  func(c *Config, v string) error { c.WatchMode = strings.ToLower(strings.TrimSpace(v)); return nil },
		show: func(c *Config) string { return c.WatchMode }},
	{yaml: "poll_interval", env: "NATIF_POLL_INTERVAL", flag: "poll-interval", usage: "rescan period of a polled inbox",
		set:  func(c *Config, v string) error { return setDuration(&c.PollInterval, v) },
		show: func(c *Config) string { return c.PollInterval.String() }},
	{yaml: "rescan_interval", env: "NATIF_RESCAN_INTERVAL", flag: "rescan-interval", usage: "period of the safety rescan of watched inboxes",
		set:  func(c *Config, v string) error { return setDuration(&c.RescanInterval, v) },
		show: func(c *Config) string { return c.RescanInterval.String() }},
	{yaml: "incomplete_timeout", env: "NATIF_INCOMPLETE_TIMEOUT", flag: "incomplete-timeout", usage: "how long a file may lack its end marker before it fails",
		set:  func(c *Config, v string) error { return setDuration(&c.IncompleteTimeout, v) },
		show: func(c *Config) string { return c.IncompleteTimeout.String() }},
	{yaml: "include", env: "NATIF_INCLUDE", flag: "include", list: true, listSep: ",", usage: "comma-separated globs a file must match (name or relative path)",
		setList: func(c *Config, v []string) error { c.Include = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.Include, ",") }},
	{yaml: "exclude", env: "NATIF_EXCLUDE", flag: "exclude", list: true, listSep: ",", usage: "comma-separated globs of files to leave alone",
		setList: func(c *Config, v []string) error { c.Exclude = v; return nil },
		show:    func(c *Config) string { return strings.Join(c.Exclude, ",") }},
	{yaml: "concurrency", env: "NATIF_CONCURRENCY", flag: "concurrency", usage: "parallel uploads per process",
		set:  func(c *Config, v string) error { return setInt(&c.Concurrency, v) },
		show: func(c *Config) string { return strconv.Itoa(c.Concurrency) }},
	{yaml: "settle", env: "NATIF_SETTLE", flag: "settle", usage: "quiet time before a file counts as completely written",
		set:  func(c *Config, v string) error { return setDuration(&c.Settle, v) },
		show: func(c *Config) string { return c.Settle.String() }},
	{yaml: "max_file_size", env: "NATIF_MAX_FILE_SIZE", flag: "max-file-size", usage: "larger files fail without an upload (e.g. 100MB, 50MiB)",
		set: func(c *Config, v string) error {
			n, err := humanize.ParseBytes(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("not a size (write it like 100MB, 50MiB or 1048576)")
			}
			if n > 1<<62 {
				return fmt.Errorf("too large")
			}
			c.MaxFileSize = int64(n)
			return nil
		},
		show: func(c *Config) string {
			return fmt.Sprintf("%s (%d bytes)", humanize.Bytes(uint64(c.MaxFileSize)), c.MaxFileSize)
		}},
	{yaml: "fetch_results", env: "NATIF_FETCH_RESULTS", flag: "fetch-results", usage: "after an upload, wait for processing and save <file>.extractions.json",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("not true or false")
			}
			c.FetchResults = b
			return nil
		},
		show: func(c *Config) string { return strconv.FormatBool(c.FetchResults) }},
	{yaml: "rate_limit", env: "NATIF_RATE_LIMIT", flag: "rate-limit", usage: "uploads per second for this process; 0: no limit",
		set: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return fmt.Errorf("not a number")
			}
			c.RateLimit = f
			return nil
		},
		show: func(c *Config) string { return strconv.FormatFloat(c.RateLimit, 'f', -1, 64) }},
	{yaml: "max_retry", env: "NATIF_MAX_RETRY", flag: "max-retry", usage: "retries of a failed upload before its file goes to the failed folder",
		set:  func(c *Config, v string) error { return setInt(&c.MaxRetry, v) },
		show: func(c *Config) string { return strconv.Itoa(c.MaxRetry) }},
	{yaml: "task_timeout", env: "NATIF_TASK_TIMEOUT", flag: "task-timeout", usage: "longest one upload attempt may take, polling included",
		set:  func(c *Config, v string) error { return setDuration(&c.TaskTimeout, v) },
		show: func(c *Config) string { return c.TaskTimeout.String() }},
	{yaml: "shutdown_timeout", env: "NATIF_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", usage: "grace period of in-flight uploads at shutdown",
		set:  func(c *Config, v string) error { return setDuration(&c.ShutdownTimeout, v) },
		show: func(c *Config) string { return c.ShutdownTimeout.String() }},
	{yaml: "metrics_addr", env: "NATIF_METRICS_ADDR", flag: "metrics-addr", usage: "listen address of /metrics, /healthz, /readyz; empty disables",
		set:  func(c *Config, v string) error { c.MetricsAddr = strings.TrimSpace(v); return nil },
		show: func(c *Config) string { return c.MetricsAddr }},
	{yaml: "log_level", env: "NATIF_LOG_LEVEL", flag: "log-level", global: true, usage: "trace, debug, info, warn or error",
		set:  func(c *Config, v string) error { c.LogLevel = strings.ToLower(strings.TrimSpace(v)); return nil },
		show: func(c *Config) string { return c.LogLevel }},
	{yaml: "log_format", env: "NATIF_LOG_FORMAT", flag: "log-format", global: true, usage: "json or console (default: console on a terminal, else json)",
		set:  func(c *Config, v string) error { c.LogFormat = strings.ToLower(strings.TrimSpace(v)); return nil },
		show: func(c *Config) string { return c.LogFormat }},
}

func keyByYAML(name string) *key {
	for i := range keys {
		if keys[i].yaml == name {
			return &keys[i]
		}
	}
	return nil
}

// splitList splits the string form of a list setting and drops empty items,
// so "a, b," is [a b].
func splitList(v, sep string) []string {
	var out []string
	var parts []string
	if sep == " " {
		parts = strings.Fields(v)
	} else {
		parts = strings.Split(v, sep)
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// apply sets k from the string form of its value.
func (k *key) apply(c *Config, v string) error {
	if k.list {
		return k.setList(c, splitList(v, k.listSep))
	}
	return k.set(c, v)
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*dst = n
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a duration (write it like 2s, 500ms or 1m30s)")
	}
	*dst = d
	return nil
}
