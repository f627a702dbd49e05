package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs the command line in-process with only the given environment.
func run(t *testing.T, ctx context.Context, env map[string]string, args ...string) (code int, stdout, stderr *syncBuffer) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code = Main(ctx, args, Env{
		Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	return code, stdout, stderr
}

// folders points every folder setting into dir, so a test can see that
// nothing was created.
func folders(dir string, extra map[string]string) map[string]string {
	env := map[string]string{
		"NATIF_INBOX":      filepath.Join(dir, "inbox"),
		"NATIF_DONE_DIR":   filepath.Join(dir, "done"),
		"NATIF_FAILED_DIR": filepath.Join(dir, "failed"),
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestConfigCommandPrintsRedacted(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, context.Background(), folders(dir, map[string]string{
		"NATIF_USERNAME": "alice", "NATIF_PASSWORD": "pw-Secret-81", "NATIF_CONCURRENCY": "12",
		"REDIS_URL": "redis://:redis-Secret-82@127.0.0.1:6379/0",
	}), "config", "--settle", "5s", "--check")
	if code != ExitOK {
		t.Fatalf("config exit %d, want 0; stderr: %s", code, errOut)
	}
	for _, want := range []string{`NATIF_CONCURRENCY\s+12\s+environment`, `NATIF_SETTLE\s+5s\s+command line`,
		`NATIF_PASSWORD\s+\[REDACTED\]\s+environment`, `NATIF_USERNAME\s+alice`, `REDIS_URL\s+redis://:xxxxx@127.0.0.1:6379/0`, `\(auth\)\s+password`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("config output lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"pw-Secret-81", "redis-Secret-82"} {
		if strings.Contains(out.String()+errOut.String(), secret) {
			t.Errorf("config output shows a secret:\n%s", out)
		}
	}
}

// Bad input exits 2 with one line naming what is wrong, and creates nothing.
func TestBadInputExits2AndTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.yaml", "inbox: [a\n")
	unknown := write("unknown.yaml", "concurency: 4\n")
	wrongType := write("wrongtype.yaml", "concurrency: many\n")
	withSecret := write("secret.yaml", "password: hunter2-pw\n")
	aFile := write("notadir", "x")
	before := entries(t, dir)

	tests := []struct {
		desc string
		env  map[string]string
		args []string
		want string // in the error line
	}{
		{"malformed yaml", nil, []string{"--config", malformed, "config"}, "not valid YAML"},
		{"unknown key", nil, []string{"--config", unknown, "config"}, `concurency (` + unknown + ` line 1): unknown key`},
		{"wrong type", nil, []string{"--config", wrongType, "config"}, `concurrency="many"`},
		{"secret in yaml", nil, []string{"--config", withSecret, "config"}, "password (" + withSecret + " line 1): secrets never come from the YAML file"},
		{"missing config file", nil, []string{"--config", filepath.Join(dir, "nope.yaml"), "config"}, "--config="},
		{"missing credential", nil, []string{"config", "--check"}, "no natif credentials"},
		{"half a credential", map[string]string{"NATIF_USERNAME": "u"}, []string{"config"}, "NATIF_PASSWORD: is required"},
		{"inbox is a file", map[string]string{"NATIF_INBOX": aFile}, []string{"config"}, `NATIF_INBOX="` + aFile + `": is a file`},
		{"bad flag value", nil, []string{"config", "--concurrency", "0"}, `--concurrency="0": must be between 1 and 1024`},
		{"unknown flag", nil, []string{"config", "--concurency", "3"}, "unknown flag: --concurency"},
		{"unknown command", nil, []string{"uplaod"}, `unknown command "uplaod"`},
		{"bad log level", nil, []string{"--log-level", "loud", "config"}, `--log-level="loud"`},
		{"bad simulator flag", nil, []string{"fake-api", "--server-error-rate", "2"}, "ServerErrorRate"},
		{"bad simulator addr", nil, []string{"fake-api", "--addr", "nowhere"}, `--addr="nowhere"`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			code, out, errOut := run(t, context.Background(), folders(dir, tt.env), tt.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, ExitUsage, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
			if !strings.HasPrefix(lines[0], "natif-uploader: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("first stderr line = %q, want natif-uploader: ... %q", lines[0], tt.want)
			}
			if len(lines) > 2 {
				t.Errorf("stderr has %d lines, want the error and at most a usage hint:\n%s", len(lines), errOut)
			}
			if out.String() != "" {
				t.Errorf("stdout = %q, want nothing on a failed start", out)
			}
			if strings.Contains(errOut.String(), "hunter2") {
				t.Errorf("stderr repeats the secret: %s", errOut)
			}
		})
	}
	if after := entries(t, dir); !equal(before, after) {
		t.Errorf("bad input changed the folder: before %v, after %v", before, after)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		names = append(names, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, context.Background(), nil, "version")
	if code != ExitOK || !regexp.MustCompile(`^natif-uploader \S+ \(commit \S+, go1\.\d+`).MatchString(out.String()) {
		t.Errorf("version: exit %d, output %q; want 0 and name, commit, Go version", code, out)
	}
}

// fake-api serves the simulator until its context ends, then exits 0.
func TestFakeAPICommandServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"fake-api", "--addr", "127.0.0.1:0", "--access-ttl", "42s", "--log-format", "json"}, Env{
			Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
			LookupEnv: func(string) (string, bool) { return "", false },
		})
	}()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
	}
	if base == "" {
		t.Fatalf("simulator did not report its address; stdout %q stderr %q", stdout, stderr)
	}
	resp, err := http.PostForm(base+"/token?realm=public", url.Values{
		"grant_type": {"password"}, "username": {"demo"}, "password": {"demo"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.ExpiresIn != 42 {
		t.Errorf("password grant: status %d, %+v, %v; want 200 with expires_in 42 from --access-ttl", resp.StatusCode, tok, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("fake-api exit %d after shutdown, want 0; stderr %s", code, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake-api did not stop within 10s of its context ending")
	}
	if tok.AccessToken != "" && strings.Contains(stderr.String(), tok.AccessToken) {
		t.Errorf("simulator log shows an access token")
	}
}
