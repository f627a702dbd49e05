package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/redact"
)

// many runs n callers of Token at once and returns their results.
func many(h *harness, n int) []tokenResult {
	var wg sync.WaitGroup
	out := make([]tokenResult, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tok, err := h.mgr.Token(ctx, 0)
			out[i] = tokenResult{tok, err}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func requireAll(t *testing.T, rs []tokenResult, gen uint64) {
	t.Helper()
	for i, r := range rs {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.tok.Gen != gen {
			t.Errorf("caller %d got generation %d, want %d", i, r.tok.Gen, gen)
		}
	}
}

// 1: 64 goroutines on a cold manager: exactly one password grant (I1).
func TestColdStartOnePasswordGrant(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	requireAll(t, many(h, 64), 1)
	if pw, rf := h.rec.counts(); pw != 1 || rf != 0 {
		t.Errorf("token requests: %d password grants, %d refreshes; want 1 and 0", pw, rf)
	}
	if st := h.sim.Stats(); st.TokenInFlightMax != 1 {
		t.Errorf("simulator saw %d token requests in flight at once, want 1", st.TokenInFlightMax)
	}
	if st := h.mgr.Status(); st.State != StateValid || st.Subject != testUser || st.Scope != "capturing_read capturing_write" {
		t.Errorf("status = %+v, want valid, subject %s and the granted scopes", st, testUser)
	}
	h.assertNoSecrets()
}

// 2: 64 goroutines crossing expiry together: exactly one refresh, no reuse.
func TestCrossingExpiryOneRefresh(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		advance time.Duration
	}{
		{"past the refresh-ahead point, still valid", 250 * time.Second},
		{"past expiry", 301 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := setup(t, fakeapi.Options{}, nil)
			h.token()
			h.clock.Advance(tc.advance)
			rs := many(h, 64)
			// Past the refresh-ahead point callers keep the valid token and the
			// refresh runs in the background: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for h.mgr.Status().Gen < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			for i, r := range rs {
				if r.err != nil {
					t.Fatalf("caller %d: %v", i, r.err)
				}
			}
			if pw, rf := h.rec.counts(); pw != 1 || rf != 1 {
				t.Errorf("token requests: %d password grants, %d refreshes; want 1 and 1", pw, rf)
			}
			if st := h.sim.Stats(); st.ReuseDetections != 0 || st.TokenInFlightMax != 1 {
				t.Errorf("simulator: %d reuse detections, %d in flight at most; want 0 and 1", st.ReuseDetections, st.TokenInFlightMax)
			}
			if got := h.token().Gen; got != 2 {
				t.Errorf("generation after the refresh = %d, want 2", got)
			}
		})
	}
}

