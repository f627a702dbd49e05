package fakeapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Token-endpoint error descriptions, exactly as Keycloak words them (token-rotation.md §2),
// because clients log them and operators search for them.
const (
	descInvalidCredentials = "Invalid user credentials"
	descAccountLocked      = "Account temporarily disabled"
	descReuse              = "Maximum allowed refresh token reuse exceeded"
	descTokenNotActive     = "Token is not active"
	descSessionNotActive   = "Session not active"
	descInvalidRefresh     = "Invalid refresh token"
)

// Token types in the typ claim, as Keycloak sets them.
const (
	typAccess  = "Bearer"
	typRefresh = "Refresh"
)

// authState is the Keycloak half of the simulator: login sessions, the use state of each
// refresh token, and brute-force counters.
//
// Invariant: a refresh token is checked and consumed under mu (write-locked) in one critical
// section, so of any number of concurrent presentations of one token exactly one finds it
// unused. API requests only read a session's liveness and take the read lock.
type authState struct {
	mu       sync.RWMutex
	sessions map[string]*session    // by session id (sid claim); guarded by mu
	refresh  map[string]*refreshUse // by jti of each live session's refresh tokens; guarded by mu
	accounts map[string]*lockout    // brute-force state by username; guarded by mu
	grants   int                    // password grants since the last sweep; guarded by mu
}

func (a *authState) init() {
	a.sessions = make(map[string]*session)
	a.refresh = make(map[string]*refreshUse)
	a.accounts = make(map[string]*lockout)
}

// session is one login: it starts with a password grant and ends when killed (reuse
// detection, KillSessions) or when SessionMax has passed since it started.
type session struct {
	id       string
	username string
	scope    string
	started  time.Time
	dead     bool
	jtis     []string // refresh tokens issued in this session, to forget them when it dies
}

func (ss *session) alive(now time.Time, max time.Duration) bool {
	return !ss.dead && now.Before(ss.started.Add(max))
}

type refreshUse struct{ used bool }

// lockout is Keycloak's brute-force detection for one account, reduced to its visible rule:
// LockoutFailures failures, each within LockoutWindow of the previous, lock the account.
type lockout struct {
	failures    int
	lastFailure time.Time
	lockedUntil time.Time
}

// claims are the JWT claims the tokens carry. The client's login command decodes them to show
// subject, scopes and expiry; the server trusts them only after checking the signature.
type claims struct {
	Iss   string `json:"iss,omitempty"`
	Sub   string `json:"sub"`
	Sid   string `json:"sid"`
	Typ   string `json:"typ"`
	Scope string `json:"scope"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
	Jti   string `json:"jti"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (s *Server) sign(c claims) string {
	payload, _ := json.Marshal(c) // claims has only strings and ints: cannot fail
	msg := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parse returns the claims of a token this server signed; ok is false for anything else.
func (s *Server) parse(tok string) (claims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return claims{}, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return claims{}, false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return claims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, false
	}
	var c claims
	if json.Unmarshal(payload, &c) != nil {
		return claims{}, false
	}
	return c, true
}

// tokenRef names a token in logs without revealing it: the first 12 hex digits of its sha256.
func tokenRef(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:6])
}

// tokenResponse is Keycloak's token response, field for field.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token"`
	TokenType        string `json:"token_type"`
	NotBeforePolicy  int    `json:"not-before-policy"`
	SessionState     string `json:"session_state"`
	Scope            string `json:"scope"`
}

