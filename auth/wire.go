package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/natif-uploader/natif-uploader/natif"
	"github.com/natif-uploader/natif-uploader/redact"
)

// grant is the kind of /token request.
type grant int

const (
	grantPassword grant = iota
	grantRefresh
)

func (g grant) String() string {
	if g == grantRefresh {
		return "refresh_token"
	}
	return "password"
}

// outcome classifies one /token answer by what the manager does next. It is
// decided from the status and the OAuth error code, never from the
// description text, which differs between Keycloak versions.
type outcome int

const (
	outOK outcome = iota
	// outNotSent: the request provably never left the process (dial error, no
	// write): a refresh token is still unspent. Back off, then try it again.
	outNotSent
	// outBurned: a refresh whose outcome is unknown (timeout after the write,
	// 5xx, 429, an unreadable 200). The token may be spent; never send it
	// again. Next: the password grant (after a back-off if the server is in
	// trouble).
	outBurned
	// outSessionDead: invalid_grant on a refresh (reused, expired, session
	// gone). Next: one password grant, at once.
	outSessionDead
	// outRejected: natif refused the credentials or the client's
	// configuration. Permanent: no password is sent again.
	outRejected
	// outTransient: a password grant that failed for a reason a retry can
	// fix (429, 5xx, network, an unreadable 200). Back off.
	outTransient
)

// answer is the result of one /token request.
type answer struct {
	outcome    outcome
	tokens     natif.TokenResponse
	sentAt     time.Time
	err        error         // nil on outOK; never holds a secret
	retryAfter time.Duration // what the server asked for, 0 if nothing
	backoff    bool          // whether to wait before the next request
}

// maxTokenBody bounds a /token answer.
const maxTokenBody = 64 << 10

// post sends one grant to /token and classifies the answer. It runs on its
// own context and timeout (I5): the callers waiting for it cannot cancel it.
func (m *Manager) post(g grant, form url.Values) answer {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.RequestTimeout)
	defer cancel()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		// Called once the whole request went to the connection, or failed
		// part-way. Either way bytes may have left: the token counts as sent.
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{outcome: outRejected, err: fmt.Errorf("token request: %w", err)}
	}
	// No replays below us: an HTTP/2 transport may resend a request that has
	// a GetBody, and a refresh token must go out at most once.
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	sentAt := m.clock.Now()
	resp, err := m.opts.HTTPClient.Do(req)
	if err != nil {
		err = fmt.Errorf("POST /token (%s grant): %s", g, redact.Text(transportError(err)))
		switch {
		case !wrote.Load() && g == grantRefresh:
			return answer{outcome: outNotSent, err: err, backoff: true}
		case g == grantRefresh:
			return answer{outcome: outBurned, err: err, backoff: true}
		default:
			return answer{outcome: outTransient, err: err, backoff: true}
		}
	}
	if resp.StatusCode == http.StatusOK {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
		resp.Body.Close()
		tr, perr := natif.ParseTokenResponse(body)
		if rerr == nil && perr == nil {
			return answer{outcome: outOK, tokens: tr, sentAt: sentAt}
		}
		// A 200 that carries an OAuth error is classified by its code.
		if te := natif.TokenErrorFromBody(resp.StatusCode, body); te.Code != "" {
			return classify(g, te)
		}
		err := fmt.Errorf("POST /token (%s grant): answered 200 without a readable token", g)
		if g == grantRefresh {
			// The server may have rotated: the old token is spent, and the
			// new one is lost. The server itself answered, so log in at once.
			return answer{outcome: outBurned, err: err}
		}
		return answer{outcome: outTransient, err: err, backoff: true}
	}
	return classify(g, natif.ReadTokenError(resp, m.clock.Now()))
}

// classify decides what an error answer from /token leads to (the table in
// the README).
func classify(g grant, te *natif.TokenError) answer {
	a := answer{err: te, retryAfter: te.RetryAfter}
	retryable := te.Status == http.StatusTooManyRequests || te.Status == http.StatusRequestTimeout || te.Status >= 500
	switch {
	case retryable && g == grantRefresh:
		a.outcome, a.backoff = outBurned, true
	case retryable:
		a.outcome, a.backoff = outTransient, true
	case g == grantRefresh && te.Code == "invalid_grant":
		a.outcome = outSessionDead
	case g == grantRefresh && (te.Code == "invalid_client" || te.Code == "unauthorized_client" || te.Code == "unsupported_grant_type"):
		// The client itself is refused: no grant can work.
		a.outcome = outRejected
	case g == grantRefresh:
		// Any other refusal of a refresh (a proxy's 403, invalid_request,
		// a redirect) says nothing about the password: the token is
		// given up and the password grant decides.
		a.outcome = outBurned
	default:
		// Any other 4xx on the password grant: wrong credentials, locked or
		// disabled account, invalid_client, unauthorized_client,
		// invalid_scope, unknown realm. When in doubt, never send the
		// password again: that is what locks accounts.
		a.outcome = outRejected
	}
	return a
}

// transportError gives a transport failure without the request URL, which
// net/http puts in *url.Error.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}
