package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/natif"
)

// fzClasses are the five classes and their names, the whole of Class.
var fzClasses = map[Class]string{Success: "success", Transient: "transient", RateLimited: "rate-limited", Permanent: "permanent", Account: "account"}

// FuzzClassify: an answer (status, Retry-After, body) goes through the same
// path the handler takes (natif.ReadAPIError, then ClassifyStatus) and lands
// in exactly one class: 2xx and only 2xx is success, 429 and only 429 is
// rate-limited, 402/403 and only those are account-level, every 5xx is
// transient, and the class does not depend on headers or body. An error
// instead of an answer is account-level exactly when it wraps
// auth.ErrCredentialsRejected.
func FuzzClassify(f *testing.F) {
	seeds := []struct {
		status int
		ra     string
		body   string
	}{
		{200, "", `{"uuid":"0b3f"}`},
		{201, "", ``},
		{202, "", `{"processing_id":"p1"}`},
		{299, "", ``},
		{300, "", ``},
		{302, "", ``},
		{400, "", `{"detail":"bad request"}`},
		{401, "", `{"detail":"Not authenticated"}`},
		{402, "", `{"detail":"Quota exceeded"}`},
		{403, "", `{"detail":"Not enough permissions"}`},
		{404, "", `{"detail":"Not Found"}`},
		{408, "", ``},
		{413, "", `{"detail":"File too large"}`},
		{415, "", `{"detail":"Unsupported file type"}`},
		{422, "", `{"detail":[{"loc":["body","file"],"msg":"field required"}]}`},
		{425, "", ``},
		{429, "30", `{"detail":"Page limit reached"}`},
		{429, "Wed, 21 Oct 2015 07:28:00 GMT", ``},
		{499, "", ``},
		{500, "", `Internal Server Error`},
		{502, "", `<html>502 Bad Gateway</html>`},
		{503, "120", ``},
		{504, "", ``},
		{599, "", ``},
		{600, "", ``},
		{0, "", ``},
		{-1, "", ``},
		{100, "", ``},
	}
	for _, s := range seeds {
		f.Add(s.status, s.ra, []byte(s.body), "connection reset by peer")
	}
	f.Add(401, "", []byte(nil), "token endpoint answered 401 invalid_grant")
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte, errText string) {
		c := ClassifyStatus(status)
		name, ok := fzClasses[c]
		if !ok {
			t.Fatalf("ClassifyStatus(%d) = %d, not a class", status, int(c))
		}
		if c.String() != name {
			t.Fatalf("class %d is named %q, want %q", int(c), c.String(), name)
		}
		if (c == Success) != (status >= 200 && status <= 299) {
			t.Fatalf("ClassifyStatus(%d) = %v: success must be exactly 2xx", status, c)
		}
		if (c == RateLimited) != (status == http.StatusTooManyRequests) {
			t.Fatalf("ClassifyStatus(%d) = %v: rate-limited must be exactly 429", status, c)
		}
		if (c == Account) != (status == http.StatusPaymentRequired || status == http.StatusForbidden) {
			t.Fatalf("ClassifyStatus(%d) = %v: account-level must be exactly 402 and 403", status, c)
		}
		if status >= 500 && c != Transient {
			t.Fatalf("ClassifyStatus(%d) = %v: a server error must be transient", status, c)
		}
		if c == Transient && status < 500 && status != 401 && status != 408 && status != 425 {
			t.Fatalf("ClassifyStatus(%d) = %v: transient below 500 only for 401, 408, 425", status, c)
		}

		// The handler's path: a non-2xx answer becomes a *natif.APIError
		// whose status is classified; headers and body change nothing.
		if c != Success {
			h := http.Header{}
			h.Set("Retry-After", retryAfter)
			u, _ := url.Parse("https://api.example/documents/")
			resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)),
				Request: &http.Request{Method: http.MethodPost, URL: u}}
			apiErr := natif.ReadAPIError(resp, time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
			var got *natif.APIError
			if !errors.As(fmt.Errorf("upload: %w", apiErr), &got) || ClassifyStatus(got.Status) != c {
				t.Fatalf("status %d through ReadAPIError classifies as %v, want %v", status, ClassifyStatus(got.Status), c)
			}
			if got.RetryAfter < 0 || got.RetryAfter > 10*time.Minute {
				t.Fatalf("Retry-After %q gave a wait of %v", retryAfter, got.RetryAfter)
			}
		}

		// Errors instead of answers.
		plain := errors.New(errText)
		if ClassifyError(plain) != Transient || ClassifyError(fmt.Errorf("post: %w", plain)) != Transient {
			t.Fatalf("error %q is not transient", errText)
		}
		rejected := fmt.Errorf("%s: %w", errText, auth.ErrCredentialsRejected)
		if ClassifyError(rejected) != Account || ClassifyError(fmt.Errorf("upload: %w", rejected)) != Account {
			t.Fatalf("rejected credentials (%q) are not account-level", rejected)
		}
	})
}