// issuePair creates an access and refresh token for the session and registers the refresh
// token as unused. Both lifetimes are capped by what is left of SessionMax, as Keycloak caps
// them, so a client reading refresh_expires_in knows when refreshing becomes pointless.
// Caller holds s.auth.mu.
func (s *Server) issuePair(ss *session, now time.Time, iss string) tokenResponse {
	left := int64(ss.started.Add(s.opts.SessionMax).Sub(now) / time.Second)
	accessSecs := min(int64(s.opts.AccessTTL/time.Second), left)
	refreshSecs := min(int64(s.opts.RefreshTTL/time.Second), left)
	iat := now.Unix()
	access := claims{Iss: iss, Sub: ss.username, Sid: ss.id, Typ: typAccess, Scope: ss.scope,
		Iat: iat, Exp: iat + accessSecs, Jti: newUUID()}
	refresh := claims{Iss: iss, Sub: ss.username, Sid: ss.id, Typ: typRefresh, Scope: ss.scope,
		Iat: iat, Exp: iat + refreshSecs, Jti: newUUID()}
	s.auth.refresh[refresh.Jti] = &refreshUse{}
	ss.jtis = append(ss.jtis, refresh.Jti)
	return tokenResponse{
		AccessToken:      s.sign(access),
		ExpiresIn:        accessSecs,
		RefreshExpiresIn: refreshSecs,
		RefreshToken:     s.sign(refresh),
		TokenType:        "Bearer",
		SessionState:     ss.id,
		Scope:            ss.scope,
	}
}

// kill ends a session and forgets its refresh tokens: once the session is dead every one of
// them answers "Session not active", so their use state no longer matters.
// Caller holds s.auth.mu.
func (s *Server) kill(ss *session) {
	ss.dead = true
	for _, j := range ss.jtis {
		delete(s.auth.refresh, j)
	}
	ss.jtis = nil
	s.stats.sessionsKilled.Add(1)
}

// sweep forgets sessions that can never be used again (dead or past SessionMax). An unknown
// sid answers exactly like a dead session, so forgetting changes no answer. Caller holds
// s.auth.mu.
func (s *Server) sweep(now time.Time) {
	for id, ss := range s.auth.sessions {
		if !ss.alive(now, s.opts.SessionMax) {
			for _, j := range ss.jtis {
				delete(s.auth.refresh, j)
			}
			delete(s.auth.sessions, id)
		}
	}
}

// KillSessions kills every live session now, as an administrator logging everybody out, and
// returns how many it killed. Their access tokens get 401 and their refresh tokens
// "Session not active" from then on.
func (s *Server) KillSessions() int {
	now := s.now()
	s.auth.mu.Lock()
	n := 0
	for _, ss := range s.auth.sessions {
		if ss.alive(now, s.opts.SessionMax) {
			s.kill(ss)
			n++
		}
	}
	s.sweep(now)
	s.auth.mu.Unlock()
	if n > 0 {
		s.log.Info().Int("sessions", n).Msg("sessions killed")
	}
	return n
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// serveToken is POST /token?realm=..., Keycloak's token endpoint behind natif's proxy.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.stats.tokenRequests.Add(1)
	s.stats.tokenEnter()
	defer s.stats.tokenLeave()

	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	faults := s.Faults()
	if !sleepCtx(r, faults.Latency) {
		return
	}
	realm := r.URL.Query().Get("realm")
	if realm == "" {
		// The Dataiku plugin posts to /token without ?realm= and works: natif's proxy
		// falls back to its default realm.
		realm = s.opts.Realm
	}
	if realm != s.opts.Realm {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Realm does not exist"})
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Malformed form body")
		return
	}
	iss := "http://" + r.Host + "/realms/" + realm
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "password":
		s.passwordGrant(w, r, faults, iss)
	case "refresh_token":
		s.refreshGrant(w, r, faults, iss)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Missing form parameter: grant_type")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
	}
}

func writeServerError(w http.ResponseWriter) {
	writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Service Unavailable")
}