// 3: 64 in-flight requests get 401 at once: one refresh, each retried once,
// and all succeed (I6).
func TestMany401sOneRefresh(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	first := h.token()
	// The server answers 401 to the first token (as if it had expired early),
	// once all 64 requests are in.
	var mu sync.Mutex
	arrived, firstTries, retries := 0, 0, 0
	all := make(chan struct{})
	h.rec.setAPIHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != first.header.Reveal() {
			mu.Lock()
			retries++
			mu.Unlock()
			return false
		}
		mu.Lock()
		arrived++
		firstTries++
		if arrived == 64 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"detail":"Credentials could not be validated"}`, http.StatusUnauthorized)
		return true
	})
	client := h.client()
	var wg sync.WaitGroup
	statuses := make([]int, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Do(uploadRequest(t, h.srv.URL))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusCreated {
			t.Errorf("request %d ended %d, want 201 after one retry", i, s)
		}
	}
	if firstTries != 64 || retries != 64 {
		t.Errorf("server saw %d first tries and %d retries, want 64 and 64 (each request retried once)", firstTries, retries)
	}
	if pw, rf := h.rec.counts(); pw != 1 || rf != 1 {
		t.Errorf("token requests: %d password grants, %d refreshes; want 1 and 1", pw, rf)
	}
	if st := h.mgr.Stats(); st.Unauthorized != 1 {
		t.Errorf("401s that invalidated the token: %d, want 1", st.Unauthorized)
	}
}

// 4: a late 401 for an old generation does not refresh.
func TestLate401ForOldGenerationNoRefresh(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	old := h.token()
	h.mgr.Unauthorized(old)
	if cur := h.token(); cur.Gen != 2 {
		t.Fatalf("generation after a 401 = %d, want 2", cur.Gen)
	}
	h.mgr.Unauthorized(old) // arrives late, for generation 1
	if cur := h.token(); cur.Gen != 2 {
		t.Errorf("generation after a late 401 = %d, want still 2", cur.Gen)
	}
	if _, rf := h.rec.counts(); rf != 1 {
		t.Errorf("refreshes = %d, want 1", rf)
	}
}

// 5: the server kills the session: one password grant, work resumes.
func TestSessionKilledOnePasswordGrant(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.MinPasswordInterval = time.Second })
	h.token()
	h.clock.Advance(2 * time.Second)
	h.sim.KillSessions()
	resp, err := h.client().Do(uploadRequest(t, h.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("upload after the session was killed: %d, want 201", resp.StatusCode)
	}
	pw, rf := h.rec.counts()
	if pw != 2 || rf != 1 {
		t.Errorf("token requests: %d password grants, %d refreshes; want 2 (start, re-login) and 1 (refused)", pw, rf)
	}
	if st := h.mgr.Stats(); st.SessionsDead != 1 {
		t.Errorf("dead sessions seen: %d, want 1", st.SessionsDead)
	}
	if st := h.sim.Stats(); st.ReuseDetections != 0 {
		t.Errorf("reuse detections: %d, want 0", st.ReuseDetections)
	}
}

// 6, 7, 9: a refresh whose outcome is unknown burns its token: it is never
// sent again, the next step is one password grant, and no reuse is detected.
func TestUnknownRefreshOutcomeBurnsToken(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		answer  func(rc *recorder, w http.ResponseWriter, r *http.Request)
		backoff bool
	}{
		{"response lost after commit", func(rc *recorder, w http.ResponseWriter, r *http.Request) {
			rc.commit(r)
			drop(w)
		}, true},
		{"5xx after commit", func(rc *recorder, w http.ResponseWriter, r *http.Request) {
			rc.commit(r)
			http.Error(w, "upstream error", http.StatusBadGateway)
		}, true},
		{"unreadable 200", func(rc *recorder, w http.ResponseWriter, r *http.Request) {
			rc.commit(r)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_tok`))
		}, false},
		{"429 (the server may have counted it)", func(rc *recorder, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}, true},
		{"timeout after the request was written", func(rc *recorder, w http.ResponseWriter, r *http.Request) {
			rc.commit(r)
			<-r.Context().Done() // no answer until the client gives up
		}, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := setup(t, fakeapi.Options{}, func(o *Options) { o.RequestTimeout = 300 * time.Millisecond })
			h.token()
			h.clock.Advance(301 * time.Second)
			h.rec.setTokenHook(once("refresh_token", 1, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
				tc.answer(h.rec, w, r)
			}))
			res := h.advanceWhileWaiting(h.tokenAsync(), time.Second, 600)
			if res.err != nil {
				t.Fatalf("Token: %v", res.err)
			}
			pw, rf := h.rec.counts()
			if pw != 2 || rf != 1 {
				t.Errorf("token requests: %d password grants, %d refreshes; want 2 and 1", pw, rf)
			}
			if n := h.rec.maxRefreshSends(); n != 1 {
				t.Errorf("a refresh token reached the server %d times, want at most 1", n)
			}
			if st := h.sim.Stats(); st.ReuseDetections != 0 {
				t.Errorf("reuse detections: %d, want 0", st.ReuseDetections)
			}
			if st := h.mgr.Stats(); st.Burned != 1 {
				t.Errorf("burned refresh tokens: %d, want 1", st.Burned)
			}
			h.assertNoSecrets()
		})
	}
}