// fzSHA is a valid content hash for seeds.
const fzSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// fzCheckValidPayload checks what every payload that validates must hold:
// absolute, clean path and root, the path below (or, for rel ".", at) the
// root and equal to root/rel, a local rel that cannot lead out of the done or
// failed folder, a well-formed hash, and a JSON form (the one NewTask
// enqueues) that parses back to the same payload.
func fzCheckValidPayload(t *testing.T, p Payload) {
	t.Helper()
	if !filepath.IsAbs(p.Path) || filepath.Clean(p.Path) != p.Path {
		t.Fatalf("valid payload with path %q not absolute and clean", p.Path)
	}
	if !filepath.IsAbs(p.Root) || filepath.Clean(p.Root) != p.Root {
		t.Fatalf("valid payload with root %q not absolute and clean", p.Root)
	}
	if !within(p.Path, p.Root) || filepath.Join(p.Root, p.Rel) != p.Path {
		t.Fatalf("valid payload: path %q is not root %q joined with rel %q", p.Path, p.Root, p.Rel)
	}
	if !filepath.IsLocal(p.Rel) || filepath.IsAbs(p.Rel) {
		t.Fatalf("valid payload with rel %q that leaves its root", p.Rel)
	}
	// Note: rel "." (path == root) validates; Roots.Open then refuses the
	// folder as not a regular file, and destination refuses it below.
	for _, dir := range []string{"/srv/scans/done", "/"} {
		d, err := destination(dir, p.Rel)
		if err == nil && (!within(d, dir) || d == dir) {
			t.Fatalf("destination(%q, %q) = %q leaves the folder", dir, p.Rel, d)
		}
		if err == nil && d != filepath.Join(dir, p.Rel) {
			t.Fatalf("destination(%q, %q) = %q", dir, p.Rel, d)
		}
	}
	if p.Size < 0 || !isSHA256(p.SHA256) || TaskID(p.SHA256) != "sha256:"+p.SHA256 {
		t.Fatalf("valid payload with size %d, sha256 %q", p.Size, p.SHA256)
	}
	// Round trip through the task NewTask builds.
	task, err := NewTask(p, DefaultTaskOptions())
	if err != nil {
		t.Fatalf("NewTask of a valid payload: %v", err)
	}
	if task.Type() != TaskType {
		t.Fatalf("task type %q", task.Type())
	}
	back, err := ParsePayload(task.Payload())
	if err != nil {
		t.Fatalf("the payload NewTask wrote does not parse: %v\n%s", err, task.Payload())
	}
	want := p
	if want.EnqueuedAt.IsZero() {
		want.EnqueuedAt = back.EnqueuedAt // NewTask stamps it
		if back.EnqueuedAt.IsZero() {
			t.Fatalf("NewTask left enqueued_at unset: %s", task.Payload())
		}
	}
	if back.Path != want.Path || back.Root != want.Root || back.Rel != want.Rel || back.Size != want.Size ||
		back.SHA256 != want.SHA256 || back.Source != want.Source ||
		!back.MTime.Equal(want.MTime) || !back.EnqueuedAt.Equal(want.EnqueuedAt) {
		t.Fatalf("the payload NewTask enqueues reads back different (JSON turns invalid UTF-8 into U+FFFD?):\n got path %q rel %q root %q source %q size %d mtime %v enqueued %v\nwant path %q rel %q root %q source %q size %d mtime %v enqueued %v",
			back.Path, back.Rel, back.Root, back.Source, back.Size, back.MTime, back.EnqueuedAt,
			want.Path, want.Rel, want.Root, want.Source, want.Size, want.MTime, want.EnqueuedAt)
	}
}

