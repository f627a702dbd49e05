package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:pw@localhost:6379/0", "redis://:xxxxx@localhost:6379/0"},
		{"rediss://user:pw@h:6380", "rediss://user:xxxxx@h:6380"},
		{"redis://user@h", "redis://user@h"},
		{"redis://%zz:pw@h", Redacted},
		// Found by fuzzing: an unescaped '#' ends the authority early, and
		// url.Parse sees no password at all.
		{"redis://default:Zq9:#Xk7@127.0.0.1:6379/0", Redacted},
		{"redis://:pa/ss@h:6379", Redacted},
		{"redis://:pa?ss@h:6379", Redacted},
		{"redis-socket://:pw@/tmp/redis.sock", "redis-socket://:xxxxx@/tmp/redis.sock"},
		{"redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?db=1&password=xxxxx"},
		{"redis://h:6379/0#frag", "redis://h:6379/0#frag"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecretForms(t *testing.T) {
	s := NewSecret("hunter2-secret")
	u := NewSecretURL("redis://:hunter2-secret@h:6379")
	js, _ := json.Marshal(struct {
		S Secret
		U SecretURL
	}{s, u})
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v %v", s, u), "%+v": fmt.Sprintf("%+v %+v", s, u), "%#v": fmt.Sprintf("%#v %#v", s, u),
		"%s": fmt.Sprintf("%s %s", s, u), "%q": fmt.Sprintf("%q", s), "json": string(js),
	} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s form shows the secret: %s", name, out)
		}
	}
	if s.Reveal() != "hunter2-secret" || u.Reveal() != "redis://:hunter2-secret@h:6379" {
		t.Errorf("Reveal lost the value")
	}
	if got := NewSecret("").String(); got != "" {
		t.Errorf("empty secret prints %q, want empty", got)
	}
}

func TestWriterScrubs(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Add("opaque-token-42")
	w.Add(`with"quote\secret`)
	w.Add("short") // ignored: too short to redact safely
	lines := []struct {
		desc, in, gone, keep string
	}{
		{"registered secret", "token opaque-token-42 sent", "opaque-token-42", "sent"},
		{"json-escaped secret", `{"v":"with\"quote\\secret"}`, `quote`, `{"v":"`},
		{"jwt", "got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.c2lnbmF0dXJl ok", "eyJhbGci", "ok"},
		{"bearer header", `Authorization: Bearer abc.def-123 next`, "abc.def-123", "Bearer " + Redacted},
		{"apikey header", `"Authorization":"ApiKey demo-key-9"`, "demo-key-9", "ApiKey"},
		{"form field", "grant_type=refresh_token&refresh_token=rt-777&x=1", "rt-777", "grant_type=refresh_token"},
		{"json field", `{"access_token":"at-888","expires_in":300}`, "at-888", `"expires_in":300`},
		{"escaped json field", `{"msg":"{\"password\":\"pw-999\"}"}`, "pw-999", `"msg"`},
		{"short value kept", "short words stay", "", "short words stay"},
	}
	for _, l := range lines {
		buf.Reset()
		n, err := w.Write([]byte(l.in))
		if err != nil || n != len(l.in) {
			t.Fatalf("%s: Write = %d, %v; want %d, nil", l.desc, n, err, len(l.in))
		}
		got := buf.String()
		if l.gone != "" && strings.Contains(got, l.gone) {
			t.Errorf("%s: got %q, still holds %q", l.desc, got, l.gone)
		}
		if !strings.Contains(got, l.keep) {
			t.Errorf("%s: got %q, lost %q", l.desc, got, l.keep)
		}
	}
}

func TestWriterForgetsOldestTokensButNotPinned(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Pin("the-Pinned-Password")
	for i := 0; i < maxSecrets+10; i++ {
		w.Add(fmt.Sprintf("secret-number-%03d", i))
	}
	if len(w.secrets) > 2*maxSecrets {
		t.Errorf("holds %d secret forms, want at most %d", len(w.secrets), 2*maxSecrets)
	}
	last := fmt.Sprintf("secret-number-%03d", maxSecrets+9)
	if got := string(w.Scrub([]byte(last))); got != Redacted {
		t.Errorf("newest secret scrubbed to %q, want %s", got, Redacted)
	}
	if got := string(w.Scrub([]byte("the-Pinned-Password"))); got != Redacted {
		t.Errorf("pinned secret after %d tokens scrubbed to %q, want %s", maxSecrets+10, got, Redacted)
	}
}

// The needle prefilter never changes what Scrub does: every line scrubs as
// it would with every pattern applied, whatever its case or alphabet.
func TestScrubPrefilterSameAsFullScan(t *testing.T) {
	full := func(p []byte) []byte {
		for _, pat := range patterns {
			p = pat.re.ReplaceAll(p, pat.repl)
		}
		return p
	}
	lines := []string{
		`{"level":"info","file":"/in/a.pdf","msg":"uploaded"}`,
		`Authorization: Bearer abc.def-ghi`,
		`authorization: BEARER abc123456`,
		`ApiKey s3cr3t-key-value`,
		`{"PASSWORD":"hunter2hunter2"}`,
		`refresh_token=xyz123&scope=a`,
		`Refresh_Token = "abcdef"`,
		`paſsword=hunter2hunter2`, // long s folds to s under (?i)
		`api_\u212Aey: nope`,      // Kelvin sign is not k for a needle; regexp decides
		`token eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl`,
		`eyJ short`,
		`ÄÖÜ bearer ümläüt-token`,
		`client_secret:"zzzzzzzz"}`,
		``,
	}
	w := NewWriter(io.Discard)
	for _, l := range lines {
		if got, want := string(w.Scrub([]byte(l))), string(full([]byte(l))); got != want {
			t.Errorf("Scrub(%q) = %q, want %q (all patterns applied)", l, got, want)
		}
	}
	if got := string(w.Scrub([]byte(`paſsword=hunter2hunter2`))); strings.Contains(got, "hunter2") {
		t.Errorf("a non-ASCII spelling of password kept its value: %q", got)
	}
}

func BenchmarkScrubPlainLine(b *testing.B) {
	w := NewWriter(io.Discard)
	line := []byte(`{"level":"info","component":"worker","file":"/srv/inbox/2026/invoice-0042.pdf","sha256":"6c5c8f96a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c","task_id":"6c5c8f96a1b2c3d4","attempt":1,"document_id":"2ab90c67-0000-4000-8000-000000000000","done":"/srv/done/2026/invoice-0042.pdf","time":"2026-12-04T07:30:00Z","message":"uploaded"}`)
	b.ReportAllocs()
	for b.Loop() {
		w.Scrub(line)
	}
}