// 8: connection refused before the write: the same refresh token is sent
// later, and no password grant is needed.
func TestRefreshNotSentIsRetried(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	h.token()
	h.clock.Advance(301 * time.Second)
	h.dial.fail.Store(1)
	res := h.advanceWhileWaiting(h.tokenAsync(), time.Second, 600)
	if res.err != nil {
		t.Fatalf("Token: %v", res.err)
	}
	pw, rf := h.rec.counts()
	if pw != 1 || rf != 1 {
		t.Errorf("token requests that reached the server: %d password grants, %d refreshes; want 1 and 1", pw, rf)
	}
	if st := h.mgr.Stats(); st.NotSent != 1 || st.Refreshes != 2 || st.Burned != 0 {
		t.Errorf("manager: %d not sent, %d refreshes tried, %d burned; want 1, 2, 0", st.NotSent, st.Refreshes, st.Burned)
	}
	if res.tok.Gen != 2 {
		t.Errorf("generation = %d, want 2", res.tok.Gen)
	}
}

// 10: a refresh token at its idle expiry is not sent: straight to the
// password grant.
func TestIdleExpiryGoesToPasswordGrant(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	h.token()
	h.clock.Advance(1790 * time.Second) // 10 s before the 1800 s refresh lifetime ends
	if got := h.token().Gen; got != 2 {
		t.Errorf("generation = %d, want 2", got)
	}
	if pw, rf := h.rec.counts(); pw != 2 || rf != 0 {
		t.Errorf("token requests: %d password grants, %d refreshes; want 2 and 0", pw, rf)
	}
	if st := h.mgr.Stats(); st.RefreshSkipped != 1 {
		t.Errorf("refresh tokens skipped: %d, want 1", st.RefreshSkipped)
	}
}

// 11: wrong password, 64 callers: one request, all get the rejection, later
// calls fail at once with no request (I4).
func TestWrongPasswordOneRequest(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Password = redact.NewSecret("wrong-Password-1") })
	for i, r := range many(h, 64) {
		if !errors.Is(r.err, ErrCredentialsRejected) {
			t.Fatalf("caller %d: %v, want ErrCredentialsRejected", i, r.err)
		}
		if strings.Contains(r.err.Error(), "wrong-Password-1") {
			t.Errorf("error %q holds the password", r.err)
		}
	}
	for range 5 {
		h.clock.Advance(time.Hour)
		start := time.Now()
		if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
			t.Fatalf("later call: %v, want ErrCredentialsRejected", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("later call took %v, want an immediate failure", d)
		}
	}
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Errorf("password grants sent: %d, want 1", pw)
	}
	if st := h.sim.Stats(); st.Lockouts != 0 {
		t.Errorf("simulator lockouts: %d, want 0", st.Lockouts)
	}
	if st := h.mgr.Status(); st.State != StateRejected || !strings.Contains(st.LastError.Error(), "Invalid user credentials") {
		t.Errorf("status = %v / %v, want rejected with natif's reason", st.State, st.LastError)
	}
	var re *RejectedError
	_, err := h.mgr.Token(context.Background(), 0)
	if !errors.As(err, &re) || re.Hint == "" {
		t.Errorf("rejection %v carries no hint for the operator", err)
	}
}

// 12: a locked account is permanent too: the manager never adds failures.
func TestLockedAccountIsPermanent(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	for range 5 { // someone else locks the account
		resp, err := http.PostForm(h.srv.URL+"/token?realm=public", url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"nope"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, err := h.mgr.Token(context.Background(), 0)
	if !errors.Is(err, ErrCredentialsRejected) || !strings.Contains(err.Error(), "Account temporarily disabled") {
		t.Fatalf("Token on a locked account = %v, want a rejection naming the lock", err)
	}
	h.clock.Advance(time.Hour)
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Errorf("later call = %v, want the rejection to stay", err)
	}
	if pw, _ := h.rec.counts(); pw != 6 {
		t.Errorf("password grants = %d, want 6 (5 by someone else, 1 by the manager)", pw)
	}
}

// 13: 429 with Retry-After: 120 on /token: no request before 120 s pass.
func TestRetryAfterOnTokenEndpoint(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	h.rec.setTokenHook(once("password", 1, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, `{"error":"too_many_requests"}`, http.StatusTooManyRequests)
	}))
	ch := h.tokenAsync()
	waitFor(t, func() bool { pw, _ := h.rec.counts(); return pw == 1 && h.mgr.Status().State == StateBackingOff })
	for range 119 {
		h.clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Fatalf("password grants before 120 s: %d, want 1", pw)
	}
	if st := h.mgr.Status(); st.State != StateBackingOff || st.BackoffUntil.Sub(h.clock.Now()) > time.Second {
		t.Errorf("status = %v until %v, want backing off until about now", st.State, st.BackoffUntil)
	}
	res := h.advanceWhileWaiting(ch, time.Second, 10)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if pw, _ := h.rec.counts(); pw != 2 {
		t.Errorf("password grants = %d, want 2", pw)
	}
}

