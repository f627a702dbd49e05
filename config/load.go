package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/natif-uploader/natif-uploader/redact"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// DefaultFile is read when no --config flag is given and the file exists.
const DefaultFile = "configs/natif-uploader.yaml"

// Sources names where Load reads from. Every field is optional.
type Sources struct {
	// File is the YAML file to read; empty reads none.
	File string
	// Env looks a variable up; nil means os.LookupEnv.
	Env func(string) (string, bool)
	// Flags holds flags registered with BindFlags; only the ones set on the
	// command line override the other sources.
	Flags *pflag.FlagSet
	// ReadFile reads the YAML file and *_FILE secrets; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// Origin says where a setting's value came from, for the `config` command and
// for error messages that point at the place to fix.
type Origin struct {
	Kind  string // "default", "file", "env" or "flag"
	Name  string // the name as the user wrote it: YAML key, variable or --flag
	Where string // file and line, or the *_FILE path; empty otherwise
}

func (o Origin) String() string {
	switch o.Kind {
	case "file":
		return o.Where
	case "env":
		if o.Where != "" {
			return "environment, file " + o.Where
		}
		return "environment"
	case "flag":
		return "command line"
	default:
		return "default"
	}
}

// Load builds the effective configuration: Default, then the YAML file, then
// the environment, then the flags. It parses every value but does not
// Validate; relative folders are made absolute against the working directory.
func Load(src Sources) (Config, error) {
	if src.Env == nil {
		src.Env = os.LookupEnv
	}
	if src.ReadFile == nil {
		src.ReadFile = os.ReadFile
	}
	c := Default()
	c.origins = map[string]Origin{}
	for _, k := range keys {
		c.origins[k.yaml] = Origin{Kind: "default", Name: k.env}
	}

	if src.File != "" {
		data, err := src.ReadFile(src.File)
		if err != nil {
			return Config{}, &FieldError{Field: "--config", Value: src.File, Msg: "cannot read the file: " + pathErr(err)}
		}
		if err := c.applyYAML(src.File, data); err != nil {
			return Config{}, err
		}
	}
	for i := range keys {
		if err := c.applyEnv(&keys[i], src); err != nil {
			return Config{}, err
		}
	}
	if src.Flags != nil {
		for i := range keys {
			k := &keys[i]
			if k.flag == "" {
				continue
			}
			f := src.Flags.Lookup(k.flag)
			if f == nil || !f.Changed {
				continue
			}
			name := "--" + k.flag
			if k.yaml == "redis_url" && hasURLPassword(f.Value.String()) {
				// A command line is visible to every user in ps and /proc.
				return Config{}, &FieldError{Field: name, Value: redact.URL(f.Value.String()),
					Msg: "a Redis password never comes from a flag (every user sees command lines in ps): set REDIS_URL in the environment instead"}
			}
			if err := k.apply(&c, f.Value.String()); err != nil {
				return Config{}, &FieldError{Field: name, Value: f.Value.String(), Msg: err.Error()}
			}
			c.origins[k.yaml] = Origin{Kind: "flag", Name: name}
		}
	}
	if err := c.absolutePaths(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// pathErr drops the "open <path>:" prefix the caller already names.
func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (c *Config) applyEnv(k *key, src Sources) error {
	v, ok := src.Env(k.env)
	if k.fileEnv != "" {
		path, fok := src.Env(k.fileEnv)
		if fok && path != "" {
			if ok && v != "" {
				return &FieldError{Field: k.fileEnv, Value: path, Msg: "set either " + k.env + " or " + k.fileEnv + ", not both"}
			}
			data, err := src.ReadFile(path)
			if err != nil {
				return &FieldError{Field: k.fileEnv, Value: path, Msg: "cannot read the file: " + pathErr(err)}
			}
			s := strings.TrimRight(string(data), "\r\n")
			if strings.TrimSpace(s) == "" {
				return &FieldError{Field: k.fileEnv, Value: path, Msg: "the file is empty"}
			}
			if strings.ContainsAny(s, "\r\n") {
				return &FieldError{Field: k.fileEnv, Value: path, Msg: "the file holds more than one line"}
			}
			if err := k.apply(c, s); err != nil {
				return &FieldError{Field: k.fileEnv, Value: path, Msg: err.Error()}
			}
			c.origins[k.yaml] = Origin{Kind: "env", Name: k.fileEnv, Where: path}
			return nil
		}
	}
	if !ok || (k.secret && v == "") {
		return nil
	}
	if err := k.apply(c, v); err != nil {
		fe := &FieldError{Field: k.env, Value: v, Msg: err.Error()}
		if k.secret {
			fe.Value = redact.Redacted
		}
		return fe
	}
	c.origins[k.yaml] = Origin{Kind: "env", Name: k.env}
	return nil
}

// applyYAML reads a YAML mapping of keys to values. It works on yaml.Node
// rather than decoding into a struct so that every complaint can name the key
// and its line: unknown keys, secrets, and values of the wrong shape.
func (c *Config) applyYAML(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return &FieldError{Field: "--config", Value: file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return &FieldError{Field: "--config", Value: file, Msg: "holds more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return &FieldError{Field: "--config", Value: file, Msg: fmt.Sprintf("line %d: want a mapping of settings (key: value)", root.Line)}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := root.Content[i], root.Content[i+1]
		where := fmt.Sprintf("%s line %d", file, kn.Line)
		name := kn.Value
		if prev, dup := seen[name]; dup {
			return &FieldError{Field: name, Where: where, Msg: fmt.Sprintf("set twice (first on line %d)", prev)}
		}
		seen[name] = kn.Line
		k := keyByYAML(name)
		if k == nil {
			if s := secretFileKey(name); s != nil {
				return &FieldError{Field: name, Where: where, Msg: "secrets never come from the YAML file: set " + s.fileEnv + " in the environment instead"}
			}
			return &FieldError{Field: name, Where: where, Msg: "unknown key (known keys: " + knownKeys() + ")"}
		}
		if k.secret {
			return &FieldError{Field: name, Where: where, Msg: "secrets never come from the YAML file: set " + k.env + " or " + k.fileEnv + " in the environment instead"}
		}
		var err error
		switch {
		case vn.Kind == yaml.SequenceNode && k.list:
			items := make([]string, 0, len(vn.Content))
			for _, item := range vn.Content {
				if item.Kind != yaml.ScalarNode {
					return &FieldError{Field: name, Where: fmt.Sprintf("%s line %d", file, item.Line), Msg: "list items must be plain values"}
				}
				if s := strings.TrimSpace(item.Value); s != "" {
					items = append(items, s)
				}
			}
			err = k.setList(c, items)
		case vn.Kind == yaml.ScalarNode:
			if name == "redis_url" && hasURLPassword(vn.Value) {
				return &FieldError{Field: name, Where: where, Value: redact.URL(vn.Value), Msg: "a Redis password never comes from the YAML file: set REDIS_URL in the environment instead"}
			}
			if vn.Tag == "!!null" {
				err = k.apply(c, "")
			} else {
				err = k.apply(c, vn.Value)
			}
		default:
			want := "a single value"
			if k.list {
				want = "a value or a list of values"
			}
			return &FieldError{Field: name, Where: where, Msg: "want " + want}
		}
		if err != nil {
			return &FieldError{Field: name, Where: where, Value: vn.Value, Msg: err.Error()}
		}
		c.origins[k.yaml] = Origin{Kind: "file", Name: name, Where: where}
	}
	return nil
}

func secretFileKey(name string) *key {
	for i := range keys {
		if keys[i].secret && strings.EqualFold(name, strings.ToLower(keys[i].fileEnv)[len("natif_"):]) {
			return &keys[i]
		}
	}
	return nil
}

func knownKeys() string {
	var names []string
	for _, k := range keys {
		if !k.secret {
			names = append(names, k.yaml)
		}
	}
	return strings.Join(names, ", ")
}

// absolutePaths makes every folder absolute, so that workers in other
// processes and the done/failed path arithmetic agree on one spelling.
func (c *Config) absolutePaths() error {
	abs := func(name, p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", &FieldError{Field: c.fieldName(name), Value: p, Msg: err.Error()}
		}
		return a, nil
	}
	var err error
	for i, p := range c.Inboxes {
		if c.Inboxes[i], err = abs("inbox", p); err != nil {
			return err
		}
	}
	for i, p := range c.AllowedRoots {
		if c.AllowedRoots[i], err = abs("allowed_roots", p); err != nil {
			return err
		}
	}
	if c.DoneDir, err = abs("done_dir", c.DoneDir); err != nil {
		return err
	}
	if c.FailedDir, err = abs("failed_dir", c.FailedDir); err != nil {
		return err
	}
	return nil
}
