package auth

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Transport puts the Source's token on every request and applies the 401
// rule: on a 401 it tells the Source (which refreshes only if that token is
// still current), then sends the request once more, body re-read whole
// through GetBody. A second 401 is returned to the caller as it is.
type Transport struct {
	Source Source
	// Base sends the requests; default http.DefaultTransport.
	Base http.RoundTripper
	// MinValidity is how long a token must stay valid when a request starts
	// (default 10s); a request can ask for more with WithMinValidity.
	MinValidity time.Duration
	// BaseURL, when set, limits the credentials to its scheme and host: a
	// request elsewhere (a redirect to storage, say) is sent without them.
	BaseURL string
}

type minValidityKey struct{}

// WithMinValidity asks the Transport for a token that stays valid at least d
// from the start of req: for long uploads.
func WithMinValidity(req *http.Request, d time.Duration) *http.Request {
	return req.WithContext(contextWithMinValidity(req, d))
}

// RoundTrip implements http.RoundTripper. It honours req's context while
// waiting for a token and never modifies req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.ours(req.URL) {
		return base.RoundTrip(req)
	}
	minValidity := t.MinValidity
	if minValidity <= 0 {
		minValidity = 10 * time.Second
	}
	if d, ok := req.Context().Value(minValidityKey{}).(time.Duration); ok && d > minValidity {
		minValidity = d
	}
	tok, err := t.Source.Token(req.Context(), minValidity)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	first := req.Clone(req.Context())
	tok.Apply(first)
	resp, err := base.RoundTrip(first)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	t.Source.Unauthorized(tok)
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // the caller sees the 401; the next request gets a fresh token
	}
	tok2, err := t.Source.Token(req.Context(), minValidity)
	if err != nil {
		drain(resp)
		return nil, err
	}
	if tok2.Gen == tok.Gen && tok2.Gen != 0 {
		return resp, nil // no new token came: sending the same one again would just get 401
	}
	second := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		second.Body = body
	}
	drain(resp)
	tok2.Apply(second)
	return base.RoundTrip(second)
}

// ours reports whether u is on the natif host the credentials are for.
func (t *Transport) ours(u *url.URL) bool {
	if t.BaseURL == "" {
		return true
	}
	b, err := url.Parse(t.BaseURL)
	if err != nil {
		return false
	}
	return strings.EqualFold(b.Scheme, u.Scheme) && strings.EqualFold(b.Host, u.Host)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func contextWithMinValidity(req *http.Request, d time.Duration) context.Context {
	return context.WithValue(req.Context(), minValidityKey{}, d)
}