// grantedScope checks the requested scopes (space-separated) and returns the granted scope
// string: exactly what was asked for, or every allowed scope when nothing was. "openid" is
// always allowed, as in any Keycloak realm.
func (s *Server) grantedScope(req string) (string, bool) {
	asked := strings.Fields(req)
	if len(asked) == 0 {
		return strings.Join(s.opts.Scopes, " "), true
	}
	var out []string
	for _, sc := range asked {
		if sc != "openid" && !slices.Contains(s.opts.Scopes, sc) {
			return "", false
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " "), true
}

func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request, faults Faults, iss string) {
	form := r.PostForm
	for _, f := range []string{"username", "password"} {
		if _, ok := form[f]; !ok {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing parameter: "+f)
			return
		}
	}
	if s.chance(faults.ServerErrorRate) {
		// Before anything happened: no session, no failure counted.
		s.stats.serverErrors.Add(1)
		s.log.Info().Msg("password grant: injected 503")
		writeServerError(w)
		return
	}
	scope, ok := s.grantedScope(form.Get("scope"))
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "Invalid scopes: "+form.Get("scope"))
		return
	}
	user, pass := form.Get("username"), form.Get("password")
	now := s.now()
	known := user == s.opts.Username
	good := known && subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password)) == 1

	a := &s.auth
	a.mu.Lock()
	acct := a.accounts[user]
	if known && acct == nil {
		acct = &lockout{}
		a.accounts[user] = acct
	}
	if acct != nil && now.Before(acct.lockedUntil) {
		a.mu.Unlock()
		s.stats.lockedRejections.Add(1)
		s.log.Warn().Str("username", user).Msg("password grant: account locked")
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", descAccountLocked)
		return
	}
	if !good {
		locked := false
		if acct != nil && s.opts.LockoutFailures > 0 {
			if !acct.lastFailure.IsZero() && now.Sub(acct.lastFailure) < s.opts.LockoutWindow {
				acct.failures++
			} else {
				acct.failures = 1
			}
			acct.lastFailure = now
			if acct.failures >= s.opts.LockoutFailures {
				acct.lockedUntil = now.Add(s.opts.LockoutDuration)
				acct.failures = 0
				acct.lastFailure = time.Time{}
				locked = true
			}
		}
		a.mu.Unlock()
		s.stats.passwordGrantsFailed.Add(1)
		if locked {
			s.stats.lockouts.Add(1)
			s.log.Warn().Str("username", user).Dur("for", s.opts.LockoutDuration).Msg("account locked after repeated failures")
		}
		s.log.Info().Str("username", user).Msg("password grant: invalid credentials")
		// 401, not 400: recent Keycloak answers bad credentials on the direct grant with 401.
		writeOAuthError(w, http.StatusUnauthorized, "invalid_grant", descInvalidCredentials)
		return
	}
	acct.failures, acct.lastFailure = 0, time.Time{}
	ss := &session{id: newUUID(), username: user, scope: scope, started: now}
	a.sessions[ss.id] = ss
	resp := s.issuePair(ss, now, iss)
	if a.grants++; a.grants >= 256 {
		a.grants = 0
		s.sweep(now)
	}
	a.mu.Unlock()

	s.stats.passwordGrantsOK.Add(1)
	s.log.Info().Str("session", ss.id).Str("scope", scope).Msg("password grant: new session")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// refreshGrant redeems a refresh token. The checks run in Keycloak's order: a dead session
