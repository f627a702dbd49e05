package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"sync"
)

// maxSecrets bounds the registered secrets: tokens rotate every few minutes,
// and only the recent ones can still be in flight.
const maxSecrets = 64

// minSecretLen keeps short values (which would redact ordinary words) out.
const minSecretLen = 6

// patterns are the token-shaped values Scrub replaces. Each can match only
// where one of its needles appears (in ASCII lower case when fold is set):
// a line holding none is not searched, which spares most log lines the
// regular expressions (they were a tenth of the daemon's CPU per file).
var patterns = []struct {
	re      *regexp.Regexp
	repl    []byte
	needles []string
	fold    bool
}{
	// A JWT: three base64url parts, the first a JSON header ("eyJ" is `{"`).
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), []byte(Redacted), []string{"eyJ"}, false},
	// An Authorization header value.
	{regexp.MustCompile(`(?i)\b(bearer|apikey)( +)[^\s"',;\\]+`), []byte("${1}${2}" + Redacted), []string{"bearer", "apikey"}, true},
	// key=value and "key":"value" forms of the well-known secret fields.
	{regexp.MustCompile(`(?i)((?:access_token|refresh_token|id_token|password|api_key|apikey|client_secret)\\?"?\s*[:=]\s*\\?"?)[^"&\s,}\\]+`), []byte("${1}" + Redacted),
		[]string{"access_token", "refresh_token", "id_token", "password", "api_key", "apikey", "client_secret"}, true},
}

// mayMatch reports whether p holds one of needles; lower is p in ASCII
// lower case when fold is set. A line with a byte outside ASCII is always
// searched: Unicode case folding ("ſ" matches s, "K" matches k) is more than
// ASCII lower case can see.
func mayMatch(p, lower []byte, needles []string, fold, ascii bool) bool {
	if fold && !ascii {
		return true
	}
	in := p
	if fold {
		in = lower
	}
	for _, n := range needles {
		if bytes.Contains(in, []byte(n)) {
			return true
		}
	}
	return false
}

// asciiLower returns p in ASCII lower case and whether p is all ASCII.
func asciiLower(p []byte) ([]byte, bool) {
	out := make([]byte, len(p))
	ascii := true
	for i, c := range p {
		if c >= 0x80 {
			ascii = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out, ascii
}

// Writer passes log output on with every registered secret, and anything
// shaped like a token or an Authorization value, replaced by Redacted. zerolog
// writes one event per Write call, so a secret never straddles two writes.
// It is safe for concurrent use.
type Writer struct {
	out io.Writer

	mu      sync.RWMutex
	pinned  [][]byte // long-lived secrets (password, API key): never forgotten
	secrets [][]byte // tokens: raw and JSON-escaped forms, oldest first
}

// NewWriter returns a Writer in front of out.
func NewWriter(out io.Writer) *Writer { return &Writer{out: out} }

// Add registers a short-lived secret (a token) to be replaced from now on.
// Values shorter than six bytes are ignored; the oldest tokens are forgotten
// past a bound.
func (w *Writer) Add(secret string) {
	if w == nil || len(secret) < minSecretLen {
		return
	}
	forms := secretForms(secret)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range append(w.pinned, w.secrets...) {
		if bytes.Equal(s, forms[0]) {
			return
		}
	}
	w.secrets = append(w.secrets, forms...)
	if over := len(w.secrets) - 2*maxSecrets; over > 0 {
		w.secrets = append([][]byte(nil), w.secrets[over:]...)
	}
}

// Pin registers a long-lived secret (the password, the API key): it is never
// forgotten, however many tokens follow.
func (w *Writer) Pin(secret string) {
	if w == nil || len(secret) < minSecretLen {
		return
	}
	forms := secretForms(secret)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.pinned {
		if bytes.Equal(s, forms[0]) {
			return
		}
	}
	w.pinned = append(w.pinned, forms...)
}

// secretForms is a secret as written raw and inside a JSON string.
func secretForms(secret string) [][]byte {
	forms := [][]byte{[]byte(secret)}
	if js, err := json.Marshal(secret); err == nil {
		if esc := js[1 : len(js)-1]; !bytes.Equal(esc, forms[0]) {
			forms = append(forms, esc)
		}
	}
	return forms
}

// Write scrubs p and writes it on. It reports len(p) so callers see a whole write.
func (w *Writer) Write(p []byte) (int, error) {
	if _, err := w.out.Write(w.Scrub(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Scrub returns p with registered secrets and token-shaped values replaced.
func (w *Writer) Scrub(p []byte) []byte {
	out := p
	if w != nil {
		w.mu.RLock()
		for _, s := range w.pinned {
			if bytes.Contains(out, s) {
				out = bytes.ReplaceAll(out, s, []byte(Redacted))
			}
		}
		for _, s := range w.secrets {
			if bytes.Contains(out, s) {
				out = bytes.ReplaceAll(out, s, []byte(Redacted))
			}
		}
		w.mu.RUnlock()
	}
	var lower []byte
	ascii := true
	for _, pat := range patterns {
		if pat.fold && lower == nil {
			lower, ascii = asciiLower(out)
		}
		if !mayMatch(out, lower, pat.needles, pat.fold, ascii) {
			continue
		}
		out = pat.re.ReplaceAll(out, pat.repl)
		lower = nil // out changed
	}
	return out
}

// Text scrubs token-shaped values from s (no registered secrets): for error
// messages built from text a server sent.
func Text(s string) string {
	var w *Writer
	return string(w.Scrub([]byte(s)))
}
