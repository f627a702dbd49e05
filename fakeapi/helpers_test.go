package fakeapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helpers here speak HTTP to the simulator the way an outside client would: JSON is read
// into maps, tokens are decoded by hand. They share nothing with the server code beyond the
// package name, so a wrong idea in the server does not confirm itself.

// fakeClock is a settable clock; tests advance it to expire tokens, locks and windows.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is one simulator behind a real loopback HTTP server.
type env struct {
	t      *testing.T
	srv    *Server
	url    string
	clock  *fakeClock
	client *http.Client
}

// setup starts a simulator with opts on a fake clock (unless opts has a clock) and stops it at
// the end of the test.
func setup(t *testing.T, opts Options) *env {
	t.Helper()
	clock := newFakeClock()
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	srv := New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	c := ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{t: t, srv: srv, url: ts.URL, clock: clock, client: c}
}

// reply is a decoded answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r reply) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func (r reply) num(key string) float64 {
	f, _ := r.body[key].(float64)
	return f
}

// detail returns FastAPI's {"detail": "..."} message.
func (r reply) detail() string { return r.str("detail") }

func (e *env) do(req *http.Request) reply {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			e.t.Errorf("%s %s: Content-Type %q, want application/json (body %s)", req.Method, req.URL, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %v: %s", req.Method, req.URL, err, raw)
		}
	}
	return r
}

func (e *env) get(path, auth string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.absolute(path), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return e.do(req)
}

func (e *env) absolute(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return e.url + path
}

// postToken posts a form to /token with the given query.
func (e *env) postToken(query string, form url.Values) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/token"+query, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return e.do(req)
}

func passwordForm(user, pass, scope string) url.Values {
	f := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return f
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
}

// tokens is a successful token response.
type tokens struct {
	access, refresh, session string
	reply
}

// login does a password grant with the default demo account and fails the test unless it
// succeeds.
func (e *env) login(scope string) tokens {
	e.t.Helper()
	r := e.postToken("?realm=public", passwordForm("demo", "demo", scope))
	if r.status != http.StatusOK {
		e.t.Fatalf("password grant: status %d, want 200: %s", r.status, r.raw)
	}
	return tokens{access: r.str("access_token"), refresh: r.str("refresh_token"), session: r.str("session_state"), reply: r}
}

func (e *env) refresh(rt string) reply {
	e.t.Helper()
	return e.postToken("?realm=public", refreshForm(rt))
}

// mustRefresh refreshes and fails the test unless it succeeds.
func (e *env) mustRefresh(rt string) tokens {
	e.t.Helper()
	r := e.refresh(rt)
	if r.status != http.StatusOK {
		e.t.Fatalf("refresh: status %d, want 200: %s", r.status, r.raw)
	}
	return tokens{access: r.str("access_token"), refresh: r.str("refresh_token"), session: r.str("session_state"), reply: r}
}

// wantOAuthError checks a Keycloak-shaped error answer.
func wantOAuthError(t *testing.T, r reply, status int, code, desc string) {
	t.Helper()
	if r.status != status || r.str("error") != code || (desc != "" && r.str("error_description") != desc) {
		t.Errorf("got %d %s, want %d error=%q error_description=%q", r.status, r.raw, status, code, desc)
	}
}

// jwtClaims decodes the payload of a JWT without checking it, as the client's login command
// does.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d dot-separated parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload is not base64url: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("token payload is not JSON: %v", err)
	}
	return c
}

func bearer(tok string) string { return "Bearer " + tok }

const apiKey = "ApiKey demo-key"

// part is one multipart form part; a part with a filename is a file.
type part struct {
	name, filename string
	content        []byte
}

func filePart(name string, content []byte) part {
	return part{name: "file", filename: name, content: content}
}

func multipartBody(t *testing.T, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func (e *env) uploadRequest(path, auth string, parts ...part) *http.Request {
	e.t.Helper()
	body, ctype := multipartBody(e.t, parts...)
	req, err := http.NewRequest(http.MethodPost, e.absolute(path), body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

// upload posts parts to path (usually /documents/) and decodes the answer.
func (e *env) upload(path, auth string, parts ...part) reply {
	e.t.Helper()
	return e.do(e.uploadRequest(path, auth, parts...))
}

// pdf builds a small but well-formed PDF with n page objects under one /Pages node.
func pdf(n int) []byte {
	var b strings.Builder
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	b.WriteString("1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	kids := make([]string, n)
	for i := range n {
		kids[i] = fmt.Sprintf("%d 0 R", i+3)
	}
	fmt.Fprintf(&b, "2 0 obj\n<< /Type /Pages /Kids [%s] /Count %d >>\nendobj\n", strings.Join(kids, " "), n)
	for i := range n {
		fmt.Fprintf(&b, "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n", i+3)
	}
	b.WriteString("trailer\n<< /Root 1 0 R >>\n%%EOF\n")
	return []byte(b.String())
}

// Minimal images: the magic number and a few bytes, which is all the simulator looks at.
var (
	jpegFile   = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0xFF, 0xD9}
	pngFile    = []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 'I', 'H', 'D', 'R'}
	gif87File  = []byte("GIF87a\x01\x00\x01\x00\x00\x00\x00;")
	gif89File  = []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	tiffIIFile = []byte{'I', 'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00}
	tiffMMFile = []byte{'M', 'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08}
)

// wantStatus fails the test with the body when the status is not the expected one.
func wantStatus(t *testing.T, what string, r reply, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: got status %d (%s), want %d", what, r.status, r.raw, want)
	}
}
