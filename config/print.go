package config

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

// BindFlags registers a flag for every setting that has one, except the global
// --log-level and --log-format (see BindGlobalFlags). Only flags the user sets
// override the file and the environment; the help text names the variable and
// the default.
func BindFlags(fs *pflag.FlagSet) { bindFlags(fs, false) }

// BindGlobalFlags registers --log-level and --log-format, which every command has.
func BindGlobalFlags(fs *pflag.FlagSet) { bindFlags(fs, true) }

func bindFlags(fs *pflag.FlagSet, global bool) {
	def := Default()
	for i := range keys {
		k := &keys[i]
		if k.flag == "" || k.global != global {
			continue
		}
		usage := k.usage + " (" + k.env
		if d := k.show(&def); d != "" {
			usage += ", default " + d
		}
		usage += ")"
		fs.String(k.flag, "", usage)
	}
}

// Print writes the effective configuration as a table of setting, value and
// origin, secrets redacted. Unset secrets show as empty.
func (c *Config) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for i := range keys {
		k := &keys[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.env, k.show(c), c.Origin(k.yaml))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\n", "(auth)", c.AuthMode(), "derived")
	fmt.Fprintf(tw, "%s\t%s\t%s\n", "(upload endpoint)", c.UploadEndpoint(), "derived")
	return tw.Flush()
}

// MarshalZerologObject logs the configuration with secrets redacted, so that
// log.Info().Object("config", cfg) is safe.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	for i := range keys {
		k := &keys[i]
		e.Str(k.yaml, k.show(&c))
	}
	e.Str("auth", string(c.AuthMode()))
}
