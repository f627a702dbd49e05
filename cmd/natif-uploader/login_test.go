package main

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

func TestLoginCommand(t *testing.T) {
	sim := fakeapi.New(fakeapi.Options{Password: "pw-Login-Test-42", APIKeys: []string{"key-Login-Test-43"}})
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()

	tests := []struct {
		desc     string
		env      map[string]string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"password grant accepted", map[string]string{"NATIF_USERNAME": "demo", "NATIF_PASSWORD": "pw-Login-Test-42"}, nil, ExitOK,
			[]string{"accepted the password grant", "subject:        demo", "scopes:         capturing_read capturing_write", "access token:   expires", "(in 5m0s)", "refresh token:  expires"}, ""},
		{"wrong password", map[string]string{"NATIF_USERNAME": "demo", "NATIF_PASSWORD": "nope-Login-44"}, nil, ExitCredentials,
			nil, "natif rejected the credentials: token endpoint answered 401 invalid_grant: Invalid user credentials"},
		{"api key accepted", map[string]string{"NATIF_API_KEY": "key-Login-Test-43"}, nil, ExitOK, []string{"accepted the API key"}, ""},
		{"api key revoked", map[string]string{"NATIF_API_KEY": "key-Revoked-45"}, nil, ExitCredentials, nil, "the API key was answered 401"},
		{"no credentials", nil, nil, ExitUsage, nil, "no natif credentials"},
		{"natif unreachable", map[string]string{"NATIF_USERNAME": "demo", "NATIF_PASSWORD": "x-Login-46", "NATIF_BASE_URL": closed}, []string{"--timeout", "300ms"}, ExitFailed,
			nil, "waiting for a natif token: context deadline exceeded (last token error: POST /token (password grant):"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			env := folders(t.TempDir(), tt.env)
			if _, ok := env["NATIF_BASE_URL"]; !ok {
				env["NATIF_BASE_URL"] = srv.URL
			}
			code, out, errOut := run(t, context.Background(), env, append([]string{"login"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			all := out.String() + errOut.String()
			for _, secret := range []string{"pw-Login-Test-42", "nope-Login-44", "key-Login-Test-43", "key-Revoked-45", "eyJ"} {
				if strings.Contains(all, secret) {
					t.Errorf("output holds a secret or token (%s):\n%s", secret, all)
				}
			}
		})
	}
}