// 14: a caller that gives up mid-refresh stops waiting; the refresh
// completes for the others (I5).
func TestCallerCancelDoesNotCancelRefresh(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	h.token()
	h.clock.Advance(301 * time.Second)
	release := make(chan struct{})
	h.rec.setTokenHook(once("refresh_token", 1, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		<-release
		rr := h.rec.commit(r)
		for k, v := range rr.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rr.Code)
		w.Write(rr.Body.Bytes())
	}))
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := h.mgr.Token(ctx, 0)
		gaveUp <- err
	}()
	waitFor(t, func() bool { return h.mgr.Status().State == StateRefreshing })
	other := h.tokenAsync()
	cancel()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller got %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled caller still waiting")
	}
	close(release)
	res := <-other
	if res.err != nil || res.tok.Gen != 2 {
		t.Fatalf("other caller: gen %d, %v; want the refreshed token", res.tok.Gen, res.err)
	}
	if st := h.sim.Stats(); st.Refreshes != 1 {
		t.Errorf("simulator refreshes = %d, want 1 (the refresh was not cancelled)", st.Refreshes)
	}
}

// 15: 403 never triggers a refresh.
func TestForbiddenNeverRefreshes(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Scopes = []string{"capturing_read"} })
	resp, err := h.client().Do(uploadRequest(t, h.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upload without capturing_write: %d, want 403", resp.StatusCode)
	}
	if pw, rf := h.rec.counts(); pw != 1 || rf != 0 {
		t.Errorf("token requests: %d password grants, %d refreshes; want 1 and 0", pw, rf)
	}
	if st := h.mgr.Stats(); st.Unauthorized != 0 {
		t.Errorf("401 handling ran %d times on a 403", st.Unauthorized)
	}
}

// I7: expiries are measured from the send time, and a caller may ask for a
// token that lasts longer (a long upload).
func TestExpiriesAndMinValidity(t *testing.T) {
	h := setup(t, fakeapi.Options{AccessTTL: 300 * time.Second}, nil)
	sent := h.clock.Now()
	tok := h.token()
	if !tok.Expiry.Equal(sent.Add(300 * time.Second)) {
		t.Errorf("expiry = %v, want send time + 300s = %v", tok.Expiry, sent.Add(300*time.Second))
	}
	h.clock.Advance(250 * time.Second)
	// 50 s left, past the refresh-ahead point (60 s before expiry): a caller
	// asking 30 s gets the current token, and a refresh starts behind it.
	if got, _ := h.mgr.Token(context.Background(), 30*time.Second); got.Gen != 1 {
		t.Errorf("30s asked with 50s left: gen %d, want 1", got.Gen)
	}
	waitFor(t, func() bool { return h.mgr.Status().Gen == 2 && h.mgr.Status().State == StateValid })
	h.clock.Advance(220 * time.Second) // gen 2 (issued at 250 s) has 80 s left
	got, err := h.mgr.Token(context.Background(), 120*time.Second)
	if err != nil || got.Gen != 3 {
		t.Errorf("120s asked with 80s left: gen %d, %v; want a refreshed token (gen 3)", got.Gen, err)
	}
	// Asking for more than a token's lifetime is capped at half of it.
	h.clock.Advance(10 * time.Second)
	if got, _ := h.mgr.Token(context.Background(), time.Hour); got.Gen != 3 {
		t.Errorf("1h asked: gen %d, want the current token (capped at half its lifetime)", got.Gen)
	}
}

