package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

const (
	fzConfigFile = "/etc/natif-uploader/natif.yaml"
	fzSecretFile = "/run/secrets/natif"
)

// fzLists are the list settings, read back as lists for the round trip.
var fzLists = map[string]func(c *Config) []string{
	"scopes":           func(c *Config) []string { return c.Scopes },
	"workflow_include": func(c *Config) []string { return c.WorkflowInclude },
	"inbox":            func(c *Config) []string { return c.Inboxes },
	"allowed_roots":    func(c *Config) []string { return c.AllowedRoots },
	"include":          func(c *Config) []string { return c.Include },
	"exclude":          func(c *Config) []string { return c.Exclude },
}

// fzSecretModes are the ways a secret reaches Load in FuzzLoad.
var fzSecretModes = []func(secret string) map[string]string{
	func(s string) map[string]string { return map[string]string{"NATIF_API_KEY": s} },
	func(s string) map[string]string { return map[string]string{"NATIF_API_KEY_FILE": fzSecretFile} },
	func(s string) map[string]string {
		return map[string]string{"NATIF_USERNAME": "alice", "NATIF_PASSWORD": s}
	},
	func(s string) map[string]string {
		return map[string]string{"NATIF_USERNAME": "alice", "NATIF_PASSWORD_FILE": fzSecretFile}
	},
	func(s string) map[string]string {
		return map[string]string{"REDIS_URL": "redis://default:" + s + "@127.0.0.1:6379/0"}
	},
}

// FuzzLoad feeds Load a YAML file, one environment variable with any value
// and a secret by one of its routes (NATIF_API_KEY, NATIF_API_KEY_FILE,
// NATIF_PASSWORD, NATIF_PASSWORD_FILE, a REDIS_URL password). Properties:
// no panic; every error is a *FieldError wrapping ErrInvalid; no error,
// Validate error, Print table or log object shows the secret; a loaded
// configuration has absolute, clean folders and trimmed, non-empty list
// items; and its settings written back as YAML load to the same settings.
func FuzzLoad(f *testing.F) {
	if example, err := os.ReadFile(filepath.Join("..", DefaultFile)); err == nil {
		f.Add(example, uint8(0), "", "pw-Zq9xK2", uint8(0))
	}
	yamls := []string{
		"",
		"# only a comment\n",
		"~\n",
		"base_url: http://127.0.0.1:8080\ninbox: [/srv/scans/a, /srv/scans/b]\ndone_dir: /srv/done\nfailed_dir: /srv/failed\n",
		"scopes: capturing_read   openid\ninclude: '*.pdf,scans/*'\nmax_file_size: 50MiB\n",
		"inbox:\n  - ./in\n  - ''\n  - ' in2 '\nconcurrency: 4\nsettle: 500ms\n",
		"password: hunter2\n",
		"api_key_file: /run/secrets/k\n",
		"redis_url: redis://:pw@localhost:6379/0\n",
		"redis_url: 'redis://localhost:6379/0'\nqueue: natif:prod\n",
		"concurrency: 8\nconcurrency: 9\n",
		"concurrency: [1, 2]\n",
		"inbox: [[a]]\n",
		"unknown_key: 1\n",
		"- a\n- b\n",
		"a: 1\n---\nb: 2\n",
		"base_url: &u http://x\nrealm: *u\n",
		"<<: {realm: x}\n",
		"rate_limit: .inf\nmax_retry: 0x10\nfetch_results: yes\n",
		"max_file_size: 18446744073709551615\n",
		"task_timeout: 2562047h47m16.854775807s\n",
		"log_level: DEBUG\nwatch_mode: ' Poll '\nlog_format: ~\n",
		"\tbad: indent\n",
		"key: \"unterminated\n",
		"? [complex, key]\n: value\n",
	}
	envs := []struct {
		idx uint8
		val string
	}{
		{0, ""}, {0, "https://api.natif.ai"}, {5, "capturing_read openid"}, {13, "/srv/a,/srv/b,"}, {9, "60"},
		{25, "100MB"}, {26, "true"}, {27, "1e3"}, {11, "redis://u:pw@[::1]:6379/0"}, {11, "redis://%zz@host"},
		{17, "poll"}, {18, "99999999999h"}, {24, "-1s"}, {31, "127.0.0.1:0"}, {1, "key with space"}, {3, "x"},
	}
	for i, y := range yamls {
		e := envs[i%len(envs)]
		f.Add([]byte(y), e.idx, e.val, "key-Hh7Vd1", uint8(i))
	}
	for i, e := range envs {
		f.Add([]byte(nil), e.idx, e.val, "s3cr3t-"+strconv.Itoa(i), uint8(i))
	}
	f.Add([]byte(nil), uint8(0), "", "two\nlines", uint8(1))
	f.Add([]byte(nil), uint8(0), "", "with space", uint8(0))
	f.Add([]byte(nil), uint8(0), "", "p@ss/w:rd#", uint8(4))

	f.Fuzz(func(t *testing.T, yamlData []byte, envIdx uint8, envVal, secret string, mode uint8) {
		secret = "Zq9" + secret + "Xk7" // long enough and distinctive enough to look for
		k := &keys[int(envIdx)%len(keys)]
		name := k.env
		if envIdx >= 128 && k.fileEnv != "" {
			name = k.fileEnv
		}
		env := fzSecretModes[int(mode)%len(fzSecretModes)](secret)
		secretVar := ""
		for v := range env {
			if v != "NATIF_USERNAME" {
				secretVar = v
			}
		}
		env[name] = envVal
		// The secret is looked for only where it went in unchanged, and only
		// when the other inputs do not hold it themselves.
		lookFor := name != secretVar && !bytes.Contains(yamlData, []byte(secret)) && !strings.Contains(envVal, secret)
		readFile := func(p string) ([]byte, error) {
			switch p {
			case fzConfigFile:
				return yamlData, nil
			case fzSecretFile:
				return []byte(secret + "\n"), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		hides := func(what, out string) {
			t.Helper()
			if lookFor && strings.Contains(out, secret) {
				t.Fatalf("%s shows the secret %q (given as %s): %s", what, secret, secretVar, out)
			}
		}
		src := Sources{
			File:     fzConfigFile,
			Env:      func(v string) (string, bool) { s, ok := env[v]; return s, ok },
			ReadFile: readFile,
		}
		c, err := Load(src)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error %v (%T) is not a *FieldError wrapping ErrInvalid", err, err)
			}
			hides("Load error", err.Error())
			return
		}

		for _, p := range append(append([]string{c.DoneDir, c.FailedDir}, c.Inboxes...), c.AllowedRoots...) {
			if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
				t.Fatalf("folder %q is not absolute and clean", p)
			}
		}
		for key, get := range fzLists {
			for _, item := range get(&c) {
				if item == "" || strings.TrimSpace(item) != item {
					t.Fatalf("%s holds item %q: empty or untrimmed", key, item)
				}
			}
		}
		for i := range keys {
			switch o := c.Origin(keys[i].yaml); o.Kind {
			case "default", "file", "env", "flag":
			default:
				t.Fatalf("origin of %s is %+v", keys[i].yaml, o)
			}
		}
		if verr := c.Validate(); verr != nil {
			if !errors.Is(verr, ErrInvalid) {
				t.Fatalf("Validate error %v does not wrap ErrInvalid", verr)
			}
			hides("Validate error", verr.Error())
		}
		var printed, logged bytes.Buffer
		if err := c.Print(&printed); err != nil {
			t.Fatal(err)
		}
		hides("Print", printed.String())
		lg := zerolog.New(&logged)
		lg.Info().Object("config", c).Msg("loaded")
		hides("log", logged.String())
		hides("%+v", fmt.Sprintf("%+v", c))

		fzRoundTrip(t, &c)
	})
}

