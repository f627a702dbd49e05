// Package redact keeps secrets out of logs, errors, metrics and files.
//
// Two layers: typed values (Secret, SecretURL) whose every printed form is
// redacted, so a secret that reaches a log line by mistake shows nothing; and a
// Writer that the process logger writes through, which replaces any registered
// secret (the password, the API key, every token the process receives) and
// anything shaped like a bearer token, in case one travelled as a plain string.
package redact

import (
	"net/url"
	"strings"
)

// Redacted is what every printed, logged or marshalled secret turns into.
const Redacted = "[REDACTED]"

// Secret holds a password, an API key or a token. Its String, GoString, JSON
// and text forms are all redacted, so a Secret that ends up in a log line, an
// error string or a sidecar by mistake shows nothing. Reveal is the one way to
// the value, and only code that puts it on the wire calls it.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret holds a value.
func (s Secret) IsSet() bool { return s.value != "" }

// String is redacted; an empty secret prints as empty so that "unset" stays visible.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v redacted too.
func (s Secret) GoString() string { return `redact.Secret{` + s.String() + `}` }

// MarshalText makes encoders (JSON, YAML, zerolog's Interface) write the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// URL returns u with the password of its user info replaced, for display.
// A URL that does not parse is replaced whole, since it may hold a secret we
// cannot find.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	// A password with an unescaped '#', '?' or '/' ends the URL's authority
	// early: url.Parse then sees no password, or only its start, and the
	// rest, '@' included, in the path, query or fragment
	// ("redis://default:Zq9:#Xk7@host" parses as host "default:Zq9:").
	// A URL with an '@' past its authority cannot be shown safely.
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 && strings.Contains(rest[j:], "@") {
			return Redacted
		}
	} else if strings.Contains(raw, "@") {
		return Redacted
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	changed := false
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery, changed = q.Encode(), true
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User, changed = url.UserPassword(u.User.Username(), "xxxxx"), true
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// SecretURL is a URL that may carry a password in its user info (REDIS_URL).
// Every printed form shows it with the password replaced; Reveal returns it whole.
type SecretURL struct {
	value string
}

// NewSecretURL wraps raw.
func NewSecretURL(raw string) SecretURL { return SecretURL{value: raw} }

// Reveal returns the URL with its password, for the code that connects.
func (u SecretURL) Reveal() string { return u.value }

// IsSet reports whether a URL is configured.
func (u SecretURL) IsSet() bool { return u.value != "" }

// String shows the URL with its password redacted.
func (u SecretURL) String() string { return URL(u.value) }

// GoString keeps %#v redacted too.
func (u SecretURL) GoString() string { return `redact.SecretURL{` + u.String() + `}` }

// MarshalText makes encoders write the redacted form.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }
