package fakeapi

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")

	if got, want := tok.num("expires_in"), 300.0; got != want {
		t.Errorf("expires_in: got %v, want %v", got, want)
	}
	if got, want := tok.num("refresh_expires_in"), 1800.0; got != want {
		t.Errorf("refresh_expires_in: got %v, want %v", got, want)
	}
	if got := tok.str("token_type"); got != "Bearer" {
		t.Errorf("token_type: got %q, want Bearer", got)
	}
	if v, ok := tok.body["not-before-policy"]; !ok || v != 0.0 {
		t.Errorf("not-before-policy: got %v (present %v), want 0", v, ok)
	}
	if got, want := tok.str("scope"), "capturing_read capturing_write profile email"; got != want {
		t.Errorf("scope with none asked: got %q, want %q", got, want)
	}
	if tok.access == "" || tok.refresh == "" || tok.session == "" {
		t.Fatalf("missing access_token, refresh_token or session_state: %s", tok.raw)
	}
	if got := tok.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}

	// The client's login command decodes these claims; they must say what the response says.
	for _, c := range []struct {
		name, tok, typ string
		ttl            float64
	}{
		{"access", tok.access, "Bearer", 300},
		{"refresh", tok.refresh, "Refresh", 1800},
	} {
		cl := jwtClaims(t, c.tok)
		if cl["sub"] != "demo" || cl["sid"] != tok.session || cl["typ"] != c.typ || cl["scope"] != tok.str("scope") {
			t.Errorf("%s claims: got %v, want sub=demo sid=%s typ=%s scope=%q", c.name, cl, tok.session, c.typ, tok.str("scope"))
		}
		iat, _ := cl["iat"].(float64)
		exp, _ := cl["exp"].(float64)
		if got := exp - iat; got != c.ttl {
			t.Errorf("%s exp-iat: got %v, want %v", c.name, got, c.ttl)
		}
		if iat != float64(e.clock.Now().Unix()) {
			t.Errorf("%s iat: got %v, want the clock's %d", c.name, iat, e.clock.Now().Unix())
		}
		if jti, _ := cl["jti"].(string); jti == "" {
			t.Errorf("%s: no jti", c.name)
		}
	}

	// Every password grant is a new login session.
	if again := e.login(""); again.session == tok.session {
		t.Errorf("second password grant: got the same session %s, want a new one", again.session)
	}
	if got := e.srv.Stats().PasswordGrantsOK; got != 2 {
		t.Errorf("PasswordGrantsOK: got %d, want 2", got)
	}
}

func TestPasswordGrantAsksForScopes(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("capturing_write capturing_read")
	if got, want := tok.str("scope"), "capturing_write capturing_read"; got != want {
		t.Errorf("scope: got %q, want %q", got, want)
	}
	if got := jwtClaims(t, tok.access)["scope"]; got != "capturing_write capturing_read" {
		t.Errorf("scope claim: got %v", got)
	}
}

