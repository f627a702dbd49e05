package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/redact"
)

// Options configure a Manager. Zero durations take the defaults given.
type Options struct {
	BaseURL  string
	Realm    string // default "public"
	Username string
	Password redact.Secret
	Scopes   []string

	// HTTPClient sends the /token requests; default: a client that follows no
	// redirect (a redirected password grant could carry the password elsewhere).
	HTTPClient *http.Client
	// Clock is time; tests pass a fake one. Default: the real clock.
	Clock clockwork.Clock
	// RequestTimeout bounds one /token request (default 30s). It runs on its
	// own context: callers that give up do not cancel it (I5).
	RequestTimeout time.Duration
	// MinPasswordInterval is the least time between two password grants,
	// whatever happens (default 5s): brute-force detection counts quick logins.
	MinPasswordInterval time.Duration
	// BackoffInitial and BackoffMax shape the exponential back-off, with
	// jitter, after 429, 5xx and network errors (defaults 1s and 5m). A
	// longer Retry-After wins (capped at 10m).
	BackoffInitial, BackoffMax time.Duration
	// Flag shares "credentials rejected" with every process on the same Redis;
	// nil keeps it in this process.
	Flag RejectionFlag
	// Host names this process in the shared flag; default os.Hostname.
	Host string
	// Logger receives token events, never a secret. Default: none.
	Logger zerolog.Logger
	// Secrets, when set, is told every token the manager receives, so the log
	// writer can scrub them (a *redact.Writer).
	Secrets interface{ Add(string) }
}

