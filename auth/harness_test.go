package auth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
)

// recorder stands in front of the simulator. It records every /token request
// (so a test can prove a refresh token went out at most once) and lets a test
// replace answers: before the simulator sees the request, or after it
// committed it.
type recorder struct {
	sim http.Handler

	mu             sync.Mutex
	passwordGrants int
	refreshGrants  int
	refreshSent    map[string]int // refresh token -> times it reached the server
	tokenHook      func(w http.ResponseWriter, r *http.Request, form url.Values) bool
	apiHook        func(w http.ResponseWriter, r *http.Request) bool
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		rc.mu.Lock()
		hook := rc.apiHook
		rc.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		rc.sim.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	rc.mu.Lock()
	switch form.Get("grant_type") {
	case "password":
		rc.passwordGrants++
	case "refresh_token":
		rc.refreshGrants++
		rc.refreshSent[form.Get("refresh_token")]++
	}
	hook := rc.tokenHook
	rc.mu.Unlock()
	if hook != nil && hook(w, r, form) {
		return
	}
	rc.sim.ServeHTTP(w, r)
}

func (rc *recorder) setTokenHook(h func(w http.ResponseWriter, r *http.Request, form url.Values) bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tokenHook = h
}

func (rc *recorder) setAPIHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.apiHook = h
}

func (rc *recorder) counts() (passwords, refreshes int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.passwordGrants, rc.refreshGrants
}

// maxRefreshSends is the most times any one refresh token reached the server.
func (rc *recorder) maxRefreshSends() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, c := range rc.refreshSent {
		n = max(n, c)
	}
	return n
}

// commit lets the simulator handle r fully (so a refresh is committed) and
// returns what it answered, without sending it.
func (rc *recorder) commit(r *http.Request) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	rc.sim.ServeHTTP(rr, r)
	return rr
}

// drop closes the client's connection with no answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

// once returns a token hook that runs h for the first n requests of grant
// type gt, and passes every other request on.
func once(gt string, n int, h func(w http.ResponseWriter, r *http.Request, form url.Values)) func(http.ResponseWriter, *http.Request, url.Values) bool {
	var left atomic.Int32
	left.Store(int32(n))
	return func(w http.ResponseWriter, r *http.Request, form url.Values) bool {
		if form.Get("grant_type") != gt || left.Add(-1) < 0 {
			return false
		}
		h(w, r, form)
		return true
	}
}

// harness is one manager against one simulator, on one fake clock.
type harness struct {
	t     *testing.T
	clock *clockwork.FakeClock
	sim   *fakeapi.Server
	rec   *recorder
	srv   *httptest.Server
	mgr   *Manager
	logs  *lockedBuffer
	dial  *dialSwitch
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialSwitch makes dials fail while it is on: a request that provably never
// left the process.
type dialSwitch struct {
	fail atomic.Int32 // dials left to fail
}

func (d *dialSwitch) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.fail.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (injected)")}
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

const (
	testUser     = "demo"
	testPassword = "pw-Auth-Harness-5150"
)

func setup(t *testing.T, simOpts fakeapi.Options, tweak func(*Options)) *harness {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	simOpts.Clock = clock.Now
	if simOpts.Password == "" {
		simOpts.Password = testPassword
	}
	sim := fakeapi.New(simOpts)
	t.Cleanup(sim.Close)
	rec := &recorder{sim: sim, refreshSent: map[string]int{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)

	h := &harness{t: t, clock: clock, sim: sim, rec: rec, srv: srv, logs: &lockedBuffer{}, dial: &dialSwitch{}}
	opts := Options{
		BaseURL:  srv.URL,
		Username: testUser,
		Password: redact.NewSecret(testPassword),
		Scopes:   []string{"capturing_read", "capturing_write"},
		HTTPClient: &http.Client{Transport: &http.Transport{
			DialContext: h.dial.DialContext, DisableKeepAlives: true,
		}},
		Clock:          clock,
		RequestTimeout: 5 * time.Second,
		Logger:         zerolog.New(h.logs),
	}
	if tweak != nil {
		tweak(&opts)
	}
	mgr, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.mgr = mgr
	return h
}

// token gets a token with a deadline of real time, failing the test on error.
func (h *harness) token() Token {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := h.mgr.Token(ctx, 0)
	if err != nil {
		h.t.Fatalf("Token: %v", err)
	}
	return tok
}

// tokenAsync gets a token in a goroutine; the result arrives on the channel.
func (h *harness) tokenAsync() <-chan tokenResult {
	ch := make(chan tokenResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tok, err := h.mgr.Token(ctx, 0)
		ch <- tokenResult{tok, err}
	}()
	return ch
}

type tokenResult struct {
	tok Token
	err error
}

// advanceWhileWaiting moves the fake clock on by step, again and again, until
// ch yields or maxSteps pass: for a caller sleeping out a back-off.
func (h *harness) advanceWhileWaiting(ch <-chan tokenResult, step time.Duration, maxSteps int) tokenResult {
	h.t.Helper()
	for range maxSteps {
		select {
		case r := <-ch:
			return r
		case <-time.After(5 * time.Millisecond):
		}
		h.clock.Advance(step)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no token after %d steps of %v", maxSteps, step)
		return tokenResult{}
	}
}

// upload posts a small PDF through a Transport on the manager.
func (h *harness) client() *http.Client {
	return &http.Client{Transport: &Transport{Source: h.mgr, Base: &http.Transport{}, MinValidity: time.Second, BaseURL: h.srv.URL}}
}

func uploadRequest(t *testing.T, base string) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	boundary := "natifboundary"
	buf.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"invoice.pdf\"\r\nContent-Type: application/pdf\r\n\r\n")
	buf.WriteString("%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n")
	buf.WriteString("\r\n--" + boundary + "--\r\n")
	req, err := http.NewRequest(http.MethodPost, base+"/documents/", bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	return req
}

// assertNoSecrets fails when the logs or any given error text hold the
// password or a token the simulator issued.
func (h *harness) assertNoSecrets(extra ...string) {
	h.t.Helper()
	text := h.logs.String() + strings.Join(extra, "\n")
	secrets := []string{testPassword}
	h.rec.mu.Lock()
	for rt := range h.rec.refreshSent {
		secrets = append(secrets, rt)
	}
	h.rec.mu.Unlock()
	if c := h.mgr.cur.Load(); c != nil {
		secrets = append(secrets, strings.TrimPrefix(c.tok.header.Reveal(), "Bearer "))
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			h.t.Errorf("a secret (%.10s…) reached the logs or an error", s)
		}
	}
}