// first, then the token's own expiry, then reuse.
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, faults Faults, iss string) {
	tok, ok := r.PostForm["refresh_token"]
	if !ok || len(tok) == 0 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing parameter: refresh_token")
		return
	}
	// Draw both faults before anything happens, so the draw order does not depend on the
	// outcome and a seed replays the same run.
	fail := s.chance(faults.ServerErrorRate)
	lose := !fail && s.chance(faults.LoseRefreshRate)

	ref := tokenRef(tok[0])
	c, valid := s.parse(tok[0])
	if !valid || c.Typ != typRefresh {
		s.refreshFailed(w, fail, ref, "", descInvalidRefresh)
		return
	}
	now := s.now()
	a := &s.auth
	a.mu.Lock()
	ss := a.sessions[c.Sid]
	use := a.refresh[c.Jti]
	switch {
	case ss == nil || !ss.alive(now, s.opts.SessionMax):
		a.mu.Unlock()
		s.refreshFailed(w, fail, ref, c.Sid, descSessionNotActive)
		return
	case !now.Before(time.Unix(c.Exp, 0)):
		a.mu.Unlock()
		s.refreshFailed(w, fail, ref, c.Sid, descTokenNotActive)
		return
	case use == nil:
		// Signed by us for a live session but not registered: cannot happen; answer as
		// Keycloak answers a token it does not recognise.
		a.mu.Unlock()
		s.refreshFailed(w, fail, ref, c.Sid, descInvalidRefresh)
		return
	case use.used:
		// Reuse detection: the whole session dies, with every token issued in it.
		s.kill(ss)
		a.mu.Unlock()
		s.stats.reuseDetections.Add(1)
		s.log.Warn().Str("session", c.Sid).Str("token_sha256", ref).Msg("refresh token reuse detected: session killed")
		s.refreshFailed(w, fail, ref, c.Sid, descReuse)
		return
	}
	use.used = true
	if fail {
		// keycloak#49213: the single use is spent before the failure, and nothing is issued.
		a.mu.Unlock()
		s.stats.serverErrors.Add(1)
		s.log.Info().Str("session", c.Sid).Str("token_sha256", ref).Msg("refresh: token consumed, injected 503")
		writeServerError(w)
		return
	}
	resp := s.issuePair(ss, now, iss)
	a.mu.Unlock()

	if lose {
		s.stats.lostRefreshes.Add(1)
		s.log.Info().Str("session", c.Sid).Str("token_sha256", ref).Msg("refresh committed, response dropped")
		dropConnection(w)
		return
	}
	s.stats.refreshes.Add(1)
	s.log.Info().Str("session", c.Sid).Str("token_sha256", ref).Msg("refresh: new pair")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// refreshFailed answers a refresh that did not succeed: with the injected 503 when that fault
// was drawn (the server-side effects, like a reuse kill, have happened all the same), else
// with 400 invalid_grant.
func (s *Server) refreshFailed(w http.ResponseWriter, fail bool, ref, sid, desc string) {
	if fail {
		s.stats.serverErrors.Add(1)
		writeServerError(w)
		return
	}
	s.stats.refreshesFailed.Add(1)
	s.log.Info().Str("session", sid).Str("token_sha256", ref).Str("error_description", desc).Msg("refresh rejected")
	writeOAuthError(w, http.StatusBadRequest, "invalid_grant", desc)
}

// principal is who an API request acts for.
type principal struct {
	tenant string   // the username, or "apikey": the unit of page rate limits
	scopes []string // nil means all (API keys)
	sid    string   // session id, for logs; empty for API keys
}

func (p principal) may(scope string) bool {
	return p.scopes == nil || slices.Contains(p.scopes, scope)
}

// authenticate checks the Authorization header of an API request: a live Bearer access token
// of this server, or a configured API key.
func (s *Server) authenticate(r *http.Request) (principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "ApiKey") && cred != "":
		for _, k := range s.opts.APIKeys {
			if subtle.ConstantTimeCompare([]byte(cred), []byte(k)) == 1 {
				return principal{tenant: "apikey"}, true
			}
		}
		return principal{}, false
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		c, ok := s.parse(cred)
		if !ok || c.Typ != typAccess {
			return principal{}, false
		}
		now := s.now()
		if !now.Before(time.Unix(c.Exp, 0)) {
			return principal{}, false
		}
		// Online check of the session, as natif does it ("all related access tokens are
		// logged out" when a reuse kills the session).
		s.auth.mu.RLock()
		ss := s.auth.sessions[c.Sid]
		alive := ss != nil && ss.alive(now, s.opts.SessionMax)
		s.auth.mu.RUnlock()
		if !alive {
			return principal{}, false
		}
		scopes := strings.Fields(c.Scope)
		if scopes == nil {
			scopes = []string{}
		}
		return principal{tenant: c.Sub, scopes: scopes, sid: c.Sid}, true
	}
	return principal{}, false
}