func (o *Options) defaults() {
	if o.Realm == "" {
		o.Realm = "public"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MinPasswordInterval <= 0 {
		o.MinPasswordInterval = 5 * time.Second
	}
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
}

// Stats count what the manager did, for tests and metrics.
type Stats struct {
	PasswordGrants   int // password grants sent
	PasswordGrantsOK int
	Refreshes        int // refresh grants sent
	RefreshesOK      int
	NotSent          int // refreshes that provably never left: token kept
	Burned           int // refresh tokens given up because the outcome was unknown
	SessionsDead     int // invalid_grant on a refresh
	RefreshSkipped   int // refresh tokens too close to expiry to use
	Rejections       int // password grants natif rejected
	FlagBlocked      int // password grants not sent because another process saw a rejection
	Unauthorized     int // 401s that invalidated the current access token
}

// current is the published token. The fast path reads it without a lock;
// it is replaced whole, never changed in place.
type current struct {
	tok       Token
	refreshAt time.Time     // refresh ahead from here on
	halfLife  time.Duration // caps what a caller may ask for
}

// flight is the one /token request under way.
type flight struct {
	grant    grant
	done     chan struct{} // closed when its answer is applied
	epoch    uint64        // the credentials' epoch when it started
	override bool          // an operator login: past the shared flag
	password redact.Secret // the password it sends (password grants)
}

// Manager is the password-grant Source: one per process, shared by every
// worker. See the package comment for its invariants.
type Manager struct {
	opts     Options
	clock    clockwork.Clock
	log      zerolog.Logger
	tokenURL string

	cur      atomic.Pointer[current] // nil: no usable access token
	inFlight atomic.Bool             // mirrors flight != nil for the fast path

	// Everything below is guarded by mu.
	mu            sync.Mutex
	gen           uint64 // only grows (I3)
	refresh       redact.Secret
	refreshExpiry time.Time
	refreshLife   time.Duration
	accessExpiry  time.Time
	subject       string
	scope         string
	flight        *flight
	backoffUntil  time.Time
	bo            *backoff.ExponentialBackOff
	lastPassword  time.Time // when the last password grant was sent, or failed
	rejected      *RejectedError
	// epoch grows when the credentials change or an operator logs in; a
	// rejection of an older epoch's password is stale and ignored.
	epoch uint64
	// override lets one password grant past the shared flag: an operator
	// asked for a login.
	override bool
	lastErr  error
	stats    Stats
}

// NewManager returns a password-grant manager. It sends nothing until the
// first Token call.
func NewManager(opts Options) (*Manager, error) {
	opts.defaults()
	if opts.Username == "" || !opts.Password.IsSet() {
		return nil, errors.New("auth: the password grant needs a username and a password")
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if _, err := url.Parse(base); err != nil || base == "" {
		return nil, errors.New("auth: invalid base URL")
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = opts.BackoffInitial
	bo.MaxInterval = opts.BackoffMax
	bo.Multiplier = 2
	bo.RandomizationFactor = 0.5
	bo.MaxElapsedTime = 0 // never give up: callers' contexts bound the wait
	bo.Clock = opts.Clock
	bo.Reset()
	return &Manager{
		opts:     opts,
		clock:    opts.Clock,
		log:      opts.Logger,
		tokenURL: base + "/token?realm=" + url.QueryEscape(opts.Realm),
		bo:       bo,
	}, nil
}

// Token returns an access token valid for at least minValidity more, capped
// at half the token's lifetime. The fast path takes no lock and allocates
// nothing; past the refresh-ahead point it starts a refresh in the background
// and still returns the valid token.
func (m *Manager) Token(ctx context.Context, minValidity time.Duration) (Token, error) {
	if c := m.cur.Load(); c != nil {
		now := m.clock.Now()
		if c.tok.Expiry.Sub(now) > min(minValidity, c.halfLife) {
			if !now.Before(c.refreshAt) && !m.inFlight.Load() {
				m.kick()
			}
			return c.tok, nil
		}
	}
	return m.wait(ctx, minValidity)
}

// kick starts a refresh ahead of expiry, unless one is running, the manager
// is backing off, or the credentials are rejected.
func (m *Manager) kick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	if m.flight == nil && m.rejected == nil && !now.Before(m.backoffUntil) {
		m.startLocked(now)
	}
}

// wait is the slow path: it joins the flight under way, or starts one, or
// sleeps out a back-off, until a usable token is published, the credentials
// are rejected, or ctx ends.
func (m *Manager) wait(ctx context.Context, minValidity time.Duration) (Token, error) {
	m.mu.Lock()
	startGen := m.gen
	m.mu.Unlock()
	for {
		m.mu.Lock()
		if m.rejected != nil {
			err := m.rejected
			m.mu.Unlock()
			return Token{}, err
		}
		now := m.clock.Now()
		if c := m.cur.Load(); c != nil {
			left := c.tok.Expiry.Sub(now)
			// A token published since this call began is taken even when it
			// cannot last minValidity: asking again would only loop.
			if left > min(minValidity, c.halfLife) || (c.tok.Gen > startGen && left > 0) {
				m.mu.Unlock()
				return c.tok, nil
			}
		}
		var done <-chan struct{}
		var sleep <-chan time.Time
		f := m.flight
		if f == nil && !now.Before(m.backoffUntil) {
			f = m.startLocked(now)
		}
		if f != nil {
			done = f.done
		} else {
			sleep = m.clock.After(m.backoffUntil.Sub(now))
		}
		lastErr := m.lastErr
		m.mu.Unlock()
		select {
		case <-done:
		case <-sleep:
		case <-ctx.Done():
			if lastErr != nil {
				return Token{}, fmt.Errorf("waiting for a natif token: %w (last token error: %v)", ctx.Err(), lastErr)
			}
			return Token{}, fmt.Errorf("waiting for a natif token: %w", ctx.Err())
		}
	}
}

// startLocked starts the next /token request: a refresh while an unspent
// refresh token that is not about to expire is held, else a password grant.
// It returns nil, with backoffUntil set, when a password grant must wait for
// MinPasswordInterval.
func (m *Manager) startLocked(now time.Time) *flight {
	g := grantPassword
	if m.refresh.IsSet() {
		if m.refreshExpiry.IsZero() || m.refreshExpiry.Sub(now) > m.refreshMarginLocked() {
			g = grantRefresh
		} else {
			m.stats.RefreshSkipped++
			m.refresh = redact.Secret{}
			m.log.Info().Time("refresh_expiry", m.refreshExpiry).Msg("refresh token about to expire: logging in instead")
		}
	}
	form := url.Values{}
	var spent redact.Secret
	f := &flight{grant: g, done: make(chan struct{}), epoch: m.epoch}
	switch g {
	case grantRefresh:
		// I2: the refresh token leaves the manager's state here. Only an
		// outNotSent answer puts it back, so no code path can send it twice.
		spent, m.refresh = m.refresh, redact.Secret{}
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", spent.Reveal())
		m.stats.Refreshes++
	case grantPassword:
		if next := m.lastPassword.Add(m.opts.MinPasswordInterval); !m.lastPassword.IsZero() && now.Before(next) {
			if m.backoffUntil.Before(next) {
				m.backoffUntil = next
			}
			return nil
		}
		m.lastPassword = now
		f.override, f.password = m.override, m.opts.Password
		form.Set("grant_type", "password")
		form.Set("username", m.opts.Username)
		form.Set("password", m.opts.Password.Reveal())
		if len(m.opts.Scopes) > 0 {
			form.Set("scope", strings.Join(m.opts.Scopes, " "))
		}
	}
	m.flight = f
	m.inFlight.Store(true)
	go m.fly(f, form, spent)
	return f
}

// fly runs one flight: the shared-flag check for a password grant, the
// request, then the answer applied under the lock before any waiter wakes.
func (m *Manager) fly(f *flight, form url.Values, spent redact.Secret) {
	var a answer
	blocked := false
	if f.grant == grantPassword && m.opts.Flag != nil && !f.override {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rej, err := m.opts.Flag.Get(ctx, m.opts.Username)
		cancel()
		switch {
		case err != nil:
			// Fail open: one process's extra attempt cannot lock the account.
			m.log.Warn().Err(err).Msg("cannot read the shared credentials flag; logging in anyway")
		case rej != nil && rej.rejects(f.password):
			blocked = true
			a = answer{outcome: outRejected, err: rej}
		case rej != nil:
			m.log.Info().Msg("another process saw a different password rejected; trying this one")
		}
	}
	if !blocked {
		m.mu.Lock()
		if f.grant == grantPassword {
			m.stats.PasswordGrants++
			// I4 counts from the send: a slow flag read must not shorten it.
			m.lastPassword = m.clock.Now()
		}
		m.mu.Unlock()
		a = m.post(f.grant, form)
	}

	m.mu.Lock()
	rej := m.applyLocked(f, a, spent, blocked)
	m.mu.Unlock()
	// The shared flag is written before the flight ends, so that a one-shot
	// command that exits on the rejection has already told the fleet.
	m.shareOutcome(f, a, rej, blocked)
	m.mu.Lock()
	m.flight = nil
	m.inFlight.Store(false)
	m.mu.Unlock()
	close(f.done)
}

// shareOutcome records a rejection in the shared flag, with a verifier of
// the rejected password, or clears the flag after a successful login.
func (m *Manager) shareOutcome(f *flight, a answer, rej *RejectedError, blocked bool) {
	if m.opts.Flag == nil || blocked || f.grant != grantPassword {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch {
	case rej != nil:
		shared := *rej
		shared.Host = m.opts.Host
		if err := shared.setVerifier(f.password); err != nil {
			m.log.Warn().Err(err).Msg("cannot make the password verifier of the shared flag")
		}
		if err := m.opts.Flag.Set(ctx, m.opts.Username, shared); err != nil {
			m.log.Warn().Err(err).Msg("cannot share the credentials rejection with other processes")
		}
	case a.outcome == outOK:
		if err := m.opts.Flag.Clear(ctx, m.opts.Username); err != nil {
			m.log.Warn().Err(err).Msg("cannot clear the shared credentials flag")
		}
	}
}

// applyLocked updates the state from one answer. New tokens are stored and
// published here, before the flight's waiters are woken (I3).
func (m *Manager) applyLocked(f *flight, a answer, spent redact.Secret, blocked bool) *RejectedError {
	g := f.grant
	now := m.clock.Now()
	m.lastErr = a.err
	log := m.log.With().Str("grant", g.String()).Logger()
	if g == grantPassword && a.outcome != outOK && !blocked {
		// A failed or unanswered login counts from its end too: the server
		// may still be working on it.
		m.lastPassword = now
	}
	if a.outcome == outRejected && f.epoch != m.epoch {
		// The credentials changed while this request was out: its verdict
		// is about the old ones.
		log.Info().Err(a.err).Msg("rejection of replaced credentials ignored")
		return nil
	}
	switch a.outcome {
	case outOK:
		m.storeLocked(g, a, spent)
		m.bo.Reset()
		m.backoffUntil = time.Time{}
		if g == grantPassword {
			m.override = false
		}
		log.Info().Uint64("gen", m.gen).Dur("expires_in", a.tokens.ExpiresIn).
			Dur("refresh_expires_in", a.tokens.RefreshExpiresIn).Msg("natif token received")
	case outNotSent:
		m.stats.NotSent++
		m.refresh = spent // it never left the process: still unspent
		m.backoffLocked(now, a.retryAfter)
		log.Warn().Err(a.err).Time("retry_at", m.backoffUntil).Msg("token request not sent; the refresh token is kept")
	case outBurned:
		m.stats.Burned++
		if a.backoff {
			m.backoffLocked(now, a.retryAfter)
		}
		log.Warn().Err(a.err).Msg("refresh outcome unknown: that refresh token is never sent again; logging in next")
	case outSessionDead:
		m.stats.SessionsDead++
		m.cur.Store(nil) // the session's access tokens died with it
		log.Warn().Err(a.err).Msg("natif ended the login session; logging in again")
	case outTransient:
		m.backoffLocked(now, a.retryAfter)
		log.Warn().Err(a.err).Time("retry_at", m.backoffUntil).Msg("token request failed; backing off")
	case outRejected:
		if blocked {
			m.stats.FlagBlocked++
		} else if g == grantPassword {
			m.stats.Rejections++
		}
		var re *RejectedError
		if !errors.As(a.err, &re) {
			re = &RejectedError{Reason: a.err.Error(), At: now, Hint: rejectHint}
		}
		m.rejected = re
		m.cur.Store(nil)
		m.refresh = redact.Secret{}
		log.Error().Err(re).Msg("natif rejected the credentials: no password is sent again until they are fixed")
		return re
	}
	return nil
}

const rejectHint = "fix NATIF_USERNAME / NATIF_PASSWORD (or the realm and scopes), check them with `natif-uploader login`, then restart or send SIGHUP"

// storeLocked keeps the new tokens and publishes the access token under the
// next generation.
func (m *Manager) storeLocked(g grant, a answer, spent redact.Secret) {
	t := a.tokens
	if g == grantPassword {
		m.stats.PasswordGrantsOK++
	} else {
		m.stats.RefreshesOK++
	}
	if m.opts.Secrets != nil {
		m.opts.Secrets.Add(t.AccessToken.Reveal())
		m.opts.Secrets.Add(t.RefreshToken.Reveal())
	}
	m.gen++
	// I7: expiries from this answer, counted from when the request was sent.
	m.accessExpiry = a.sentAt.Add(t.ExpiresIn)
	switch {
	case t.RefreshToken.IsSet():
		m.refresh = t.RefreshToken
	case g == grantRefresh:
		m.refresh = spent // I8: no new refresh token means no rotation
	default:
		m.refresh = redact.Secret{}
	}
	if t.RefreshExpiresIn > 0 {
		m.refreshExpiry = a.sentAt.Add(t.RefreshExpiresIn)
		m.refreshLife = t.RefreshExpiresIn
	} else if t.RefreshToken.IsSet() {
		m.refreshExpiry, m.refreshLife = time.Time{}, 0
	}
	m.scope = t.Scope
	m.subject = subject(t.AccessToken.Reveal())
	life := t.ExpiresIn
	ahead := min(max(30*time.Second, life/5), life/2)
	m.cur.Store(&current{
		tok:       Token{header: redact.NewSecret("Bearer " + t.AccessToken.Reveal()), Gen: m.gen, Expiry: m.accessExpiry},
		refreshAt: m.accessExpiry.Add(-ahead),
		halfLife:  life / 2,
	})
}

// refreshMarginLocked is how close to its expiry a refresh token is no
// longer worth sending: min(30s, a quarter of its lifetime).
func (m *Manager) refreshMarginLocked() time.Duration {
	if m.refreshLife <= 0 {
		return 30 * time.Second
	}
	return min(30*time.Second, m.refreshLife/4)
}

func (m *Manager) backoffLocked(now time.Time, retryAfter time.Duration) {
	d := m.bo.NextBackOff()
	if retryAfter > d {
		d = retryAfter
	}
	if until := now.Add(d); until.After(m.backoffUntil) {
		m.backoffUntil = until
	}
}

// Unauthorized handles a 401 for t: if t is still the current token, it is
// dropped so that the next Token call refreshes (I6). A 401 for an older
// generation changes nothing: a newer token is already out.
func (m *Manager) Unauthorized(t Token) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.cur.Load(); c != nil && c.tok.Gen == t.Gen && t.Gen == m.gen {
		m.cur.Store(nil)
		m.stats.Unauthorized++
		m.log.Info().Uint64("gen", t.Gen).Msg("natif answered 401: refreshing the access token")
	}
}

// Reset clears a local rejection (an operator's SIGHUP): the next Token call
// consults the shared flag again, then sends the password if nothing blocks it.
func (m *Manager) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejected = nil
	m.epoch++
}

// ResetPastFlag is Reset that also lets one password grant past the shared
// flag, as Login does, without waiting for it. It is the SIGHUP of a process
// whose flag nobody else can clear (the embedded queue's flag lives in that
// process's own in-memory Redis, out of `login`'s reach). With a shared Redis
// it is not used: there SIGHUP on a fleet would send the password from every
// node at once, and `login` is the one-request reset.
func (m *Manager) ResetPastFlag() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejected = nil
	m.override = true
	m.epoch++
}

