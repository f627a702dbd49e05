package app

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natif-uploader/natif-uploader/auth"
	"github.com/natif-uploader/natif-uploader/queue"
)

func metricsHandler(reg *prometheus.Registry) http.Handler {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// readyz answers 200 when uploads can proceed: the queue answers, the
// credentials are not rejected and the queue is not paused; else 503 with
// the reasons.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	var problems []string
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := queue.Ping(ctx, d.q.Opt, 2*time.Second); err != nil {
		problems = append(problems, "queue unreachable: "+err.Error())
	}
	if d.source != nil {
		if st := d.source.Status(); st.State == auth.StateRejected {
			problems = append(problems, "credentials rejected by natif: "+st.LastError.Error())
		}
	}
	if d.pause != nil {
		if paused, reason := d.pause.Paused(); paused {
			problems = append(problems, "uploads paused: "+reason)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "not ready", "problems": problems})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"status": "ready"})
}

// queueCollector reports the queue's task counts, read from asynq's
// inspector at each scrape.
type queueCollector struct {
	insp  *asynq.Inspector
	queue string
	desc  *prometheus.Desc
}

func newQueueCollector(insp *asynq.Inspector, queue string) *queueCollector {
	return &queueCollector{insp: insp, queue: queue, desc: prometheus.NewDesc("natif_uploader_queue_tasks",
		"Tasks in the upload queue, by state (asynq's inspector).", []string{"state"}, prometheus.Labels{"queue": queue})}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	info, err := c.insp.GetQueueInfo(c.queue)
	if err != nil {
		return // an empty queue is not created yet
	}
	for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
		"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}