// I8: a refresh answer without a refresh token keeps the old one.
func TestRefreshWithoutNewRefreshTokenKeepsOld(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	h.token()
	h.rec.setTokenHook(once("refresh_token", 1, func(w http.ResponseWriter, _ *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at-without-rotation","expires_in":300,"token_type":"Bearer"}`))
	}))
	h.mgr.Unauthorized(h.token())
	if got := h.token().Gen; got != 2 {
		t.Fatalf("gen = %d, want 2", got)
	}
	h.mgr.Unauthorized(h.token())
	if got := h.token().Gen; got != 3 {
		t.Fatalf("gen = %d, want 3", got)
	}
	// The second refresh used the first refresh token again: the server did
	// not rotate it, so it is still unspent (the simulator, which always
	// rotates, was not asked the first time).
	if n := h.rec.maxRefreshSends(); n != 2 {
		t.Errorf("the unrotated refresh token was sent %d times, want 2", n)
	}
	if st := h.sim.Stats(); st.ReuseDetections != 0 {
		t.Errorf("reuse detections: %d, want 0", st.ReuseDetections)
	}
}

// I4: password grants stay MinPasswordInterval apart even when sessions die
// faster than that.
func TestMinPasswordInterval(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.MinPasswordInterval = 30 * time.Second })
	h.token()
	h.sim.KillSessions()
	h.mgr.Unauthorized(h.token())
	ch := h.tokenAsync()
	waitFor(t, func() bool { return h.mgr.Stats().SessionsDead == 1 })
	for range 29 {
		h.clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Fatalf("password grants within 29 s: %d, want 1", pw)
	}
	res := h.advanceWhileWaiting(ch, time.Second, 10)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if pw, _ := h.rec.counts(); pw != 2 {
		t.Errorf("password grants = %d, want 2", pw)
	}
}

// Login clears a rejection (the operator's reset) and SetPassword tries a
// changed password once.
func TestResetAfterRejection(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Password = redact.NewSecret("wrong-Password-2") })
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("Token = %v, want rejected", err)
	}
	h.mgr.SetPassword(redact.NewSecret("wrong-Password-2")) // unchanged: still rejected
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("Token after setting the same password = %v, want still rejected", err)
	}
	h.clock.Advance(10 * time.Second)
	h.mgr.SetPassword(redact.NewSecret(testPassword))
	if tok := h.token(); tok.Gen != 1 {
		t.Errorf("gen after fixing the password = %d, want 1", tok.Gen)
	}
	if pw, _ := h.rec.counts(); pw != 2 {
		t.Errorf("password grants = %d, want 2", pw)
	}
}

// 17: two managers sharing one Redis, wrong password: the second sends none.
func TestSharedRejectionFlag(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	flag := NewRedisFlag(client, "natif:")
	sharedRejectionFlag(t, flag)
}