// Login clears a rejection, lets one password grant past the shared flag,
// and waits for a token: the operator's "check and reset". The password
// grant still respects MinPasswordInterval.
func (m *Manager) Login(ctx context.Context) (Token, error) {
	m.mu.Lock()
	m.rejected = nil
	m.override = true
	m.epoch++
	m.refresh = redact.Secret{}
	m.cur.Store(nil)
	m.mu.Unlock()
	return m.Token(ctx, 0)
}

// SetPassword replaces the password (a configuration reload). A changed
// password clears a rejection; the shared flag does not block it, since it
// holds a verifier of the password it was about.
func (m *Manager) SetPassword(p redact.Secret) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.Reveal() == m.opts.Password.Reveal() {
		return
	}
	m.opts.Password = p
	m.rejected = nil
	m.epoch++
	if pin, ok := m.opts.Secrets.(interface{ Pin(string) }); ok {
		pin.Pin(p.Reveal())
	}
	m.log.Info().Msg("password changed: the next login tries it")
}

// Status describes the manager's state.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	st := Status{Mode: "password", Gen: m.gen, Subject: m.subject, Scope: m.scope,
		AccessExpiry: m.accessExpiry, RefreshExpiry: m.refreshExpiry, LastError: m.lastErr}
	switch {
	case m.rejected != nil:
		st.State, st.LastError = StateRejected, m.rejected
	case m.flight != nil && m.flight.grant == grantRefresh:
		st.State = StateRefreshing
	case m.flight != nil:
		st.State = StateLoggingIn
	case now.Before(m.backoffUntil):
		st.State, st.BackoffUntil = StateBackingOff, m.backoffUntil
	case m.cur.Load() != nil && now.Before(m.accessExpiry):
		st.State = StateValid
	default:
		st.State = StateEmpty
	}
	return st
}

// Stats returns a copy of the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// subject reads the sub claim of a JWT-shaped token without verifying it:
// for display only.
func subject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub               string `json:"sub"`
		PreferredUsername string `json:"preferred_username"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	if claims.PreferredUsername != "" {
		return claims.PreferredUsername
	}
	return claims.Sub
}