// FuzzParsePayload: any bytes as a task payload either decode to a payload
// that validates (checked by fzCheckValidPayload) or give an error wrapping
// ErrBadPayload; never a panic.
func FuzzParsePayload(f *testing.F) {
	valid := func(p Payload) []byte { b, _ := json.Marshal(p); return b }
	mt := time.Date(2026, 12, 3, 9, 14, 7, 123456789, time.UTC)
	f.Add(valid(Payload{Path: "/srv/scans/inbox/2026/invoice-17.pdf", Root: "/srv/scans/inbox", Rel: "2026/invoice-17.pdf", Size: 48213, MTime: mt, SHA256: fzSHA, EnqueuedAt: mt.Add(2 * time.Second), Source: "watcher"}))
	f.Add(valid(Payload{Path: "/a/b", Root: "/a", Rel: "b", Size: 0, SHA256: fzSHA}))
	f.Add(valid(Payload{Path: "/x", Root: "/", Rel: "x", Size: 1, SHA256: fzSHA}))
	f.Add(valid(Payload{Path: "/in/ü ö/rechnung 1.pdf", Root: "/in", Rel: "ü ö/rechnung 1.pdf", Size: 1, SHA256: fzSHA}))
	f.Add(valid(Payload{Path: "/in", Root: "/in", Rel: ".", Size: 1, SHA256: fzSHA}))
	f.Add([]byte(`{"path":"/srv/in/../etc/passwd","root":"/srv/in","rel":"../etc/passwd","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"/etc/passwd","root":"/srv/in","rel":"x.pdf","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in/","rel":"x.pdf","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"/srv/in/a/","root":"/srv/in","rel":"a/","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in","rel":"x.pdf","size":-1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in","rel":"x.pdf","size":1,"sha256":"` + strings.ToUpper(fzSHA) + `"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in","rel":"x.pdf","size":1,"sha256":"` + fzSHA + `","mtime":"2026-12-03T09:14:07+23:59"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in","rel":"x.pdf","size":1,"sha256":"` + fzSHA + `","mtime":"not a time"}`))
	f.Add([]byte(`{"path":"/srv/in/x.pdf","root":"/srv/in","rel":"x.pdf","size":1,"sha256":"` + fzSHA + `","extra":1}`))
	f.Add([]byte(`{"path":"/srv/in/x\u0000.pdf","root":"/srv/in","rel":"x\u0000.pdf","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path":"inbox/ok.pdf","root":"inbox","rel":"ok.pdf","size":1,"sha256":"` + fzSHA + `"}`))
	f.Add([]byte(`{"path": `))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		if len(data) > maxPayload {
			t.Fatalf("accepted %d bytes, more than %d", len(data), maxPayload)
		}
		fzCheckValidPayload(t, p)
	})
}

