// Package natif speaks the natif.ai HTTP API from the client side: the shapes
// of its answers, and the errors a non-2xx answer becomes. Nothing here holds
// a secret in a printable form: tokens travel as redact.Secret, and any text a
// server sent is scrubbed before it becomes part of an error string.
package natif

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/natif-uploader/natif-uploader/redact"
)

// maxErrorBody bounds how much of an error answer is read and kept.
const maxErrorBody = 4 << 10

// maxDetail bounds the server text kept in an error string.
const maxDetail = 300

// TokenError is an error answer from /token, in Keycloak's shape
// {"error":"invalid_grant","error_description":"Token is not active"}.
// Classify by Code, never by Description: the descriptions change across
// Keycloak versions.
type TokenError struct {
	Status      int
	Code        string
	Description string
	// RetryAfter is the wait the server asked for (0 when it asked none).
	RetryAfter time.Duration
}

func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token endpoint answered %d", e.Status)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// TokenErrorFromBody reads a Keycloak error from a /token body that was
// already read (a 200 can carry one). Code is empty when the body holds none.
func TokenErrorFromBody(status int, body []byte) *TokenError {
	e := &TokenError{Status: status}
	var kc struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &kc) == nil {
		e.Code = clip(redact.Text(kc.Error))
		e.Description = clip(redact.Text(kc.Description))
	}
	return e
}

// ReadTokenError reads a non-2xx /token answer into a TokenError and closes
// the body. An answer that is not Keycloak JSON keeps its status only: its
// body could echo the form that was sent.
func ReadTokenError(resp *http.Response, now time.Time) *TokenError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := TokenErrorFromBody(resp.StatusCode, body)
	e.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return e
}

// APIError is a non-2xx answer from an API endpoint (uploads, results).
type APIError struct {
	Method string
	Path   string // the URL path, never the query or the host's user info
	Status int
	// Detail is the server's explanation (FastAPI's "detail"), scrubbed and clipped.
	Detail string
	// RetryAfter is the wait the server asked for (0 when it asked none).
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: natif answered %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ReadAPIError reads a non-2xx API answer into an APIError and closes the body.
func ReadAPIError(resp *http.Response, now time.Time) *APIError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Status: resp.StatusCode}
	if resp.Request != nil && resp.Request.URL != nil {
		e.Method = resp.Request.Method
		e.Path = resp.Request.URL.Path
	}
	e.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	e.Detail = clip(redact.Text(detail(body)))
	return e
}

// detail extracts FastAPI's "detail", which is a string or a list of
// validation errors, falling back to the raw text.
func detail(body []byte) string {
	var fa struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &fa) == nil && len(fa.Detail) > 0 {
		var s string
		if json.Unmarshal(fa.Detail, &s) == nil {
			return s
		}
		var list []struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		}
		if json.Unmarshal(fa.Detail, &list) == nil && len(list) > 0 {
			var parts []string
			for _, v := range list {
				loc := make([]string, len(v.Loc))
				for i, l := range v.Loc {
					loc[i] = fmt.Sprint(l)
				}
				parts = append(parts, strings.Join(loc, ".")+": "+v.Msg)
			}
			return strings.Join(parts, "; ")
		}
		return string(fa.Detail)
	}
	return strings.TrimSpace(string(body))
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
}

// maxRetryAfter caps what a server may make us wait for one answer.
const maxRetryAfter = 10 * time.Minute

// ParseRetryAfter reads a Retry-After value, delta-seconds or an HTTP date
// (RFC 9110 section 10.2.3), as a wait from now, capped at 10 minutes. It
// reports false when the header is absent or unreadable.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		return 0, false
	}
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	return d, true
}
