package auth

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exposes the manager's counters to Prometheus: token
// grants by kind and outcome, and the 401s that invalidated a token. The
// labels name kinds only, never a user or a token.
func RegisterMetrics(reg prometheus.Registerer, m *Manager) error {
	counter := func(name, help string, labels prometheus.Labels, read func(Stats) int) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(read(m.Stats())) })
	}
	grants := "natif_uploader_token_requests_total"
	grantsHelp := "Requests sent to natif's /token, by grant and result."
	for _, c := range []prometheus.Collector{
		counter(grants, grantsHelp, prometheus.Labels{"grant": "password", "result": "sent"}, func(s Stats) int { return s.PasswordGrants }),
		counter(grants, grantsHelp, prometheus.Labels{"grant": "password", "result": "ok"}, func(s Stats) int { return s.PasswordGrantsOK }),
		counter(grants, grantsHelp, prometheus.Labels{"grant": "password", "result": "rejected"}, func(s Stats) int { return s.Rejections }),
		counter(grants, grantsHelp, prometheus.Labels{"grant": "refresh_token", "result": "sent"}, func(s Stats) int { return s.Refreshes }),
		counter(grants, grantsHelp, prometheus.Labels{"grant": "refresh_token", "result": "ok"}, func(s Stats) int { return s.RefreshesOK }),
		counter("natif_uploader_refresh_tokens_burned_total", "Refresh tokens given up because a refresh's outcome was unknown.", nil, func(s Stats) int { return s.Burned }),
		counter("natif_uploader_sessions_ended_total", "Login sessions natif ended (invalid_grant on a refresh).", nil, func(s Stats) int { return s.SessionsDead }),
		counter("natif_uploader_unauthorized_total", "401 answers that invalidated the current access token.", nil, func(s Stats) int { return s.Unauthorized }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