func TestTokenEndpointRejections(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc       string
		query      string
		ctype      string
		form       url.Values
		wantStatus int
		wantError  string
		wantDesc   string
	}{
		{"wrong password", "?realm=public", "", passwordForm("demo", "nope", ""), 401, "invalid_grant", "Invalid user credentials"},
		{"unknown user", "?realm=public", "", passwordForm("mallory", "demo", ""), 401, "invalid_grant", "Invalid user credentials"},
		{"empty password", "?realm=public", "", passwordForm("demo", "", ""), 401, "invalid_grant", "Invalid user credentials"},
		{"unknown realm", "?realm=acme", "", passwordForm("demo", "demo", ""), 404, "Realm does not exist", ""},
		{"unknown scope", "?realm=public", "", passwordForm("demo", "demo", "capturing_read admin"), 400, "invalid_scope", ""},
		{"missing grant_type", "?realm=public", "", url.Values{"username": {"demo"}, "password": {"demo"}}, 400, "unsupported_grant_type", ""},
		{"other grant_type", "?realm=public", "", url.Values{"grant_type": {"client_credentials"}}, 400, "unsupported_grant_type", ""},
		{"missing password", "?realm=public", "", url.Values{"grant_type": {"password"}, "username": {"demo"}}, 400, "invalid_request", ""},
		{"missing refresh_token", "?realm=public", "", url.Values{"grant_type": {"refresh_token"}}, 400, "invalid_request", ""},
		{"JSON instead of a form", "?realm=public", "application/json", passwordForm("demo", "demo", ""), 400, "invalid_request", ""},
		{"garbage refresh token", "?realm=public", "", refreshForm("not.a.token"), 400, "invalid_grant", "Invalid refresh token"},
		{"refresh token signed by someone else", "?realm=public", "",
			refreshForm("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXAiOiJSZWZyZXNoIn0.c2lnbmF0dXJl"), 400, "invalid_grant", "Invalid refresh token"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			e := setup(t, Options{})
			req, _ := http.NewRequest(http.MethodPost, e.url+"/token"+c.query, strings.NewReader(c.form.Encode()))
			ctype := c.ctype
			if ctype == "" {
				ctype = "application/x-www-form-urlencoded"
			}
			req.Header.Set("Content-Type", ctype)
			wantOAuthError(t, e.do(req), c.wantStatus, c.wantError, c.wantDesc)
		})
	}
}

func TestTokenEndpointWithoutRealmUsesDefault(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	r := e.postToken("", passwordForm("demo", "demo", ""))
	wantStatus(t, "password grant without ?realm=", r, http.StatusOK)
}

func TestTokenEndpointMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	r := e.get("/token?realm=public", "")
	if r.status != http.StatusMethodNotAllowed || r.detail() != "Method Not Allowed" {
		t.Errorf("GET /token: got %d %s, want 405 Method Not Allowed", r.status, r.raw)
	}
}

func TestAccessTokenWorksWithoutUsedRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	r := e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1)))
	wantStatus(t, "upload with a fresh access token", r, http.StatusCreated)
}

func TestLockout(t *testing.T) {
	t.Parallel()
	t.Run("five quick failures lock the account until LockoutDuration passed", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		for i := range 5 {
			if i > 0 {
				e.clock.Advance(time.Second)
			}
			wantOAuthError(t, e.postToken("?realm=public", passwordForm("demo", "wrong", "")), 401, "invalid_grant", "Invalid user credentials")
		}
		// Locked: even the right password is refused, with Keycloak's 400.
		wantOAuthError(t, e.postToken("?realm=public", passwordForm("demo", "demo", "")), 400, "invalid_grant", "Account temporarily disabled")
		wantOAuthError(t, e.postToken("?realm=public", passwordForm("demo", "wrong", "")), 400, "invalid_grant", "Account temporarily disabled")
		e.clock.Advance(59 * time.Second)
		wantOAuthError(t, e.postToken("?realm=public", passwordForm("demo", "demo", "")), 400, "invalid_grant", "Account temporarily disabled")
		e.clock.Advance(time.Second)
		wantStatus(t, "right password after the lock", e.postToken("?realm=public", passwordForm("demo", "demo", "")), http.StatusOK)

		st := e.srv.Stats()
		if st.Lockouts != 1 || st.LockedRejections != 3 || st.PasswordGrantsFailed != 5 || st.PasswordGrantsOK != 1 {
			t.Errorf("stats: got lockouts=%d locked_rejections=%d failed=%d ok=%d, want 1, 3, 5, 1",
				st.Lockouts, st.LockedRejections, st.PasswordGrantsFailed, st.PasswordGrantsOK)
		}
	})
	t.Run("failures further apart than LockoutWindow do not add up", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		for range 6 {
			wantOAuthError(t, e.postToken("?realm=public", passwordForm("demo", "wrong", "")), 401, "invalid_grant", "Invalid user credentials")
			e.clock.Advance(61 * time.Second)
		}
		wantStatus(t, "right password", e.postToken("?realm=public", passwordForm("demo", "demo", "")), http.StatusOK)
		if got := e.srv.Stats().Lockouts; got != 0 {
			t.Errorf("Lockouts: got %d, want 0", got)
		}
	})
	t.Run("a success resets the count", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		for range 4 {
			e.postToken("?realm=public", passwordForm("demo", "wrong", ""))
		}
		e.login("")
		for range 4 {
			e.postToken("?realm=public", passwordForm("demo", "wrong", ""))
		}
		wantStatus(t, "right password after 4+4 failures split by a success", e.postToken("?realm=public", passwordForm("demo", "demo", "")), http.StatusOK)
	})
}

