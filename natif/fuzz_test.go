package natif

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/natif-uploader/natif-uploader/redact"
)

// fzTokenWire is the /token answer as the wire carries it, decoded here on
// its own so that the parser's result can be checked against the input.
type fzTokenWire struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	TokenType        string `json:"token_type"`
	Scope            string `json:"scope"`
	SessionState     string `json:"session_state"`
}

// FuzzParseTokenResponse: a 2xx /token body either gives a usable token (a
// non-empty access token and a positive lifetime that equals the seconds
// sent) or exactly ErrBadTokenResponse, whose text never quotes the body; a
// usable answer survives a re-encode unchanged, and none of its printed
// forms shows a token.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln","expires_in":300,"refresh_expires_in":1800,"refresh_token":"eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJSZWZyZXNoIn0.c2ln","token_type":"Bearer","not-before-policy":0,"session_state":"0b1c","scope":"capturing_read capturing_write"}`))
	f.Add([]byte(`{"access_token":"opaque-token-123456","expires_in":60,"token_type":"Bearer"}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":1,"refresh_expires_in":0}`))
	f.Add([]byte(`{"access_token":"","expires_in":300}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":0}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":-5}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":"300"}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":300.5}`))
	f.Add([]byte(`{"access_token":"abc","expires_in":9223372036}`))                  // the largest whole-second lifetime a Duration holds
	f.Add([]byte(`{"access_token":"abc","expires_in":300,"refresh_expires_in":-1}`)) // nonsense from a broken server
	f.Add([]byte(`{"error":"invalid_grant","error_description":"Invalid user credentials"}`))
	f.Add([]byte(`{"access_token":null,"expires_in":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte(`<html>502 Bad Gateway</html>`))
	f.Add([]byte("{\"access_token\":\"a\xffb\",\"expires_in\":5}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := ParseTokenResponse(body)
		if err != nil {
			if err != ErrBadTokenResponse { //nolint:errorlint // the exact sentinel, never a wrapped body
				t.Fatalf("error %q is not exactly ErrBadTokenResponse", err)
			}
			if tr != (TokenResponse{}) {
				t.Fatalf("error with a non-zero answer %+v", tr)
			}
			return
		}
		var wire fzTokenWire
		if jerr := json.Unmarshal(body, &wire); jerr != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", jerr)
		}
		if !tr.AccessToken.IsSet() || tr.AccessToken.Reveal() != wire.AccessToken {
			t.Fatalf("access token %q, sent %q", tr.AccessToken.Reveal(), wire.AccessToken)
		}
		if tr.ExpiresIn <= 0 {
			t.Fatalf("accepted a token whose lifetime is %v (expires_in %d): it would count as expired at once", tr.ExpiresIn, wire.ExpiresIn)
		}
		if int64(tr.ExpiresIn/time.Second) != wire.ExpiresIn || tr.ExpiresIn%time.Second != 0 {
			t.Fatalf("ExpiresIn %v does not equal expires_in %d seconds (overflow)", tr.ExpiresIn, wire.ExpiresIn)
		}
		if int64(tr.RefreshExpiresIn/time.Second) != wire.RefreshExpiresIn {
			t.Fatalf("RefreshExpiresIn %v does not equal refresh_expires_in %d seconds (overflow)", tr.RefreshExpiresIn, wire.RefreshExpiresIn)
		}
		// Round trip: the answer encoded again parses to the same answer.
		again, err := json.Marshal(fzTokenWire{
			AccessToken: tr.AccessToken.Reveal(), ExpiresIn: int64(tr.ExpiresIn / time.Second),
			RefreshToken: tr.RefreshToken.Reveal(), RefreshExpiresIn: int64(tr.RefreshExpiresIn / time.Second),
			TokenType: tr.TokenType, Scope: tr.Scope, SessionState: tr.SessionState,
		})
		if err != nil {
			t.Fatal(err)
		}
		tr2, err := ParseTokenResponse(again)
		if err != nil || tr2 != tr {
			t.Fatalf("round trip: %+v, %v; want %+v", tr2, err, tr)
		}
		// No printed form shows a token.
		if tr.AccessToken.String() != redact.Redacted || (tr.RefreshToken.IsSet() && tr.RefreshToken.String() != redact.Redacted) {
			t.Fatalf("a printed token is not redacted: %q, %q", tr.AccessToken.String(), tr.RefreshToken.String())
		}
	})
}

// fzResponse is an answer with the given status, Retry-After and body.
func fzResponse(status int, retryAfter string, body []byte) *http.Response {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	u, _ := url.Parse("https://api.example/token?realm=public")
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(string(body))),
		Request: &http.Request{Method: http.MethodPost, URL: u}}
}

// fzCheckServerText checks a piece of server text kept in an error: bounded,
// valid UTF-8 whenever the server sent valid UTF-8, and with nothing left in
// it that the project's own redaction would still scrub (a token, a bearer
// or ApiKey value, a password= or "access_token": value).
func fzCheckServerText(t *testing.T, what, s string, sentValidUTF8 bool) {
	t.Helper()
	if len(s) > maxDetail+len("…") {
		t.Fatalf("%s is %d bytes, more than %d", what, len(s), maxDetail+len("…"))
	}
	if sentValidUTF8 && !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8 though the server sent valid UTF-8", what, s)
	}
	if scrubbed := redact.Text(s); scrubbed != s {
		t.Fatalf("%s still holds a secret-shaped value:\n  kept     %q\n  scrubbed %q", what, s, scrubbed)
	}
}

// FuzzTokenError: a /token error answer (Keycloak JSON or anything else) is
// read without panicking into a TokenError that keeps its status, keeps a
// Code/Description only from Keycloak JSON, echoes no secret-shaped value,
// and waits at most 10 minutes.
func FuzzTokenError(f *testing.F) {
	f.Add(401, "", []byte(`{"error":"invalid_grant","error_description":"Invalid user credentials"}`))
	f.Add(400, "", []byte(`{"error":"invalid_grant","error_description":"Token is not active"}`))
	f.Add(400, "", []byte(`{"error":"invalid_scope","error_description":"Invalid scopes: capturing_read bogus"}`))
	f.Add(401, "", []byte(`{"error":"unauthorized_client","error_description":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcd is not valid"}`))
	f.Add(400, "", []byte(`{"error":"invalid_request","error_description":"bad form: grant_type=password&username=u&password=hunter2secret"}`))
	f.Add(503, "120", []byte(`<html><body>Service Unavailable</body></html>`))
	f.Add(429, "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`{"error":"slow_down"}`))
	f.Add(500, "soon", []byte(``))
	f.Add(200, "", []byte(`{"error":"invalid_grant"}`))
	f.Add(400, "-1", []byte(`{"error":123,"error_description":["x"]}`))
	f.Add(400, "", []byte(`{"error":"x","error_description":"`+strings.Repeat("é", 400)+`"}`))
	f.Add(0, "", []byte(`null`))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		e := ReadTokenError(fzResponse(status, retryAfter, body), now)
		if e.Status != status {
			t.Fatalf("status %d, answered %d", e.Status, status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %v outside [0, %v]", e.RetryAfter, maxRetryAfter)
		}
		var kc map[string]json.RawMessage
		if json.Unmarshal(body, &kc) != nil && (e.Code != "" || e.Description != "") {
			t.Fatalf("a body that is not a JSON object gave code %q, description %q", e.Code, e.Description)
		}
		valid := utf8.Valid(body)
		fzCheckServerText(t, "Code", e.Code, valid)
		fzCheckServerText(t, "Description", e.Description, valid)
		msg := e.Error()
		if !strings.HasPrefix(msg, "token endpoint answered ") {
			t.Fatalf("Error() = %q", msg)
		}
		// The same body through TokenErrorFromBody (a 200 that carries an
		// error) gives the same code and description.
		e2 := TokenErrorFromBody(status, body)
		if e2.Code != e.Code || e2.Description != e.Description {
			t.Fatalf("TokenErrorFromBody %+v differs from ReadTokenError %+v", e2, e)
		}
	})
}

// FuzzAPIError: an API error answer keeps its status, a Detail that echoes no
// secret-shaped value, a path without the query, and a wait of at most 10
// minutes.
func FuzzAPIError(f *testing.F) {
	f.Add(422, "", []byte(`{"detail":[{"loc":["body","file"],"msg":"field required","type":"value_error.missing"}]}`))
	f.Add(413, "", []byte(`{"detail":"File too large"}`))
	f.Add(429, "30", []byte(`{"detail":"Page limit reached"}`))
	f.Add(401, "", []byte(`{"detail":"Could not validate credentials: Bearer abcdefghijklmnop"}`))
	f.Add(400, "", []byte(`{"detail":{"nested":"object"}}`))
	f.Add(502, "", []byte("<html>\n<head><title>502 Bad Gateway</title></head>\n</html>"))
	f.Add(500, "", []byte(`access_token=abcdef123456&x=1`))
	f.Add(403, "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`{"detail":null}`))
	f.Add(404, "", []byte(``))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		e := ReadAPIError(fzResponse(status, retryAfter, body), now)
		if e.Status != status || e.Method != http.MethodPost || e.Path != "/token" {
			t.Fatalf("got %d %s %s", e.Status, e.Method, e.Path)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter %v outside [0, %v]", e.RetryAfter, maxRetryAfter)
		}
		fzCheckServerText(t, "Detail", e.Detail, utf8.Valid(body))
		if strings.Contains(e.Error(), "realm=") {
			t.Fatalf("Error() %q shows the query", e.Error())
		}
	})
}

// FuzzParseRetryAfter: absent or unreadable means (0, false); otherwise a wait
// in [0, 10m]; whole seconds up to the cap read exactly; and an HTTP date
// written from a wait of k seconds reads back as k seconds.
func FuzzParseRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "7", " 3 ", "600", "601", "-1", "+5", "1.5", "999999999999", "99999999999999999999",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Thu, 03 Dec 2026 12:01:30 GMT", "Thursday, 03-Dec-26 12:01:30 GMT", "Thu Dec  3 12:01:30 2026", "soon", "\t\n"} {
		f.Add(v, now.Unix(), uint16(90))
	}
	f.Add("5", int64(0), uint16(0))
	f.Add("5", int64(-62135596800), uint16(600))
	f.Fuzz(func(t *testing.T, v string, nowUnix int64, k uint16) {
		at := time.Unix(nowUnix, 0).UTC()
		d, ok := ParseRetryAfter(v, at)
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v, false", v, d)
		}
		if ok && (d < 0 || d > maxRetryAfter) {
			t.Fatalf("ParseRetryAfter(%q) = %v outside [0, %v]", v, d, maxRetryAfter)
		}
		if strings.TrimSpace(v) == "" && ok {
			t.Fatalf("an absent header reads as %v", d)
		}
		if digits := strings.TrimSpace(v); digits != "" && strings.Trim(digits, "0123456789") == "" && len(digits) < 4 {
			want := time.Duration(0)
			for _, c := range digits {
				want = want*10 + time.Duration(c-'0')
			}
			want = min(want*time.Second, maxRetryAfter)
			if !ok || d != want {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %v", v, d, ok, want)
			}
		}
		// Round trip through the HTTP-date form, for dates HTTP can write.
		if y := at.Year(); y < 1970 || y > 9000 {
			return
		}
		wait := time.Duration(k%601) * time.Second
		date := at.Add(wait).Format(http.TimeFormat)
		if got, ok := ParseRetryAfter(date, at); !ok || got != wait {
			t.Fatalf("ParseRetryAfter(%q) at %v = %v, %v; want %v", date, at, got, ok, wait)
		}
	})
}
