package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
)

// slowFlag simulates a Redis that stalls ~4.9 s on its first read.
type slowFlag struct {
	h     *harness
	calls atomic.Int32
}

func (f *slowFlag) Get(context.Context, string) (*RejectedError, error) {
	if f.calls.Add(1) == 1 {
		f.h.clock.Advance(4900 * time.Millisecond)
	}
	return nil, nil
}
func (f *slowFlag) Set(context.Context, string, RejectedError) error { return nil }
func (f *slowFlag) Clear(context.Context, string) error              { return nil }

// Review R1: MinPasswordInterval counts from the send, so a slow shared-flag
// read cannot bring two password grants closer than 5 s.
func TestRegressionMinPasswordIntervalSlowFlag(t *testing.T) {
	flag := &slowFlag{}
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Flag = flag })
	flag.h = h
	var mu sync.Mutex
	var sends []time.Time
	h.rec.setTokenHook(func(w http.ResponseWriter, r *http.Request, form url.Values) bool {
		if form.Get("grant_type") != "password" {
			return false
		}
		mu.Lock()
		sends = append(sends, h.clock.Now())
		first := len(sends) == 1
		mu.Unlock()
		if first {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	res := h.advanceWhileWaiting(h.tokenAsync(), 100*time.Millisecond, 500)
	if res.err != nil {
		t.Fatal(res.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sends) < 2 {
		t.Fatalf("sends: %v", sends)
	}
	if gap := sends[1].Sub(sends[0]); gap < 5*time.Second {
		t.Errorf("two password grants reached the server %v apart, want >= MinPasswordInterval (5s)", gap)
	}
}

// Review R2: a password changed while a grant with the old one is in flight
// is still tried: the old password's rejection is stale and ignored.
func TestRegressionSetPasswordLostToInFlightRejection(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Password = redact.NewSecret("old-Password-1") })
	entered, release := make(chan struct{}), make(chan struct{})
	h.rec.setTokenHook(once("password", 1, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		close(entered)
		<-release
		h.rec.sim.ServeHTTP(w, r) // 401 invalid_grant for the old password
	}))
	ch := h.tokenAsync()
	<-entered
	h.mgr.SetPassword(redact.NewSecret(testPassword)) // operator fixes the config
	close(release)
	if res := h.advanceWhileWaiting(ch, time.Second, 30); res.err != nil {
		t.Fatalf("the caller waiting through the change: %v, want a token with the new password", res.err)
	}
	h.clock.Advance(time.Minute)
	h.mgr.SetPassword(redact.NewSecret(testPassword)) // reload again: no-op
	_, err := h.mgr.Token(context.Background(), 0)
	if errors.Is(err, ErrCredentialsRejected) {
		pw, _ := h.rec.counts()
		t.Errorf("correct new password never tried (%d password grants): %v", pw, err)
	}
}

// Review R4: a refresh answered with a 4xx other than invalid_grant or a
// client error (a proxy's 403, a 400 invalid_request) burns the refresh token
// and lets the password grant decide; it does not reject the credentials.
func TestRegressionRefreshOther4xxIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		desc string
		ans  func(w http.ResponseWriter)
	}{
		{"400 invalid_request", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_request","error_description":"concurrent request, please retry"}`))
		}},
		{"403 html from a proxy", func(w http.ResponseWriter) { http.Error(w, "<html>blocked</html>", http.StatusForbidden) }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := setup(t, fakeapi.Options{}, nil)
			h.token()
			h.clock.Advance(301 * time.Second)
			h.rec.setTokenHook(once("refresh_token", 1, func(w http.ResponseWriter, _ *http.Request, _ url.Values) { tc.ans(w) }))
			res := h.advanceWhileWaiting(h.tokenAsync(), time.Second, 30)
			pw, _ := h.rec.counts()
			if errors.Is(res.err, ErrCredentialsRejected) {
				t.Errorf("refresh 4xx -> %v (password grants: %d, the password was never re-tested)", res.err, pw)
			}
		})
	}
}

// Review R5: the Transport puts the token only on the natif host, never on
// the host a redirect leads to.
func TestRegressionTransportTokenOnRedirectHost(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	var got atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
	}))
	defer other.Close()
	h.rec.setAPIHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, other.URL+"/bucket/result.json", http.StatusFound)
		return true
	})
	resp, err := h.client().Get(h.srv.URL + "/documents/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if a, _ := got.Load().(string); a != "" {
		t.Errorf("third-party host received Authorization: %.16s…", a)
	}
}

// Review R7: the password, pinned in the log redactor, is still scrubbed after
// many more tokens than the redactor keeps.
func TestRegressionRedactorForgetsPassword(t *testing.T) {
	w := redact.NewWriter(nil)
	w.Pin(testPassword) // as main registers the configured password
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Secrets = w })
	for range 70 {
		h.token()
		h.clock.Advance(250 * time.Second)
		h.mgr.Unauthorized(h.token()) // force one refresh per round
	}
	if out := string(w.Scrub([]byte("oops " + testPassword))); out != "oops "+redact.Redacted {
		t.Errorf("after %d refreshes the password is no longer scrubbed: %q", h.mgr.Stats().RefreshesOK, out)
	}
}

// Review R3: the shared flag holds a verifier of the rejected password, so a
// process restarted with the fixed password logs in, while the same wrong
// password stays blocked.
func TestRegressionFlagBlocksFixedPasswordAfterRestart(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	flag := NewRedisFlag(client, "natif:")
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Password = redact.NewSecret("wrong-Password-7"); o.Flag = flag })
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatal(err)
	}
	same, _ := NewManager(Options{BaseURL: h.srv.URL, Username: testUser, Password: redact.NewSecret("wrong-Password-7"),
		Clock: h.clock, Flag: flag})
	if _, err := same.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("restarted with the same wrong password: %v, want blocked", err)
	}
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Fatalf("password grants after a restart with the same password: %d, want 1", pw)
	}
	restarted, _ := NewManager(Options{BaseURL: h.srv.URL, Username: testUser, Password: redact.NewSecret(testPassword),
		Clock: h.clock, Flag: flag})
	if _, err := restarted.Token(context.Background(), 0); err != nil {
		t.Errorf("restarted with the fixed password: %v", err)
	}
	if rej, err := flag.Get(context.Background(), testUser); rej != nil || err != nil {
		t.Errorf("flag after a successful login: %v, %v; want cleared", rej, err)
	}
}