// fzRoundTrip writes every setting of c that a YAML file may hold as YAML,
// loads it with an empty environment, and wants every setting shown the same.
func fzRoundTrip(t *testing.T, c *Config) {
	t.Helper()
	doc := yaml.Node{Kind: yaml.MappingNode}
	str := func(s string) *yaml.Node {
		n := &yaml.Node{}
		if err := n.Encode(s); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range keys {
		k := &keys[i]
		if k.secret {
			continue
		}
		var v *yaml.Node
		switch {
		case k.yaml == "redis_url" && hasURLPassword(c.RedisURL.Reveal()):
			continue // a YAML file may not hold it: the file would be refused
		case k.yaml == "max_file_size":
			v = str(strconv.FormatInt(c.MaxFileSize, 10))
		case k.list:
			v = &yaml.Node{Kind: yaml.SequenceNode}
			for _, item := range fzLists[k.yaml](c) {
				v.Content = append(v.Content, str(item))
			}
		default:
			v = str(k.show(c))
		}
		if !utf8.ValidString(k.show(c)) {
			return // YAML holds text; bytes that are not UTF-8 come only from the environment
		}
		doc.Content = append(doc.Content, str(k.yaml), v)
	}
	data, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	c2, err := Load(Sources{
		File:     fzConfigFile,
		Env:      func(string) (string, bool) { return "", false },
		ReadFile: func(string) ([]byte, error) { return data, nil },
	})
	if err != nil {
		t.Fatalf("the loaded settings written as YAML do not load: %v\n%s", err, data)
	}
	for i := range keys {
		k := &keys[i]
		if k.secret || (k.yaml == "redis_url" && hasURLPassword(c.RedisURL.Reveal())) {
			continue
		}
		if a, b := k.show(c), k.show(&c2); a != b {
			t.Fatalf("%s: loaded %q, written as YAML and loaded again %q\n%s", k.yaml, a, b, data)
		}
	}
}
