package logging

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/natif-uploader/natif-uploader/config"
	"github.com/natif-uploader/natif-uploader/fakeapi"
	"github.com/natif-uploader/natif-uploader/natif"
)

const (
	testPassword = "pw-Redaction-Test-7781"
	testAPIKey   = "key-Redaction-Test-4410"
)

// postToken sends a form to the simulator's /token and returns the answer.
func postToken(t *testing.T, base string, form url.Values) *http.Response {
	t.Helper()
	resp, err := http.PostForm(base+"/token?realm=public", form)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func tokenAnswer(t *testing.T, resp *http.Response) natif.TokenResponse {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token answer %d, want 200", resp.StatusCode)
	}
	tr, err := natif.ParseTokenResponse(body)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// No password, API key, access token or refresh token reaches a log line:
// log a configuration, token answers and HTTP errors from a real (simulated)
// natif, in both formats, then search the output for every secret.
func TestNoSecretReachesTheLog(t *testing.T) {
	sim := fakeapi.New(fakeapi.Options{Password: testPassword, APIKeys: []string{testAPIKey}})
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()

	var secrets []string
	for _, format := range []string{"json", "console"} {
		var out bytes.Buffer
		log, redactor, err := New(&out, Options{Level: "debug", Format: format})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.Sources{Env: func(k string) (string, bool) {
			v, ok := map[string]string{"NATIF_USERNAME": "demo", "NATIF_PASSWORD": testPassword, "NATIF_API_KEY": testAPIKey, "NATIF_BASE_URL": srv.URL}[k]
			return v, ok
		}})
		if err != nil {
			t.Fatal(err)
		}
		// main registers the configured secrets; the token manager registers tokens.
		redactor.Pin(cfg.Password.Reveal())
		redactor.Pin(cfg.APIKey.Reveal())

		log.Info().Object("config", cfg).Msg("configuration")
		log.Debug().Interface("config", cfg).Msg("configuration as a value")

		first := tokenAnswer(t, postToken(t, srv.URL, url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {testPassword}}))
		log.Info().Object("token", first).Msg("password grant")
		log.Debug().Interface("token", first).Str("access", first.AccessToken.String()).Msg("token as a value")

		second := tokenAnswer(t, postToken(t, srv.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken.Reveal()}}))
		redactor.Add(second.AccessToken.Reveal())
		redactor.Add(second.RefreshToken.Reveal())
		log.Info().Object("token", second).Msg("refreshed")

		// A mistake the writer must catch: a raw token logged as a plain string.
		log.Warn().Str("oops", second.RefreshToken.Reveal()).Str("oops2", "Bearer "+first.AccessToken.Reveal()).Msg("raw token logged by mistake")

		// Errors from /token: the reuse of a refresh token, and a wrong password.
		reuse := natif.ReadTokenError(postToken(t, srv.URL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken.Reveal()}}), time.Now())
		log.Error().Err(reuse).Msg("refresh failed")
		wrong := natif.ReadTokenError(postToken(t, srv.URL, url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {testPassword + "x"}}), time.Now())
		log.Error().Err(wrong).Msg("login failed")
		if reuse.Code != "invalid_grant" || wrong.Status != http.StatusUnauthorized {
			t.Errorf("simulator errors: reuse %v, wrong password %v; want invalid_grant and 401", reuse, wrong)
		}

		// An API error: an upload with the dead session's access token.
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", "invoice.pdf")
		fw.Write([]byte("%PDF-1.4\n%%EOF\n"))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/documents/", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+second.AccessToken.Reveal())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		apiErr := natif.ReadAPIError(resp, time.Now())
		if apiErr.Status != http.StatusUnauthorized {
			t.Errorf("upload with a dead session's token: %v, want 401", apiErr)
		}
		log.Error().Err(apiErr).Interface("request_headers", req.Header).Msg("upload failed")
		wrapped := errors.Join(apiErr, reuse, wrong)
		log.Error().Err(wrapped).Msg("all errors")

		secrets = []string{testPassword, testAPIKey,
			first.AccessToken.Reveal(), first.RefreshToken.Reveal(),
			second.AccessToken.Reveal(), second.RefreshToken.Reveal()}
		text := out.String()
		for _, s := range secrets {
			if s == "" {
				t.Fatalf("%s: the simulator gave an empty token", format)
			}
			if strings.Contains(text, s) {
				t.Errorf("%s log holds a secret (%.8s…):\n%s", format, s, text)
			}
		}
		for _, want := range []string{"invalid_grant", "401", "refreshed", "raw token logged by mistake"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s log lacks %q: redaction must not drop the message:\n%s", format, want, text)
			}
		}
	}
}

func TestNewFormats(t *testing.T) {
	tests := []struct {
		desc     string
		opts     Options
		wantJSON bool
		wantErr  bool
	}{
		{"json by default off a terminal", Options{}, true, false},
		{"console on a terminal", Options{Terminal: true}, false, false},
		{"json forced on a terminal", Options{Format: "json", Terminal: true}, true, false},
		{"console forced", Options{Format: "console"}, false, false},
		{"bad format", Options{Format: "xml"}, false, true},
		{"bad level", Options{Level: "loud"}, false, true},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		log, _, err := New(&out, tt.opts)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: New error = %v, want error %v", tt.desc, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		w := Component(log, "watcher")
		w.Info().Str(FieldFile, "a.pdf").Msg("hello")
		isJSON := strings.HasPrefix(out.String(), "{")
		if isJSON != tt.wantJSON {
			t.Errorf("%s: output %q, want JSON %v", tt.desc, out.String(), tt.wantJSON)
		}
		if !strings.Contains(out.String(), "watcher") || !strings.Contains(out.String(), "a.pdf") {
			t.Errorf("%s: output %q lacks the component or the field", tt.desc, out.String())
		}
	}
	var out bytes.Buffer
	log, _, _ := New(&out, Options{Level: "warn"})
	log.Info().Msg("hidden")
	if out.Len() != 0 {
		t.Errorf("info line written at level warn: %q", out.String())
	}
}
