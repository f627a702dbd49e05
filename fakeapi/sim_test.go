package fakeapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func (e *env) postJSON(path, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

func TestSimHealth(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{Faults: Faults{ServerErrorRate: 1, Latency: time.Second}})
	start := time.Now()
	r := e.get("/_sim/health", "")
	if r.status != 200 || r.str("status") != "ok" {
		t.Errorf("health: got %d %s, want 200 {status: ok}", r.status, r.raw)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("health took %v: faults and latency must not reach /_sim", el)
	}
}

func TestSimFaults(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})

	r := e.get("/_sim/faults", "")
	if r.status != 200 || r.str("latency") != "0s" || r.str("kill_sessions_every") != "0s" || r.body["quota_exhausted"] != false {
		t.Errorf("initial faults: got %d %s", r.status, r.raw)
	}

	set := `{"latency":"10ms","server_error_rate":0.25,"rate_limit_rate":0.5,"drop_rate":0.125,` +
		`"lose_refresh_rate":1,"kill_sessions_every":"1h","quota_exhausted":true}`
	wantStatus(t, "POST faults", e.postJSON("/_sim/faults", set), 200)
	want := Faults{Latency: 10 * time.Millisecond, ServerErrorRate: 0.25, RateLimitRate: 0.5, DropRate: 0.125,
		LoseRefreshRate: 1, KillSessionsEvery: time.Hour, QuotaExhausted: true}
	if got := e.srv.Faults(); got != want {
		t.Errorf("Faults(): got %+v, want %+v", got, want)
	}
	r = e.get("/_sim/faults", "")
	if r.str("latency") != "10ms" || r.str("kill_sessions_every") != "1h0m0s" || r.num("drop_rate") != 0.125 {
		t.Errorf("GET after POST: got %s", r.raw)
	}

	for _, bad := range []string{`{"latency":`, `{"latency":"soon"}`, `{"server_error_rate":1.5}`, `{"drop_rat":0.5}`, `{"latency":"-1s"}`} {
		if r := e.postJSON("/_sim/faults", bad); r.status != 400 {
			t.Errorf("POST %s: got %d, want 400", bad, r.status)
		}
	}
	if got := e.srv.Faults(); got != want {
		t.Errorf("faults after rejected POSTs: got %+v, want them unchanged", got)
	}

	// A document replaces the faults; it does not patch them.
	wantStatus(t, "POST {}", e.postJSON("/_sim/faults", `{}`), 200)
	if got := e.srv.Faults(); got != (Faults{}) {
		t.Errorf("after POST {}: got %+v, want no faults", got)
	}
}

func TestSimKillSessions(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	r := e.postJSON("/_sim/kill-sessions", "")
	if r.status != 200 || r.num("killed") != 1 {
		t.Errorf("kill-sessions: got %d %s, want 200 {killed: 1}", r.status, r.raw)
	}
	wantOAuthError(t, e.refresh(tok.refresh), 400, "invalid_grant", "Session not active")
}

func TestSimStats(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	e.postToken("?realm=public", passwordForm("demo", "wrong", ""))
	e.mustRefresh(tok.refresh)
	content := pdf(1)
	e.upload("/documents/", apiKey, filePart("a.pdf", content))
	e.upload("/documents/", "ApiKey nope", filePart("a.pdf", content))

	r := e.get("/_sim/stats", "")
	wantStatus(t, "stats", r, 200)
	want := map[string]float64{
		"password_grants_ok": 1, "password_grants_failed": 1, "refreshes": 1, "token_requests": 3,
		"token_in_flight_max": 1, "uploads": 1, "unauthorized": 1, "bytes_received": float64(len(content)),
		"reuse_detections": 0, "sessions_killed": 0,
	}
	for k, v := range want {
		if got, ok := r.body[k].(float64); !ok || got != v {
			t.Errorf("%s: got %v, want %v", k, r.body[k], v)
		}
	}
	sum := sha256.Sum256(content)
	by, _ := r.body["uploads_by_sha256"].(map[string]any)
	if by[hex.EncodeToString(sum[:])] != 1.0 || len(by) != 1 {
		t.Errorf("uploads_by_sha256: got %v, want {%x: 1}", by, sum)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of request goroutines.
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

func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	const password, key = "pw-Sekr3t-4711", "key-Sekr3t-0815"
	e := setup(t, Options{
		Password: password,
		APIKeys:  []string{key},
		Logger:   zerolog.New(&logs).Level(zerolog.DebugLevel),
	})
	r := e.postToken("?realm=public", passwordForm("demo", password, ""))
	wantStatus(t, "login", r, 200)
	access, refresh, session := r.str("access_token"), r.str("refresh_token"), r.str("session_state")
	e.postToken("?realm=public", passwordForm("demo", password+"x", ""))
	next := e.mustRefresh(refresh)
	e.refresh(refresh) // reuse: logged as a warning
	e.upload("/documents/", "ApiKey "+key, filePart("a.pdf", pdf(1)))
	e.upload("/documents/", bearer(access), filePart("a.pdf", pdf(1)))
	e.srv.KillSessions()

	out := logs.String()
	for _, secret := range []string{password, key, access, refresh, next.access, next.refresh} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains a secret (%.12s...)", secret)
		}
	}
	for _, want := range []string{`"component":"fake-api"`, session, "refresh token reuse detected"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
