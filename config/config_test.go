package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/natif-uploader/natif-uploader/redact"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

// env returns a lookup function over m, so tests never see the real environment.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var cmpConfig = []cmp.Option{
	cmp.AllowUnexported(redact.Secret{}, redact.SecretURL{}),
	cmpopts.IgnoreUnexported(Config{}),
	cmpopts.EquateEmpty(),
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(Sources{Env: env(nil)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Inboxes = []string{mustAbs(t, "inbox")}
	want.DoneDir = mustAbs(t, "done")
	want.FailedDir = mustAbs(t, "failed")
	if d := cmp.Diff(want, c, cmpConfig...); d != "" {
		t.Errorf("Load with no sources (-want +got):\n%s", d)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v, want nil", err)
	}
	if got := c.Origin("concurrency").Kind; got != "default" {
		t.Errorf("origin of concurrency = %q, want default", got)
	}
	if err := c.RequireCredentials(); !errors.Is(err, ErrNoCredentials) || !errors.Is(err, ErrInvalid) {
		t.Errorf("RequireCredentials with none = %v, want ErrNoCredentials wrapping ErrInvalid", err)
	}
}

// The shipped example must stay a valid file that sets exactly the defaults.
func TestExampleFileIsTheDefaults(t *testing.T) {
	c, err := Load(Sources{File: filepath.Join("..", DefaultFile), Env: env(nil)})
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	def, _ := Load(Sources{Env: env(nil)})
	if d := cmp.Diff(def, c, cmpConfig...); d != "" {
		t.Errorf("example file differs from Default (-default +file):\n%s", d)
	}
	for _, k := range keys {
		if k.secret {
			continue
		}
		if got := c.Origin(k.yaml).Kind; got != "file" {
			t.Errorf("example file does not set %s (origin %q): every key must be in it", k.yaml, got)
		}
	}
}

func TestPrecedenceFileThenEnvThenFlags(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "c.yaml", "concurrency: 4\nqueue: fromfile\nsettle: 5s\nrealm: filerealm\n")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	BindGlobalFlags(fs)
	if err := fs.Parse([]string{"--concurrency=7", "--log-level=debug"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Sources{File: file, Flags: fs, Env: env(map[string]string{
		"NATIF_CONCURRENCY": "6",
		"NATIF_QUEUE":       "fromenv",
	})})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tests := []struct {
		desc       string
		got, want  any
		key, wantK string
	}{
		{"flag beats env and file", c.Concurrency, 7, "concurrency", "flag"},
		{"env beats file", c.Queue, "fromenv", "queue", "env"},
		{"file beats default", c.Settle, 5 * time.Second, "settle", "file"},
		{"file only", c.Realm, "filerealm", "realm", "file"},
		{"global flag", c.LogLevel, "debug", "log_level", "flag"},
		{"default stays", c.UploadPath, "/documents/", "upload_path", "default"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.desc, tt.got, tt.want)
		}
		if got := c.Origin(tt.key).Kind; got != tt.wantK {
			t.Errorf("%s: origin of %s = %q, want %q", tt.desc, tt.key, got, tt.wantK)
		}
	}
}

func TestListsFromEveryShape(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		desc string
		yaml string
		env  map[string]string
		want []string
	}{
		{"yaml sequence", "inbox: [a, b]\n", nil, []string{"a", "b"}},
		{"yaml comma string", "inbox: a, b,\n", nil, []string{"a", "b"}},
		{"env comma string", "", map[string]string{"NATIF_INBOX": "x,,y "}, []string{"x", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			file := writeFile(t, dir, "l.yaml", tt.yaml)
			c, err := Load(Sources{File: file, Env: env(tt.env)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, mustAbs(t, w))
			}
			if d := cmp.Diff(want, c.Inboxes); d != "" {
				t.Errorf("inboxes (-want +got):\n%s", d)
			}
		})
	}
	c, err := Load(Sources{Env: env(map[string]string{"NATIF_SCOPES": " capturing_read   openid "})})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"capturing_read", "openid"}, c.Scopes); d != "" {
		t.Errorf("scopes from a space-separated variable (-want +got):\n%s", d)
	}
}

func TestSecretsFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "s3cret-from-file\n")
	keyFile := writeFile(t, dir, "key", "key-from-file\r\n")
	empty := writeFile(t, dir, "empty", "\n")
	twoLines := writeFile(t, dir, "two", "a\nb\n")

	c, err := Load(Sources{Env: env(map[string]string{
		"NATIF_USERNAME":      "alice",
		"NATIF_PASSWORD_FILE": pwFile,
		"NATIF_API_KEY_FILE":  keyFile,
	})})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Password.Reveal(); got != "s3cret-from-file" {
		t.Errorf("password from file = %q, want the file's line without its newline", got)
	}
	if got := c.APIKey.Reveal(); got != "key-from-file" {
		t.Errorf("API key from file = %q, want key-from-file", got)
	}
	if got := c.AuthMode(); got != AuthAPIKey {
		t.Errorf("AuthMode with both = %q, want the API key to win", got)
	}
	if o := c.Origin("password"); o.Name != "NATIF_PASSWORD_FILE" || o.Where != pwFile {
		t.Errorf("origin of password = %+v, want the file variable and path", o)
	}

	bad := []struct {
		desc      string
		env       map[string]string
		wantField string
		wantMsg   string
	}{
		{"both forms", map[string]string{"NATIF_PASSWORD": "x", "NATIF_PASSWORD_FILE": pwFile}, "NATIF_PASSWORD_FILE", "not both"},
		{"missing file", map[string]string{"NATIF_API_KEY_FILE": filepath.Join(dir, "nope")}, "NATIF_API_KEY_FILE", "cannot read the file"},
		{"empty file", map[string]string{"NATIF_PASSWORD_FILE": empty}, "NATIF_PASSWORD_FILE", "empty"},
		{"two lines", map[string]string{"NATIF_PASSWORD_FILE": twoLines}, "NATIF_PASSWORD_FILE", "more than one line"},
	}
	for _, tt := range bad {
		_, err := Load(Sources{Env: env(tt.env)})
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Load error = %v, want a *FieldError wrapping ErrInvalid", tt.desc, err)
			continue
		}
		if fe.Field != tt.wantField || !strings.Contains(fe.Msg, tt.wantMsg) {
			t.Errorf("%s: got %q, want field %s and a message with %q", tt.desc, err, tt.wantField, tt.wantMsg)
		}
	}
}

func TestYAMLRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		desc      string
		yaml      string
		wantField string
		wantMsg   string
	}{
		{"password in yaml", "queue: q\npassword: hunter2\n", "password", "secrets never come from the YAML file"},
		{"api key in yaml", "api_key: k\n", "api_key", "NATIF_API_KEY_FILE"},
		{"secret file key in yaml", "password_file: /run/pw\n", "password_file", "NATIF_PASSWORD_FILE"},
		{"redis password in yaml", "redis_url: redis://:hunter2@localhost:6379/0\n", "redis_url", "REDIS_URL"},
		{"unknown key", "conccurency: 3\n", "conccurency", "unknown key"},
		{"wrong type", "concurrency: lots\n", "concurrency", "not a whole number"},
		{"bad duration", "settle: soon\n", "settle", "not a duration"},
		{"bad size", "max_file_size: big\n", "max_file_size", "not a size"},
		{"mapping for a value", "queue: {a: b}\n", "queue", "want a single value"},
		{"sequence for a scalar", "queue: [a]\n", "queue", "want a single value"},
		{"duplicate key", "queue: a\nqueue: b\n", "queue", "set twice"},
		{"malformed", "queue: [a\n", "--config", "not valid YAML"},
		{"not a mapping", "- a\n- b\n", "--config", "want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			file := writeFile(t, dir, "c.yaml", tt.yaml)
			_, err := Load(Sources{File: file, Env: env(nil)})
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error = %v, want a *FieldError wrapping ErrInvalid", err)
			}
			if fe.Field != tt.wantField || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %q, want field %s and %q in the message", err, tt.wantField, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats the secret", err)
			}
			if tt.wantField != "--config" && !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
	if _, err := Load(Sources{File: filepath.Join(dir, "missing.yaml"), Env: env(nil)}); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("Load(missing file) = %v, want a cannot-read error", err)
	}
	empty := writeFile(t, dir, "empty.yaml", "# only comments\n")
	if _, err := Load(Sources{File: empty, Env: env(nil)}); err != nil {
		t.Errorf("Load(comment-only file) = %v, want nil", err)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	aFile := writeFile(t, dir, "afile", "x")
	tests := []struct {
		desc      string
		env       map[string]string
		wantField string // "" means valid
		wantMsg   string
	}{
		{"valid password grant", map[string]string{"NATIF_USERNAME": "u", "NATIF_PASSWORD": "p"}, "", ""},
		{"valid workflow uuid", map[string]string{"NATIF_WORKFLOW": "3f1c2a9e-1b2c-4d5e-8f90-123456789abc"}, "", ""},
		{"valid redis", map[string]string{"REDIS_URL": "redis://:pw@127.0.0.1:6379/2"}, "", ""},
		{"metrics disabled", map[string]string{"NATIF_METRICS_ADDR": ""}, "", ""},
		{"settle zero", map[string]string{"NATIF_SETTLE": "0s"}, "", ""},
		{"base url scheme", map[string]string{"NATIF_BASE_URL": "ftp://x"}, "NATIF_BASE_URL", "http:// or https://"},
		{"base url user info", map[string]string{"NATIF_BASE_URL": "https://u:p@x"}, "NATIF_BASE_URL", "user info"},
		{"username without password", map[string]string{"NATIF_USERNAME": "u"}, "NATIF_PASSWORD", "required"},
		{"password without username", map[string]string{"NATIF_PASSWORD": "p"}, "NATIF_USERNAME", "required"},
		{"realm", map[string]string{"NATIF_REALM": "a b"}, "NATIF_REALM", "realm name"},
		{"scopes empty", map[string]string{"NATIF_SCOPES": " "}, "NATIF_SCOPES", "at least one"},
		{"scope quote", map[string]string{"NATIF_SCOPES": `a"b`}, "NATIF_SCOPES", "character"},
		{"upload path", map[string]string{"NATIF_UPLOAD_PATH": "documents"}, "NATIF_UPLOAD_PATH", "starting with /"},
		{"workflow", map[string]string{"NATIF_WORKFLOW": "../x"}, "NATIF_WORKFLOW", "workflow identifier"},
		{"redis scheme", map[string]string{"REDIS_URL": "http://:pw@host"}, "REDIS_URL", "redis://"},
		{"queue", map[string]string{"NATIF_QUEUE": "a queue"}, "NATIF_QUEUE", "queue name"},
		{"no inbox", map[string]string{"NATIF_INBOX": ","}, "NATIF_INBOX", "at least one"},
		{"inbox is a file", map[string]string{"NATIF_INBOX": aFile}, "NATIF_INBOX", "is a file"},
		{"done inside inbox", map[string]string{"NATIF_INBOX": dir, "NATIF_DONE_DIR": filepath.Join(dir, "done")}, "NATIF_DONE_DIR", "inside an inbox"},
		{"failed holds inbox", map[string]string{"NATIF_INBOX": filepath.Join(dir, "in"), "NATIF_FAILED_DIR": dir}, "NATIF_FAILED_DIR", "inside an inbox"},
		{"done equals failed", map[string]string{"NATIF_DONE_DIR": "/tmp/x", "NATIF_FAILED_DIR": "/tmp/x"}, "NATIF_FAILED_DIR", "differ"},
		{"inboxes overlap", map[string]string{"NATIF_INBOX": dir + "," + filepath.Join(dir, "sub")}, "NATIF_INBOX", "overlap"},
		{"concurrency zero", map[string]string{"NATIF_CONCURRENCY": "0"}, "NATIF_CONCURRENCY", "between 1 and 1024"},
		{"concurrency huge", map[string]string{"NATIF_CONCURRENCY": "5000"}, "NATIF_CONCURRENCY", "between 1 and 1024"},
		{"settle negative", map[string]string{"NATIF_SETTLE": "-1s"}, "NATIF_SETTLE", "between 0s and 24h"},
		{"size zero", map[string]string{"NATIF_MAX_FILE_SIZE": "0"}, "NATIF_MAX_FILE_SIZE", "at least 1 byte"},
		{"metrics addr", map[string]string{"NATIF_METRICS_ADDR": "9464"}, "NATIF_METRICS_ADDR", "HOST:PORT"},
		{"log level", map[string]string{"NATIF_LOG_LEVEL": "loud"}, "NATIF_LOG_LEVEL", "trace, debug"},
		{"log format", map[string]string{"NATIF_LOG_FORMAT": "xml"}, "NATIF_LOG_FORMAT", "json or console"},
		{"valid workflow settings", map[string]string{"NATIF_WORKFLOW_INCLUDE": "ocr,extractions", "NATIF_WORKFLOW_WAIT_FOR": "0", "NATIF_WORKFLOW_PARAMETERS": `{"language":"de"}`}, "", ""},
		{"include", map[string]string{"NATIF_WORKFLOW_INCLUDE": "ocr,pdf"}, "NATIF_WORKFLOW_INCLUDE", `"pdf" is not`},
		{"wait for", map[string]string{"NATIF_WORKFLOW_WAIT_FOR": "121"}, "NATIF_WORKFLOW_WAIT_FOR", "between 0 and 120"},
		{"parameters not json", map[string]string{"NATIF_WORKFLOW_PARAMETERS": "language=de"}, "NATIF_WORKFLOW_PARAMETERS", "JSON object"},
		{"parameters not an object", map[string]string{"NATIF_WORKFLOW_PARAMETERS": "[1]"}, "NATIF_WORKFLOW_PARAMETERS", "JSON object"},
		{"rate limit", map[string]string{"NATIF_RATE_LIMIT": "-1"}, "NATIF_RATE_LIMIT", "between 0"},
		{"max retry", map[string]string{"NATIF_MAX_RETRY": "101"}, "NATIF_MAX_RETRY", "between 0 and 100"},
		{"task timeout", map[string]string{"NATIF_TASK_TIMEOUT": "1s"}, "NATIF_TASK_TIMEOUT", "between 10s and 24h"},
		{"valid watcher settings", map[string]string{"NATIF_WATCH_MODE": "poll", "NATIF_INCLUDE": "*.pdf,scans/*", "NATIF_EXCLUDE": "draft*"}, "", ""},
		{"watch mode", map[string]string{"NATIF_WATCH_MODE": "inotify"}, "NATIF_WATCH_MODE", "auto, events or poll"},
		{"poll interval", map[string]string{"NATIF_POLL_INTERVAL": "1ms"}, "NATIF_POLL_INTERVAL", "between 100ms and 1h"},
		{"incomplete before settle", map[string]string{"NATIF_SETTLE": "10s", "NATIF_INCOMPLETE_TIMEOUT": "5s"}, "NATIF_INCOMPLETE_TIMEOUT", "at least NATIF_SETTLE"},
		{"bad glob", map[string]string{"NATIF_INCLUDE": "[a"}, "NATIF_INCLUDE", "not a valid glob"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c, err := Load(Sources{Env: env(tt.env)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = c.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want a *FieldError wrapping ErrInvalid", err)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Errorf("got %q, want field %s and %q in the message", err, tt.wantField, tt.wantMsg)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error %q spans several lines, want one", err)
			}
		})
	}
}

