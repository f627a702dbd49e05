package worker

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/auth"
)

// QueueControl pauses and resumes an asynq queue for every process that
// shares it; *asynq.Inspector satisfies it.
type QueueControl interface {
	PauseQueue(queue string) error
	UnpauseQueue(queue string) error
}

// Pause handles account-level trouble (402 quota, 403 scope, rejected
// credentials): no file fails; the queue pauses for every process sharing it,
// readiness reports why, and after a wait the queue resumes so that the next
// upload probes whether the trouble is over. A probe that trips again doubles
// the wait, from Min up to Max. With rejected credentials there is nothing to
// probe until the credentials are reset (SIGHUP or a new login), so the queue
// stays paused until the source is no longer rejected.
type Pause struct {
	Queue   string
	Control QueueControl
	Source  auth.Source
	Min     time.Duration // first wait; default 1m
	Max     time.Duration // longest wait; default 30m
	Logger  zerolog.Logger
	Metrics *Metrics

	mu     sync.Mutex
	paused bool
	reason string
	wait   time.Duration
	until  time.Time
}

// Trip pauses the queue for reason (what to fix).
func (p *Pause) Trip(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	minWait, maxWait := p.bounds()
	switch {
	case p.paused:
		return // already paused: the in-flight uploads that hit the same wall
	case p.wait == 0:
		p.wait = minWait
	default:
		p.wait = min(2*p.wait, maxWait)
	}
	p.paused, p.reason, p.until = true, reason, time.Now().Add(p.wait)
	if err := p.Control.PauseQueue(p.Queue); err != nil && !strings.Contains(err.Error(), "already paused") {
		p.Logger.Error().Err(err).Msg("cannot pause the queue")
	}
	if p.Metrics != nil {
		p.Metrics.Pauses.Inc()
	}
	p.Logger.Error().Str("reason", reason).Time("probe_at", p.until).Msg("natif account problem: uploads paused, no file fails; " + reason)
}

// Succeeded resets the back-off after an upload went through.
func (p *Pause) Succeeded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.wait = 0
	}
}

// Paused reports whether uploads are paused and why.
func (p *Pause) Paused() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused, p.reason
}

func (p *Pause) bounds() (time.Duration, time.Duration) {
	minWait, maxWait := p.Min, p.Max
	if minWait <= 0 {
		minWait = time.Minute
	}
	if maxWait < minWait {
		maxWait = max(minWait, 30*time.Minute)
	}
	return minWait, maxWait
}

// Run resumes the queue when a pause is over, until ctx ends.
func (p *Pause) Run(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.check()
		}
	}
}

func (p *Pause) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused || time.Now().Before(p.until) {
		return
	}
	if p.Source != nil && p.Source.Status().State == auth.StateRejected {
		p.until = time.Now().Add(p.wait)
		return
	}
	if err := p.Control.UnpauseQueue(p.Queue); err != nil && !strings.Contains(err.Error(), "not paused") {
		p.Logger.Error().Err(err).Msg("cannot resume the queue; trying again")
		p.until = time.Now().Add(p.wait)
		return
	}
	p.paused = false
	p.Logger.Info().Str("reason", p.reason).Msg("uploads resumed: the next upload probes natif")
}
