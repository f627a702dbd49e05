package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// healthcheck exits 0 on a 200, 1 on anything else, and 1 when nothing listens.
func TestHealthcheck(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/readyz" {
			w.WriteHeader(int(status.Load()))
		}
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		desc   string
		status int
		args   []string
		want   int
	}{
		{"healthz answers 200", 200, []string{"healthcheck", "--addr", addr}, ExitOK},
		{"readyz answers 200", 200, []string{"healthcheck", "--addr", addr, "--ready"}, ExitOK},
		{"readyz answers 503", 503, []string{"healthcheck", "--addr", addr, "--ready"}, ExitFailed},
		{"address from NATIF_METRICS_ADDR", 200, []string{"healthcheck"}, ExitOK},
		{"not HOST:PORT", 200, []string{"healthcheck", "--addr", "nonsense"}, ExitUsage},
	} {
		status.Store(int32(tc.status))
		dir := t.TempDir()
		code, _, stderr := run(t, context.Background(), folders(dir, map[string]string{"NATIF_METRICS_ADDR": addr}), tc.args...)
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d; stderr %s", tc.desc, code, tc.want, stderr)
		}
	}
	srv.Close()
	code, _, _ := run(t, context.Background(), nil, "healthcheck", "--addr", addr)
	if code != ExitFailed {
		t.Errorf("nothing listening: exit %d, want %d", code, ExitFailed)
	}
}