// FuzzPayloadValidate: payloads built field by field (which reach the later
// checks far more often than raw JSON does) either fail Validate with
// ErrBadPayload or hold every property of a valid payload.
func FuzzPayloadValidate(f *testing.F) {
	f.Add("/srv/scans/inbox/2026/invoice-17.pdf", "/srv/scans/inbox", "2026/invoice-17.pdf", int64(48213), fzSHA, int64(1796288047), "watcher")
	f.Add("/x", "/", "x", int64(0), fzSHA, int64(0), "")
	f.Add("/in", "/in", ".", int64(1), fzSHA, int64(0), "")
	f.Add("/in/../x", "/in", "../x", int64(1), fzSHA, int64(0), "")
	f.Add("/x", "/in", "../x", int64(1), fzSHA, int64(0), "")
	f.Add("/in/a/b", "/in", "a//b", int64(1), fzSHA, int64(0), "")
	f.Add("/in/a", "/in/", "a", int64(1), fzSHA, int64(0), "")
	f.Add("/in/a", "in", "a", int64(1), fzSHA, int64(0), "")
	f.Add("/in/a", "/in", "/a", int64(1), fzSHA, int64(0), "")
	f.Add("/in/a", "/in", "a", int64(-1), fzSHA, int64(0), "")
	f.Add("/in/a", "/in", "a", int64(1), "abc", int64(-62135596800), "")
	f.Add("/in/a", "/in", "a", int64(1), fzSHA, int64(253402300799), "")
	f.Fuzz(func(t *testing.T, path, root, rel string, size int64, sha string, mtime int64, source string) {
		p := Payload{Path: path, Root: root, Rel: rel, Size: size, SHA256: sha, Source: source}
		if mtime != 0 {
			p.MTime = time.Unix(mtime, 0).UTC()
			if y := p.MTime.Year(); y < 0 || y > 9999 {
				return // JSON cannot write it; not a payload anyone can send
			}
		}
		if err := p.Validate(); err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		fzCheckValidPayload(t, p)
	})
}

// fzMagic is every supported type's leading bytes: the encoder side of Sniff.
var fzMagic = map[string][][]byte{
	"application/pdf": {[]byte("%PDF-")},
	"image/jpeg":      {{0xFF, 0xD8, 0xFF}},
	"image/png":       {{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}},
	"image/gif":       {[]byte("GIF87a"), []byte("GIF89a")},
	"image/tiff":      {{'I', 'I', 42, 0}, {'M', 'M', 0, 42}},
}

// FuzzSniff: a sniffed type is one of the five supported types, or ("",
// false); the decision needs no more than SniffLen bytes (the watcher reads
// only those) and more bytes never change it; and every type's magic, with
// anything after it, sniffs as that type.
func FuzzSniff(f *testing.F) {
	for _, ms := range fzMagic {
		for _, m := range ms {
			f.Add(append(append([]byte(nil), m...), "1.7\n%âãÏÓ\n1 0 obj"...))
			f.Add(append([]byte(nil), m[:len(m)-1]...))
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("PK\x03\x04"))           // a zip (docx): unsupported
	f.Add([]byte("\xef\xbb\xbf%PDF-1.4")) // a BOM before the magic: unsupported
	f.Add([]byte(" %PDF-1.4"))
	f.Add([]byte("%pdf-1.4"))
	f.Add([]byte("II*\x00\x08\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, head []byte) {
		ctype, ok := Sniff(head)
		if ok != (ctype != "") {
			t.Fatalf("Sniff(%q) = %q, %v", head, ctype, ok)
		}
		if ok {
			if _, known := fzMagic[ctype]; !known {
				t.Fatalf("Sniff(%q) = %q, not a supported type", head, ctype)
			}
		}
		short := head[:min(len(head), SniffLen)]
		if c2, ok2 := Sniff(short); c2 != ctype || ok2 != ok {
			t.Fatalf("Sniff needs more than %d bytes: %q gives %q, its first %d bytes %q", SniffLen, head, ctype, SniffLen, c2)
		}
		if ok {
			more := append(append([]byte(nil), head...), 0, 0xFF, 'x')
			if c3, _ := Sniff(more); c3 != ctype {
				t.Fatalf("appending bytes changed %q into %q", ctype, c3)
			}
		}
		for want, ms := range fzMagic {
			for _, m := range ms {
				if got, ok := Sniff(append(append([]byte(nil), m...), head...)); !ok || got != want {
					t.Fatalf("magic of %s followed by %q sniffs as %q, %v", want, head, got, ok)
				}
			}
		}
	})
}