func TestRefreshGivesNewPair(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	old := e.login("")
	e.clock.Advance(100 * time.Second)
	fresh := e.mustRefresh(old.refresh)

	if fresh.access == old.access || fresh.refresh == old.refresh {
		t.Errorf("refresh: got the same tokens back, want a new pair")
	}
	if fresh.session != old.session {
		t.Errorf("session_state: got %s, want the same session %s", fresh.session, old.session)
	}
	if got := fresh.num("expires_in"); got != 300 {
		t.Errorf("expires_in: got %v, want 300", got)
	}
	wantStatus(t, "upload with the new access token", e.upload("/documents/", bearer(fresh.access), filePart("a.pdf", pdf(1))), http.StatusCreated)
	// The old access token stays valid until it expires: only reuse kills a session.
	wantStatus(t, "upload with the old access token", e.upload("/documents/", bearer(old.access), filePart("b.pdf", pdf(1))), http.StatusCreated)
	if got := e.srv.Stats().Refreshes; got != 1 {
		t.Errorf("Refreshes: got %d, want 1", got)
	}
}

func TestRefreshReuseKillsSession(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	first := e.login("")
	bystander := e.login("") // another session: must survive
	second := e.mustRefresh(first.refresh)

	wantOAuthError(t, e.refresh(first.refresh), 400, "invalid_grant", "Maximum allowed refresh token reuse exceeded")
	// The whole session is dead: the newest refresh token and every access token of it.
	wantOAuthError(t, e.refresh(second.refresh), 400, "invalid_grant", "Session not active")
	for _, a := range []struct{ name, tok string }{{"first", first.access}, {"second", second.access}} {
		r := e.upload("/documents/", bearer(a.tok), filePart("a.pdf", pdf(1)))
		if r.status != http.StatusUnauthorized {
			t.Errorf("upload with the %s access token of the killed session: got %d, want 401", a.name, r.status)
		}
	}
	wantStatus(t, "upload in another session", e.upload("/documents/", bearer(bystander.access), filePart("a.pdf", pdf(1))), http.StatusCreated)
	e.mustRefresh(bystander.refresh)

	st := e.srv.Stats()
	if st.ReuseDetections != 1 || st.SessionsKilled != 1 {
		t.Errorf("stats: got reuse_detections=%d sessions_killed=%d, want 1 and 1", st.ReuseDetections, st.SessionsKilled)
	}
}

func TestConcurrentRefreshReuse(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")

	const n = 32
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		replies = make([]reply, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = e.refresh(tok.refresh)
		})
	}
	close(start)
	wg.Wait()

	var winners []reply
	for _, r := range replies {
		switch {
		case r.status == http.StatusOK:
			winners = append(winners, r)
		case r.status != http.StatusBadRequest || r.str("error") != "invalid_grant":
			t.Errorf("a losing refresh: got %d %s, want 400 invalid_grant", r.status, r.raw)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("refreshes that succeeded: got %d, want exactly 1", len(winners))
	}
	st := e.srv.Stats()
	if st.ReuseDetections < 1 || st.SessionsKilled != 1 {
		t.Errorf("stats: got reuse_detections=%d sessions_killed=%d, want >= 1 and 1", st.ReuseDetections, st.SessionsKilled)
	}
	// The winner's fresh pair belongs to the session the reuse killed.
	w := winners[0]
	wantOAuthError(t, e.refresh(w.str("refresh_token")), 400, "invalid_grant", "Session not active")
	if r := e.upload("/documents/", bearer(w.str("access_token")), filePart("a.pdf", pdf(1))); r.status != http.StatusUnauthorized {
		t.Errorf("upload with the winner's access token: got %d, want 401", r.status)
	}
}

