package natif

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		desc   string
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"absent", "", 0, false},
		{"seconds", "7", 7 * time.Second, true},
		{"zero", "0", 0, true},
		{"padded", " 3 ", 3 * time.Second, true},
		{"negative", "-1", 0, false},
		{"huge seconds capped", "999999999999", maxRetryAfter, true},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"http date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"far http date capped", now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{"garbage", "soon", 0, false},
		{"fraction", "1.5", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.desc, tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func response(status int, body string, header http.Header) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	u, _ := url.Parse("https://api.example/documents/?realm=public")
	return &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(strings.NewReader(body)),
		Request: &http.Request{Method: http.MethodPost, URL: u}}
}

func TestReadTokenError(t *testing.T) {
	tests := []struct {
		desc     string
		status   int
		body     string
		header   http.Header
		wantCode string
		wantText string
		wantWait time.Duration
	}{
		{"keycloak credentials", 401, `{"error":"invalid_grant","error_description":"Invalid user credentials"}`, nil,
			"invalid_grant", "token endpoint answered 401 invalid_grant: Invalid user credentials", 0},
		{"reuse", 400, `{"error":"invalid_grant","error_description":"Maximum allowed refresh token reuse exceeded"}`, nil,
			"invalid_grant", "reuse exceeded", 0},
		{"throttled", 429, `slow down`, http.Header{"Retry-After": {"4"}}, "", "token endpoint answered 429", 4 * time.Second},
		{"html 502 is not echoed", 502, `<html>refresh_token=abc</html>`, nil, "", "token endpoint answered 502", 0},
	}
	for _, tt := range tests {
		e := ReadTokenError(response(tt.status, tt.body, tt.header), now)
		if e.Code != tt.wantCode || !strings.Contains(e.Error(), tt.wantText) || e.RetryAfter != tt.wantWait {
			t.Errorf("%s: got code %q, %q, wait %v; want code %q, text %q, wait %v", tt.desc, e.Code, e.Error(), e.RetryAfter, tt.wantCode, tt.wantText, tt.wantWait)
		}
		if strings.Contains(e.Error(), "abc") || strings.Contains(e.Error(), "html") {
			t.Errorf("%s: error %q echoes a non-JSON body", tt.desc, e.Error())
		}
	}
}

func TestReadAPIError(t *testing.T) {
	tests := []struct {
		desc, body, want string
		status           int
	}{
		{"string detail", `{"detail":"Unsupported file type"}`, "POST /documents/: natif answered 415 Unsupported Media Type: Unsupported file type", 415},
		{"validation list", `{"detail":[{"loc":["body","file"],"msg":"field required","type":"value_error.missing"}]}`, "422 Unprocessable Entity: body.file: field required", 422},
		{"plain text", "upstream timed out\n", "502 Bad Gateway: upstream timed out", 502},
		{"token in body scrubbed", `{"detail":"bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig0000"}`, "bad token [REDACTED]", 401},
		{"empty", "", "503 Service Unavailable", 503},
	}
	for _, tt := range tests {
		e := ReadAPIError(response(tt.status, tt.body, nil), now)
		if !strings.Contains(e.Error(), tt.want) {
			t.Errorf("%s: got %q, want it to contain %q", tt.desc, e.Error(), tt.want)
		}
		if strings.Contains(e.Error(), "realm=") {
			t.Errorf("%s: error %q carries the query", tt.desc, e.Error())
		}
	}
	long := `{"detail":"` + strings.Repeat("x", 5000) + `"}`
	if e := ReadAPIError(response(500, long, nil), now); len(e.Detail) > maxDetail+len("…") {
		t.Errorf("detail of a long body is %d bytes, want at most %d", len(e.Detail), maxDetail)
	}
}

func TestParseTokenResponse(t *testing.T) {
	tr, err := ParseTokenResponse([]byte(`{"access_token":"at-1234567","expires_in":300,"refresh_token":"rt-1234567","refresh_expires_in":1800,"token_type":"Bearer","scope":"capturing_read"}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.AccessToken.Reveal() != "at-1234567" || tr.RefreshToken.Reveal() != "rt-1234567" ||
		tr.ExpiresIn != 300*time.Second || tr.RefreshExpiresIn != 1800*time.Second || tr.Scope != "capturing_read" {
		t.Errorf("ParseTokenResponse = %+v, want the fields of the body", tr)
	}
	for _, bad := range []string{`not json`, `{"expires_in":300}`, `{"access_token":"x"}`, `{"access_token":"x","expires_in":-5}`} {
		if _, err := ParseTokenResponse([]byte(bad)); err != ErrBadTokenResponse {
			t.Errorf("ParseTokenResponse(%s) = %v, want ErrBadTokenResponse", bad, err)
		}
	}
	noRT, err := ParseTokenResponse([]byte(`{"access_token":"x","expires_in":60}`))
	if err != nil || noRT.RefreshToken.IsSet() {
		t.Errorf("answer without refresh_token: got %+v, %v; want no refresh token and no error", noRT, err)
	}
}
