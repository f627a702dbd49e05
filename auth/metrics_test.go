package auth

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/natif-uploader/natif-uploader/fakeapi"
)

func TestMetricsCountGrantsAndHoldNoSecret(t *testing.T) {
	h := setup(t, fakeapi.Options{}, nil)
	reg := prometheus.NewRegistry()
	if err := RegisterMetrics(reg, h.mgr); err != nil {
		t.Fatal(err)
	}
	h.mgr.Unauthorized(h.token())
	h.token()
	want := `
# HELP natif_uploader_token_requests_total Requests sent to natif's /token, by grant and result.
# TYPE natif_uploader_token_requests_total counter
natif_uploader_token_requests_total{grant="password",result="ok"} 1
natif_uploader_token_requests_total{grant="password",result="rejected"} 0
natif_uploader_token_requests_total{grant="password",result="sent"} 1
natif_uploader_token_requests_total{grant="refresh_token",result="ok"} 1
natif_uploader_token_requests_total{grant="refresh_token",result="sent"} 1
# HELP natif_uploader_unauthorized_total 401 answers that invalidated the current access token.
# TYPE natif_uploader_unauthorized_total counter
natif_uploader_unauthorized_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "natif_uploader_token_requests_total", "natif_uploader_unauthorized_total"); err != nil {
		t.Error(err)
	}
	mfs, _ := reg.Gather()
	var all strings.Builder
	for _, mf := range mfs {
		all.WriteString(mf.String())
	}
	h.assertNoSecrets(all.String())
}
