package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus series. Labels hold classes and
// results only, never a path or a secret.
type Metrics struct {
	Files    *prometheus.CounterVec // by result: uploaded, duplicate, failed, changed, vanished, rejected
	Bytes    prometheus.Counter
	Duration prometheus.Histogram
	Retries  *prometheus.CounterVec // by class: transient, rate-limited, account
	Pauses   prometheus.Counter
}

// NewMetrics registers the series with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natif_uploader_files_total", Help: "Files handled by the workers, by result.",
		}, []string{"result"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natif_uploader_uploaded_bytes_total", Help: "Bytes of files uploaded to natif.",
		}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "natif_uploader_upload_duration_seconds", Help: "Time of one successful upload request, answer included.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natif_uploader_upload_retries_total", Help: "Upload attempts that will be tried again, by class.",
		}, []string{"class"}),
		Pauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natif_uploader_queue_pauses_total", Help: "Times the queue was paused for an account-level problem.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Files, m.Bytes, m.Duration, m.Retries, m.Pauses)
	}
	return m
}