// sharedRejectionFlag is the scenario of test 17, run against miniredis here
// and a real redis-server in the integration tests.
func sharedRejectionFlag(t *testing.T, flag RejectionFlag) {
	h := setup(t, fakeapi.Options{}, func(o *Options) {
		o.Password = redact.NewSecret("wrong-Password-3")
		o.Flag = flag
		o.Host = "node-a"
	})
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("first manager: %v, want rejected", err)
	}
	second, err := NewManager(Options{BaseURL: h.srv.URL, Username: testUser, Password: redact.NewSecret("wrong-Password-3"),
		Clock: h.clock, Flag: flag, Host: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Token(context.Background(), 0)
	if !errors.Is(err, ErrCredentialsRejected) || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("second manager: %v, want the rejection seen by node-a", err)
	}
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Errorf("password grants sent by both: %d, want 1", pw)
	}
	if st := second.Stats(); st.FlagBlocked != 1 || st.PasswordGrants != 0 {
		t.Errorf("second manager: %d blocked, %d sent; want 1 and 0", st.FlagBlocked, st.PasswordGrants)
	}
	// The operator fixes the password and logs in: the flag clears for all.
	fixed, _ := NewManager(Options{BaseURL: h.srv.URL, Username: testUser, Password: redact.NewSecret(testPassword),
		Clock: h.clock, Flag: flag, Host: "operator"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := fixed.Login(ctx); err != nil {
		t.Fatalf("operator login: %v", err)
	}
	if rej, err := flag.Get(ctx, testUser); err != nil || rej != nil {
		t.Errorf("flag after the operator's login = %v, %v; want cleared", rej, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAPIKey(t *testing.T) {
	h := setup(t, fakeapi.Options{APIKeys: []string{"key-Test-0001"}}, nil)
	good := NewAPIKey(redact.NewSecret("key-Test-0001"))
	c := &http.Client{Transport: &Transport{Source: good}}
	resp, err := c.Do(uploadRequest(t, h.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("upload with a good key: %d, want 201", resp.StatusCode)
	}
	bad := NewAPIKey(redact.NewSecret("key-Revoked-0002"))
	c = &http.Client{Transport: &Transport{Source: bad}}
	_, err = c.Do(uploadRequest(t, h.srv.URL))
	if !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("upload with a revoked key: %v, want ErrCredentialsRejected", err)
	}
	if strings.Contains(err.Error(), "key-Revoked-0002") {
		t.Errorf("error %q shows the key", err)
	}
	if st := bad.Status(); st.State != StateRejected {
		t.Errorf("status after a 401 = %v, want rejected", st.State)
	}
	if _, err := bad.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Errorf("later Token = %v, want the rejection", err)
	}
	if pw, _ := h.rec.counts(); pw != 0 {
		t.Errorf("password grants with an API key: %d, want 0", pw)
	}
	if st := h.sim.Stats(); st.Unauthorized != 1 {
		t.Errorf("server 401s = %d, want 1 (no retry with a rejected key)", st.Unauthorized)
	}
}

// The wire format of SPEC section 5: form-encoded, realm in the query, scope
// in the password grant, no Basic auth, one request per attempt.
func TestWireFormat(t *testing.T) {
	h := setup(t, fakeapi.Options{}, func(o *Options) { o.Realm = "public" })
	var got *http.Request
	var form url.Values
	h.rec.setTokenHook(func(_ http.ResponseWriter, r *http.Request, f url.Values) bool {
		got, form = r.Clone(context.Background()), f
		return false
	})
	h.token()
	if got == nil {
		t.Fatal("no token request seen")
	}
	checks := []struct{ desc, got, want string }{
		{"method", got.Method, http.MethodPost},
		{"realm", got.URL.Query().Get("realm"), "public"},
		{"content type", got.Header.Get("Content-Type"), "application/x-www-form-urlencoded"},
		{"accept", got.Header.Get("Accept"), "application/json"},
		{"authorization", got.Header.Get("Authorization"), ""},
		{"grant_type", form.Get("grant_type"), "password"},
		{"username", form.Get("username"), testUser},
		{"scope", form.Get("scope"), "capturing_read capturing_write"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.desc, c.got, c.want)
		}
	}
}

// ResetPastFlag (SIGHUP on the embedded queue, whose flag only this process
// can reach) sends the password once more past the shared flag; Reset alone
// consults the flag and sends nothing.
func TestResetPastFlag(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	flag := NewRedisFlag(client, "natif:")
	h := setup(t, fakeapi.Options{}, func(o *Options) {
		o.Password = redact.NewSecret(testPassword)
		o.Flag = flag
	})
	// Another (gone) run of this process left the flag for this password.
	rej := RejectedError{Reason: "invalid_grant: Account temporarily disabled"}
	if err := rej.setVerifier(redact.NewSecret(testPassword)); err != nil {
		t.Fatal(err)
	}
	if err := flag.Set(context.Background(), testUser, rej); err != nil {
		t.Fatal(err)
	}
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("Token with the flag set = %v, want rejected", err)
	}
	h.clock.Advance(10 * time.Second) // past MinPasswordInterval
	h.mgr.Reset()
	if _, err := h.mgr.Token(context.Background(), 0); !errors.Is(err, ErrCredentialsRejected) {
		t.Fatalf("Token after Reset = %v, want still blocked by the flag", err)
	}
	if pw, _ := h.rec.counts(); pw != 0 {
		t.Fatalf("password grants before ResetPastFlag = %d, want 0", pw)
	}
	h.clock.Advance(10 * time.Second)
	h.mgr.ResetPastFlag()
	if tok := h.token(); tok.Gen == 0 {
		t.Errorf("no token after ResetPastFlag")
	}
	if pw, _ := h.rec.counts(); pw != 1 {
		t.Errorf("password grants after ResetPastFlag = %d, want 1", pw)
	}
}