func TestRefreshTokenExpiry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc    string
		advance time.Duration
		want    int
		desc400 string
	}{
		{"one second before refresh_expires_in", 1799 * time.Second, 200, ""},
		{"at refresh_expires_in", 1800 * time.Second, 400, "Token is not active"},
		{"long after", 5 * time.Hour, 400, "Token is not active"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			e := setup(t, Options{})
			tok := e.login("")
			e.clock.Advance(c.advance)
			r := e.refresh(tok.refresh)
			if c.want == 200 {
				wantStatus(t, "refresh", r, 200)
				return
			}
			wantOAuthError(t, r, c.want, "invalid_grant", c.desc400)
		})
	}
	t.Run("each refresh restarts the idle timeout", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		tok := e.login("")
		for range 3 {
			e.clock.Advance(1700 * time.Second)
			tok = e.mustRefresh(tok.refresh)
		}
	})
}

func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	e.clock.Advance(299 * time.Second)
	wantStatus(t, "upload at 299 s", e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1))), http.StatusCreated)
	e.clock.Advance(time.Second)
	r := e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1)))
	if r.status != http.StatusUnauthorized || r.detail() != "Credentials could not be validated" {
		t.Errorf("upload at 300 s: got %d %s, want 401 Credentials could not be validated", r.status, r.raw)
	}
	if got, want := r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`; got != want {
		t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
	}
	if got := e.srv.Stats().Unauthorized; got != 1 {
		t.Errorf("Unauthorized: got %d, want 1", got)
	}
}

func TestSessionMax(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{SessionMax: 10 * time.Minute})
	tok := e.login("")

	e.clock.Advance(4 * time.Minute)
	tok = e.mustRefresh(tok.refresh)
	if got := tok.num("refresh_expires_in"); got != 360 {
		t.Errorf("refresh_expires_in with 6 min of session left: got %v, want 360", got)
	}
	e.clock.Advance(4 * time.Minute)
	tok = e.mustRefresh(tok.refresh)
	if got, got2 := tok.num("expires_in"), tok.num("refresh_expires_in"); got != 120 || got2 != 120 {
		t.Errorf("lifetimes with 2 min of session left: got expires_in=%v refresh_expires_in=%v, want 120 and 120", got, got2)
	}
	e.clock.Advance(2 * time.Minute)
	wantOAuthError(t, e.refresh(tok.refresh), 400, "invalid_grant", "Session not active")
	if r := e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1))); r.status != http.StatusUnauthorized {
		t.Errorf("upload after SessionMax: got %d, want 401", r.status)
	}
	if got := e.srv.Stats().SessionsKilled; got != 0 {
		t.Errorf("SessionsKilled: got %d, want 0 (a session reaching its end is not killed)", got)
	}
}

func TestKillSessions(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	a, b := e.login(""), e.login("")
	if got := e.srv.KillSessions(); got != 2 {
		t.Errorf("KillSessions: got %d, want 2", got)
	}
	wantOAuthError(t, e.refresh(a.refresh), 400, "invalid_grant", "Session not active")
	if r := e.upload("/documents/", bearer(b.access), filePart("a.pdf", pdf(1))); r.status != http.StatusUnauthorized {
		t.Errorf("upload in a killed session: got %d, want 401", r.status)
	}
	c := e.login("")
	wantStatus(t, "upload in a new session", e.upload("/documents/", bearer(c.access), filePart("a.pdf", pdf(1))), http.StatusCreated)
	if got := e.srv.KillSessions(); got != 1 {
		t.Errorf("second KillSessions: got %d, want 1 (dead sessions are not killed twice)", got)
	}
	if got := e.srv.Stats().SessionsKilled; got != 3 {
		t.Errorf("SessionsKilled: got %d, want 3", got)
	}
}

func TestKillSessionsEvery(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{Faults: Faults{KillSessionsEvery: 20 * time.Millisecond}})
	e.login("")
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.Stats().SessionsKilled < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the kill ticker killed no session within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Turning the fault off stops the ticker.
	e.srv.SetFaults(Faults{})
	e.login("")
	time.Sleep(100 * time.Millisecond)
	if got := e.srv.KillSessions(); got != 1 {
		t.Errorf("live sessions 100 ms after the ticker was stopped: got %d, want 1", got)
	}
}

func TestRefreshServerErrorBurnsToken(t *testing.T) {
	t.Parallel()
	t.Run("refresh: 503 after the token was consumed", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		tok := e.login("")
		e.srv.SetFaults(Faults{ServerErrorRate: 1})
		r := e.refresh(tok.refresh)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("refresh with ServerErrorRate 1: got %d, want 503", r.status)
		}
		e.srv.SetFaults(Faults{})
		// keycloak#49213: the retry is a reuse and kills the session.
		wantOAuthError(t, e.refresh(tok.refresh), 400, "invalid_grant", "Maximum allowed refresh token reuse exceeded")
		if r := e.upload("/documents/", bearer(tok.access), filePart("a.pdf", pdf(1))); r.status != http.StatusUnauthorized {
			t.Errorf("upload after the reuse: got %d, want 401", r.status)
		}
		st := e.srv.Stats()
		if st.ServerErrors != 1 || st.Refreshes != 0 || st.ReuseDetections != 1 {
			t.Errorf("stats: got server_errors=%d refreshes=%d reuse_detections=%d, want 1, 0, 1", st.ServerErrors, st.Refreshes, st.ReuseDetections)
		}
	})
	t.Run("password grant: 503 before any session exists", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{Faults: Faults{ServerErrorRate: 1}})
		r := e.postToken("?realm=public", passwordForm("demo", "demo", ""))
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("password grant with ServerErrorRate 1: got %d, want 503", r.status)
		}
		if got := e.srv.KillSessions(); got != 0 {
			t.Errorf("live sessions after a 503 password grant: got %d, want 0", got)
		}
		if st := e.srv.Stats(); st.PasswordGrantsOK != 0 || st.PasswordGrantsFailed != 0 {
			t.Errorf("stats: got ok=%d failed=%d, want 0 and 0", st.PasswordGrantsOK, st.PasswordGrantsFailed)
		}
	})
}

func TestLostRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{})
	tok := e.login("")
	e.srv.SetFaults(Faults{LoseRefreshRate: 1})

	resp, err := e.client.PostForm(e.url+"/token?realm=public", refreshForm(tok.refresh))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("refresh with LoseRefreshRate 1: got status %d, want a transport error (no answer)", resp.StatusCode)
	}
	e.srv.SetFaults(Faults{})
	wantOAuthError(t, e.refresh(tok.refresh), 400, "invalid_grant", "Maximum allowed refresh token reuse exceeded")
	st := e.srv.Stats()
	if st.LostRefreshes != 1 || st.Refreshes != 0 {
		t.Errorf("stats: got lost_refreshes=%d refreshes=%d, want 1 and 0", st.LostRefreshes, st.Refreshes)
	}
}

func TestTokenInFlightMax(t *testing.T) {
	t.Parallel()
	t.Run("sequential requests", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{})
		for range 3 {
			e.login("")
		}
		if st := e.srv.Stats(); st.TokenInFlightMax != 1 || st.TokenRequests != 3 {
			t.Errorf("got token_in_flight_max=%d token_requests=%d, want 1 and 3", st.TokenInFlightMax, st.TokenRequests)
		}
	})
	t.Run("overlapping requests", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Options{Faults: Faults{Latency: 200 * time.Millisecond}})
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				e.login("")
			})
		}
		close(start)
		wg.Wait()
		if got := e.srv.Stats().TokenInFlightMax; got < 2 {
			t.Errorf("TokenInFlightMax after 4 overlapping grants: got %d, want >= 2", got)
		}
	})
}