// A value parsed badly is reported under the name the user wrote: the flag,
// the variable, or the YAML key with its line.
func TestErrorsNameTheSource(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	_ = fs.Parse([]string{"--settle=later"})
	_, err := Load(Sources{Flags: fs, Env: env(nil)})
	if err == nil || !strings.HasPrefix(err.Error(), `--settle="later"`) {
		t.Errorf("bad flag: got %v, want an error starting with --settle=\"later\"", err)
	}
	_, err = Load(Sources{Env: env(map[string]string{"NATIF_CONCURRENCY": "x"})})
	if err == nil || !strings.HasPrefix(err.Error(), `NATIF_CONCURRENCY="x"`) {
		t.Errorf("bad variable: got %v, want an error naming NATIF_CONCURRENCY", err)
	}
	file := writeFile(t, t.TempDir(), "c.yaml", "queue: q\nconcurrency: 0\n")
	c, err := Load(Sources{File: file, Env: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "concurrency=\"0\" ("+file+" line 2)") {
		t.Errorf("bad file value: got %v, want it to name the key, file and line", err)
	}
}

// No printed, logged or marshalled form of a Config shows a secret.
func TestConfigNeverShowsSecrets(t *testing.T) {
	const pw, key, redisPW = "pw-Zq9xK2", "key-Hh7Vd1", "redis-Pp4Ll0"
	c, err := Load(Sources{Env: env(map[string]string{
		"NATIF_USERNAME": "alice",
		"NATIF_PASSWORD": pw,
		"NATIF_API_KEY":  key,
		"REDIS_URL":      "redis://default:" + redisPW + "@127.0.0.1:6379/0",
	})})
	if err != nil {
		t.Fatal(err)
	}
	var printed, logged bytes.Buffer
	if err := c.Print(&printed); err != nil {
		t.Fatal(err)
	}
	lg := zerolog.New(&logged)
	lg.Info().Object("config", c).Interface("raw", c).Msg("loaded")
	js, _ := json.Marshal(c)
	forms := map[string]string{
		"Print":     printed.String(),
		"zerolog":   logged.String(),
		"json":      string(js),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"%s secret": fmt.Sprintf("%s %v", c.Password, c.APIKey),
	}
	for name, out := range forms {
		for _, secret := range []string{pw, key, redisPW} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output holds a secret: %s", name, out)
			}
		}
	}
	if !strings.Contains(printed.String(), redact.Redacted) || !strings.Contains(printed.String(), "alice") {
		t.Errorf("Print output = %q, want the user name and %s for the secrets", printed.String(), redact.Redacted)
	}
}

// A Redis password on the command line would show in ps: refused, naming the
// flag, with the password redacted in the error.
func TestRedisPasswordFlagRefused(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	_ = fs.Parse([]string{"--redis-url=redis://:hunter2-secret@127.0.0.1:6379/0"})
	_, err := Load(Sources{Flags: fs, Env: env(nil)})
	if err == nil || !strings.Contains(err.Error(), "--redis-url") || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("err = %v, want a refusal naming --redis-url and REDIS_URL", err)
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("the error holds the password: %v", err)
	}
	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs)
	_ = fs.Parse([]string{"--redis-url=redis://127.0.0.1:6379/0"})
	if _, err := Load(Sources{Flags: fs, Env: env(nil)}); err != nil {
		t.Errorf("a Redis URL without a password: %v", err)
	}
}
